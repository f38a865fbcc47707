import type { Command } from 'commander';
import { pathOf } from '../api-client.js';
import * as A from '../args.js';
import { clientOf, examples, outputOf } from '../context.js';
import { usageError } from '../errors.js';
import { credentialInput } from '../input.js';
import { rejectFlags } from '../role-options.js';

/** `custody login`: a JWT, AppRole credentials or an on-behalf-of exchange for a token. */

interface IdentityRef {
  id: string;
  name: string;
  kind: string;
}
export interface LoginResult {
  token: string;
  accessor: string;
  identity: IdentityRef;
  actor?: IdentityRef;
  expires_at: string | null;
  max_expires_at: string | null;
  renewable: boolean;
  policies: string[];
  env: string;
}

/** `--on-behalf-of`: the user's JWT for a token acting for that user (the caller's token authenticates). */
async function onBehalfOf(
  ref: string | undefined,
  o: Record<string, any>,
  cmd: Command,
): Promise<LoginResult> {
  if (ref !== undefined) throw usageError('Give the login role once: as --on-behalf-of ENV/METHOD/ROLE');
  rejectFlags(
    o,
    {
      jwtFile: '--jwt-file',
      jwt: '--jwt',
      roleId: '--role-id',
      secretIdFile: '--secret-id-file',
      secretId: '--secret-id',
    },
    'to --on-behalf-of (give the user token with --user-jwt-file or --user-jwt -)',
  );
  const parts = A.ref(o.onBehalfOf, 'ENV/METHOD/ROLE', 'prod/entra/people');
  const userJwt = await credentialInput({
    file: o.userJwtFile,
    dash: o.userJwt,
    fileFlag: '--user-jwt-file',
    dashFlag: '--user-jwt',
    what: "the user's JWT",
  });
  if (userJwt === undefined) {
    throw usageError(
      "--on-behalf-of needs the user's JWT",
      'Give --user-jwt-file FILE or --user-jwt - (stdin).',
    );
  }
  const client = await clientOf(cmd);
  const { body } = await client.post<LoginResult>(`/v1/auth/obo/${parts.map(pathOf).join('/')}`, {
    user_jwt: userJwt,
  });
  return body;
}

/** A JWT or AppRole login: unauthenticated, the credentials are the proof. */
async function login(ref: string | undefined, o: Record<string, any>, cmd: Command): Promise<LoginResult> {
  if (ref === undefined) {
    throw usageError(
      'Name the login role: custody login ENV/METHOD/ROLE',
      'Example: custody login prod/jwt/ci --jwt-file $TOKEN_FILE',
    );
  }
  rejectFlags(o, { userJwtFile: '--user-jwt-file', userJwt: '--user-jwt' }, 'without --on-behalf-of');
  const parts = A.ref(ref, 'ENV/METHOD/ROLE', 'prod/jwt/ci');
  const jwt = await credentialInput({
    file: o.jwtFile,
    dash: o.jwt,
    fileFlag: '--jwt-file',
    dashFlag: '--jwt',
    what: 'the JWT',
  });
  const approle = o.roleId !== undefined || o.secretIdFile !== undefined || o.secretId !== undefined;
  if (jwt !== undefined && approle) throw usageError('Give a JWT or AppRole credentials, not both');
  let body: Record<string, string>;
  if (jwt !== undefined) body = { jwt };
  else if (approle) {
    if (o.roleId === undefined)
      throw usageError('AppRole login needs --role-id', 'See `custody auth role-id`.');
    const secretId = await credentialInput({
      file: o.secretIdFile,
      dash: o.secretId,
      fileFlag: '--secret-id-file',
      dashFlag: '--secret-id',
      what: 'the secret id',
    });
    if (secretId === undefined) {
      throw usageError(
        'AppRole login needs the secret id',
        'Give --secret-id-file FILE or --secret-id - (stdin).',
      );
    }
    body = { role_id: o.roleId, secret_id: secretId };
  } else {
    throw usageError(
      'No credentials given',
      'jwt: --jwt-file FILE or --jwt - ; approle: --role-id ID with --secret-id-file FILE or --secret-id -.',
    );
  }
  const client = await clientOf(cmd);
  const { body: result } = await client.post<LoginResult>(
    `/v1/auth/login/${parts.map(pathOf).join('/')}`,
    body,
    {
      auth: false,
    },
  );
  return result;
}

export function registerLogin(program: Command): void {
  const command = program
    .command('login')
    .description('Log in with a JWT or AppRole credentials and print the new token')
    .argument('[ENV/METHOD/ROLE]', 'the login role, e.g. prod/jwt/ci or prod/approle/trainer')
    .option('--jwt-file <file>', 'jwt: read the identity token from a file')
    .option('--jwt <->', 'jwt: - reads the identity token from stdin')
    .option('--role-id <id>', 'approle: the role id (`custody auth role-id`)')
    .option('--secret-id-file <file>', 'approle: read the secret id from a file')
    .option('--secret-id <->', 'approle: - reads the secret id from stdin')
    .option(
      '--on-behalf-of <ENV/METHOD/ROLE>',
      "exchange a user's JWT for a token acting for that user; CUSTODY_TOKEN is the workload's token",
    )
    .option('--user-jwt-file <file>', "on-behalf-of: read the user's JWT from a file")
    .option('--user-jwt <->', "on-behalf-of: - reads the user's JWT from stdin")
    .action(async (ref: string | undefined, o, cmd: Command) => {
      const out = outputOf(cmd);
      const result = o.onBehalfOf !== undefined ? await onBehalfOf(ref, o, cmd) : await login(ref, o, cmd);
      if (out.json) return out.printJson(result);
      out.raw(`${result.token}\n`);
      const who = `${result.identity.name} (${result.identity.kind} ${result.identity.id})`;
      out.note(
        `${result.actor ? `Acting for ${who} as ${result.actor.name}` : `Logged in as ${who}`}` +
          `; token ${result.accessor} expires ${result.expires_at ?? 'never'}.`,
      );
    });
  examples(command, [
    '$ custody login prod/k8s/trainer --jwt - < /var/run/secrets/tokens/custody',
    '$ export CUSTODY_TOKEN=$(custody login prod/jwt/ci --jwt-file "$ACTIONS_ID_TOKEN_FILE")',
    '$ export CUSTODY_TOKEN=$(custody login prod/approle/trainer --role-id "$ROLE_ID" --secret-id-file /run/secret-id)',
    '$ custody login --on-behalf-of prod/entra/people --user-jwt-file user.jwt --format json',
    '',
    'The token alone goes to stdout (json: token, accessor, identity, expires_at, …); who logged in',
    'goes to stderr. Credentials are read from files or stdin only, never from the command line.',
  ]);
}
