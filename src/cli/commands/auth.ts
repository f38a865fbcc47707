import type { Command } from 'commander';
import { pathOf } from '../api-client.js';
import * as A from '../args.js';
import { clientOf, collect, examples, outputOf } from '../context.js';
import { usageError } from '../errors.js';
import { credentialInput, readTextFile } from '../input.js';
import type { Output } from '../output.js';

/** Wire shapes of the native API (snake_case, as returned). */
interface AuthMethod {
  env: string;
  name: string;
  type: string;
  config: Record<string, unknown>;
  created_at: string;
  updated_at: string;
}
interface LoginRole {
  env: string;
  method: string;
  name: string;
  type: string;
  config: Record<string, unknown>;
  created_at: string;
  updated_at: string;
}
interface SecretId {
  secret_id: string;
  secret_id_accessor: string;
  expires_at: string | null;
  uses_left: number | null;
}
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

const PRESETS = ['azure', 'github', 'kubernetes', 'okta', 'google'] as const;
const METHOD_FIELDS = ['env', 'name', 'type', 'config', 'created_at', 'updated_at'];
const ROLE_FIELDS = ['env', 'method', 'name', 'type', 'config', 'created_at', 'updated_at'];

const methodUrl = (env: string, method?: string) =>
  `/v1/auth/methods/${encodeURIComponent(env)}${method === undefined ? '' : `/${encodeURIComponent(method)}`}`;
const roleUrl = ([env, method, role]: string[]) =>
  `${methodUrl(env, method)}/roles/${encodeURIComponent(role)}`;

/** A method's config for a table: key lists joined, the CA shown as a size, not its text. */
function configRows(config: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(config)) {
    if (k === 'public_keys' && Array.isArray(v)) out[k] = v.length ? `${v.length} PEM key(s)` : null;
    else if (k === 'ca_pem') out[k] = typeof v === 'string' && v ? `PEM (${v.length} bytes)` : null;
    else out[k] = v;
  }
  return out;
}

/** `{ ...fields, config.* }` as `key: value` lines, so nested settings read one per line. */
function flatten(obj: { config: Record<string, unknown> }, fields: string[]): Record<string, unknown> {
  const pick = (names: string[]) => Object.fromEntries(names.map((f) => [f, (obj as any)[f]]));
  const times = ['created_at', 'updated_at'];
  return {
    ...pick(fields.filter((f) => f !== 'config' && !times.includes(f))),
    ...configRows(obj.config),
    ...pick(times),
  };
}

/** json: the API response as is; table: one setting per line. */
function showFlat(out: Output, obj: AuthMethod | LoginRole, fields: string[]): void {
  if (out.json) out.printJson(obj);
  else out.object(flatten(obj, fields));
}

/** Repeated `--bound-claim k=v`: a key given once is a string, repeated keys a list of accepted values. */
function boundClaims(list: string[] | undefined): Record<string, string | string[]> | undefined {
  if (!list?.length) return undefined;
  const out: Record<string, string[]> = {};
  for (const item of list) {
    const [k, v] = A.pair(item, '--bound-claim');
    out[k] = [...(out[k] ?? []), v];
  }
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.length === 1 ? v[0] : v]));
}

function rejectFlags(o: Record<string, unknown>, flags: Record<string, string>, why: string): void {
  const given = Object.entries(flags)
    .filter(([key]) => o[key] !== undefined && o[key] !== false)
    .map(([, flag]) => flag);
  if (given.length)
    throw usageError(`${given.join(', ')} ${given.length === 1 ? 'does' : 'do'} not apply ${why}`);
}

const JWT_METHOD_FLAGS = {
  issuer: '--issuer',
  discovery: '--discovery',
  jwksUrl: '--jwks-url',
  publicKeyFile: '--public-key-file',
  audience: '--audience',
  preset: '--preset',
  caCertFile: '--ca-cert-file',
  leeway: '--leeway',
};
const JWT_ROLE_FLAGS = {
  userClaim: '--user-claim',
  boundSubject: '--bound-subject',
  boundAudience: '--bound-audience',
  boundClaim: '--bound-claim',
  claimMapping: '--claim-mapping',
  groupsClaim: '--groups-claim',
  kind: '--kind',
};
const APPROLE_ROLE_FLAGS = {
  secretIdTtl: '--secret-id-ttl',
  secretIdNumUses: '--secret-id-num-uses',
  secretIdBoundCidr: '--secret-id-bound-cidr',
  tokenBoundCidr: '--token-bound-cidr',
};

async function jwtMethodConfig(o: Record<string, any>): Promise<Record<string, unknown>> {
  if (o.issuer === undefined && o.preset === undefined) {
    throw usageError(
      'A jwt method needs --issuer URL (or a --preset with a fixed issuer)',
      'Example: custody auth enable prod jwt --issuer https://token.actions.githubusercontent.com --audience custody',
    );
  }
  const sources = [o.discovery === true, o.jwksUrl !== undefined, (o.publicKeyFile?.length ?? 0) > 0];
  if (sources.filter(Boolean).length > 1) {
    throw usageError(
      'Give one key source: --discovery, --jwks-url or --public-key-file',
      'Without any, the keys are found through OIDC discovery on the issuer.',
    );
  }
  const publicKeys: string[] = [];
  for (const f of o.publicKeyFile ?? []) publicKeys.push((await readTextFile(f, '--public-key-file')).trim());
  return {
    ...(o.issuer !== undefined ? { issuer: o.issuer } : {}),
    ...(o.discovery ? { discovery: true } : {}),
    ...(o.jwksUrl !== undefined ? { jwks_url: o.jwksUrl } : {}),
    ...(publicKeys.length ? { public_keys: publicKeys } : {}),
    ...(o.audience?.length ? { audiences: o.audience } : {}),
    ...(o.preset !== undefined ? { preset: A.oneOf(o.preset, PRESETS, '--preset') } : {}),
    ...(o.caCertFile !== undefined ? { ca_pem: await readTextFile(o.caCertFile, '--ca-cert-file') } : {}),
    ...(o.leeway !== undefined ? { leeway_seconds: A.seconds(o.leeway, '--leeway') } : {}),
  };
}

export function registerAuth(program: Command): void {
  const auth = program
    .command('auth')
    .description('Auth methods (jwt, approle), their login roles and AppRole credentials');
  examples(auth, [
    '$ custody auth enable prod jwt --issuer https://token.actions.githubusercontent.com --audience custody',
    '$ custody auth enable prod approle',
    '$ custody auth role write prod/approle/trainer --token-ttl 1h',
    '$ custody auth list prod',
  ]);

  const enable = auth
    .command('enable')
    .description('Configure an auth method in an environment')
    .argument('<ENV>', 'the environment')
    .argument('<type>', 'jwt or approle')
    .option('--name <name>', 'mount name (default: the type); lets one environment trust several issuers')
    .option('--issuer <url>', 'jwt: the issuer (iss) tokens must carry')
    .option('--discovery', 'jwt: find the signing keys through OIDC discovery on the issuer (the default)')
    .option('--jwks-url <url>', 'jwt: fetch the signing keys from this JWKS URL')
    .option('--public-key-file <file>', 'jwt: a PEM public key to verify with (repeatable)', collect)
    .option('--audience <aud>', 'jwt: an accepted audience (repeatable)', collect)
    .option('--preset <name>', `jwt: provider defaults: ${PRESETS.join(', ')}`)
    .option('--ca-cert-file <file>', "jwt: CA certificate(s) (PEM) to trust for the issuer's TLS")
    .option('--leeway <duration>', 'jwt: clock skew allowed on exp/nbf/iat (default 60s, at most 300s)')
    .action(async (env: string, type: string, o, cmd: Command) => {
      A.envName(env);
      const t = A.oneOf(type, ['jwt', 'approle'] as const, 'The type');
      let config: Record<string, unknown> | undefined;
      if (t === 'jwt') config = await jwtMethodConfig(o);
      else rejectFlags(o, JWT_METHOD_FLAGS, 'to an approle method');
      const client = await clientOf(cmd);
      const { body } = await client.post<AuthMethod>(methodUrl(env), {
        type: t,
        ...(o.name !== undefined ? { name: o.name } : {}),
        ...(config ? { config } : {}),
      });
      showFlat(outputOf(cmd), body, METHOD_FIELDS);
    });
  examples(enable, [
    '$ custody auth enable prod jwt --preset github --audience https://github.com/my-org',
    '$ custody auth enable prod jwt --issuer https://login.microsoftonline.com/$TENANT/v2.0 --preset azure \\',
    '    --audience api://custody --name entra',
    '$ custody auth enable prod jwt --issuer https://kubernetes.default.svc --public-key-file sa.pub \\',
    '    --audience custody --name k8s',
    '$ custody auth enable prod jwt --issuer https://idp.internal --ca-cert-file idp-ca.pem --leeway 30s',
    '$ custody auth enable prod approle',
  ]);

  const list = auth
    .command('list')
    .description("List an environment's auth methods")
    .argument('<ENV>', 'the environment')
    .action(async (env: string, _o, cmd: Command) => {
      A.envName(env);
      const client = await clientOf(cmd);
      const { body } = await client.get<{ items: AuthMethod[] }>(methodUrl(env));
      outputOf(cmd).list(
        body,
        body.items,
        [
          { header: 'NAME', get: (m) => m.name },
          { header: 'TYPE', get: (m) => m.type },
          { header: 'ISSUER', get: (m) => m.config.issuer },
          { header: 'PRESET', get: (m) => m.config.preset },
          { header: 'CREATED', get: (m) => m.created_at },
        ],
        `No auth methods in ${env}: add one with \`custody auth enable ${env} approle\`.`,
      );
    });
  examples(list, ['$ custody auth list prod', '$ custody auth list prod --format json']);

  const show = auth
    .command('show')
    .description('Show an auth method and its configuration')
    .argument('<ENV/METHOD>', 'the method, e.g. prod/jwt')
    .action(async (ref: string, _o, cmd: Command) => {
      const [env, method] = A.ref(ref, 'ENV/METHOD', 'prod/jwt');
      const client = await clientOf(cmd);
      const { body } = await client.get<AuthMethod>(methodUrl(env, method));
      showFlat(outputOf(cmd), body, METHOD_FIELDS);
    });
  examples(show, ['$ custody auth show prod/jwt', '$ custody auth show prod/approle --format json']);

  const disable = auth
    .command('disable')
    .description('Remove an auth method with its login roles and secret ids (tokens already issued stay)')
    .argument('<ENV/METHOD>', 'the method')
    .action(async (ref: string, _o, cmd: Command) => {
      const [env, method] = A.ref(ref, 'ENV/METHOD', 'prod/jwt');
      const client = await clientOf(cmd);
      const { body } = await client.call<{ deleted: boolean }>('DELETE', methodUrl(env, method));
      outputOf(cmd).result(body, `Disabled ${env}/${method}: its roles and secret ids are gone.`);
    });
  examples(disable, ['$ custody auth disable prod/approle']);

  registerAuthRoles(auth);

  const roleId = auth
    .command('role-id')
    .description("Print an AppRole role's role id (not a secret on its own; pair it with a secret id)")
    .argument('<ENV/METHOD/ROLE>', 'the AppRole role')
    .action(async (ref: string, _o, cmd: Command) => {
      const parts = A.ref(ref, 'ENV/METHOD/ROLE', 'prod/approle/trainer');
      const client = await clientOf(cmd);
      const { body } = await client.get<{ role_id: string }>(`${roleUrl(parts)}/role-id`);
      const out = outputOf(cmd);
      if (out.json) return out.printJson(body);
      out.raw(`${body.role_id}\n`);
    });
  examples(roleId, [
    '$ custody auth role-id prod/approle/trainer',
    '$ ROLE_ID=$(custody auth role-id prod/approle/trainer)',
  ]);

  const secretId = auth
    .command('secret-id')
    .description('Issue an AppRole secret id: printed once, store it where the workload can read it')
    .argument('<ENV/METHOD/ROLE>', 'the AppRole role')
    .option('--cidr <cidr>', 'only log in from this network (repeatable)', collect)
    .option('--meta <key=value>', 'metadata copied onto tokens it logs in (repeatable)', collect)
    .action(async (ref: string, o, cmd: Command) => {
      const parts = A.ref(ref, 'ENV/METHOD/ROLE', 'prod/approle/trainer');
      const metadata = A.pairs(o.meta, '--meta');
      const client = await clientOf(cmd);
      const { body } = await client.post<SecretId>(`${roleUrl(parts)}/secret-id`, {
        ...(metadata ? { metadata } : {}),
        ...(o.cidr?.length ? { cidrs: o.cidr } : {}),
      });
      const out = outputOf(cmd);
      if (out.json) return out.printJson(body);
      out.raw(`${body.secret_id}\n`);
      out.note(
        `Secret id accessor ${body.secret_id_accessor}; expires ${body.expires_at ?? 'never'}` +
          `${body.uses_left !== null ? `; ${body.uses_left} use(s)` : ''}. It is not shown again.`,
      );
    });
  examples(secretId, [
    '$ custody auth secret-id prod/approle/trainer > secret-id.txt',
    '$ custody auth secret-id prod/approle/trainer --cidr 10.0.0.0/8 --meta job=nightly',
    '$ custody auth secret-id prod/approle/trainer --format json   # secret_id, secret_id_accessor, expires_at',
  ]);
}

function registerAuthRoles(auth: Command): void {
  const role = auth.command('role').description('Login roles of an auth method: who may log in, and how');
  examples(role, [
    '$ custody auth role write prod/jwt/ci --user-claim sub --bound-claim repository=my-org/*',
    '$ custody auth role list prod/jwt',
  ]);

  const write = role
    .command('write')
    .description('Create or replace a login role')
    .argument('<ENV/METHOD/ROLE>', 'the role, e.g. prod/jwt/ci')
    .option('--user-claim <claim>', 'jwt: the claim that names the identity (default sub, or the preset’s)')
    .option('--bound-subject <sub>', 'jwt: the sub the token must carry')
    .option('--bound-audience <aud>', 'jwt: an accepted audience (repeatable)', collect)
    .option(
      '--bound-claim <key=value>',
      'jwt: a required claim value; repeat a key to accept any of several values; * is a wildcard',
      collect,
    )
    .option('--claim-mapping <claim=key>', 'jwt: copy a claim into identity metadata (repeatable)', collect)
    .option('--groups-claim <claim>', 'jwt: the claim listing the identity’s groups')
    .option('--kind <kind>', 'jwt: identity kind, workload or user (cannot change later)')
    .option(
      '--secret-id-ttl <duration>',
      'approle: lifetime of new secret ids (default 24h; 0 = never expire)',
    )
    .option('--secret-id-num-uses <n>', 'approle: logins per secret id (default 0 = unlimited)')
    .option('--secret-id-bound-cidr <cidr>', 'approle: log in only from this network (repeatable)', collect)
    .option('--token-bound-cidr <cidr>', 'approle: tokens work only from this network (repeatable)', collect)
    .option('--token-ttl <duration>', 'lifetime of tokens it logs in (e.g. 1h)')
    .option('--token-max-ttl <duration>', 'longest token life across renewals (e.g. 8h)')
    .action(async (ref: string, o, cmd: Command) => {
      const parts = A.ref(ref, 'ENV/METHOD/ROLE', 'prod/jwt/ci');
      const jwt = Object.keys(JWT_ROLE_FLAGS).some((k) => o[k] !== undefined);
      const approle = Object.keys(APPROLE_ROLE_FLAGS).some((k) => o[k] !== undefined);
      if (jwt && approle) {
        throw usageError(
          'jwt role flags and approle role flags cannot be mixed',
          'A role belongs to one method: --user-claim, --bound-* … for jwt; --secret-id-* for approle.',
        );
      }
      const claimMappings = A.pairs(o.claimMapping, '--claim-mapping');
      const claims = boundClaims(o.boundClaim);
      const body: Record<string, unknown> = {
        ...(o.userClaim !== undefined ? { user_claim: o.userClaim } : {}),
        ...(o.boundSubject !== undefined ? { bound_subject: o.boundSubject } : {}),
        ...(o.boundAudience?.length ? { bound_audiences: o.boundAudience } : {}),
        ...(claims ? { bound_claims: claims } : {}),
        ...(claimMappings ? { claim_mappings: claimMappings } : {}),
        ...(o.groupsClaim !== undefined ? { groups_claim: o.groupsClaim } : {}),
        ...(o.kind !== undefined
          ? { identity_kind: A.oneOf(o.kind, ['workload', 'user'] as const, '--kind') }
          : {}),
        ...(o.secretIdTtl !== undefined
          ? { secret_id_ttl: A.duration(o.secretIdTtl, '--secret-id-ttl') }
          : {}),
        ...(o.secretIdNumUses !== undefined
          ? { secret_id_num_uses: A.integer(o.secretIdNumUses, '--secret-id-num-uses') }
          : {}),
        ...(o.secretIdBoundCidr?.length ? { secret_id_bound_cidrs: o.secretIdBoundCidr } : {}),
        ...(o.tokenBoundCidr?.length ? { token_bound_cidrs: o.tokenBoundCidr } : {}),
        ...(o.tokenTtl !== undefined ? { token_ttl: A.duration(o.tokenTtl, '--token-ttl') } : {}),
        ...(o.tokenMaxTtl !== undefined
          ? { token_max_ttl: A.duration(o.tokenMaxTtl, '--token-max-ttl') }
          : {}),
      };
      const client = await clientOf(cmd);
      const { body: saved } = await client.call<LoginRole>('PUT', roleUrl(parts), { body });
      showFlat(outputOf(cmd), saved, ROLE_FIELDS);
    });
  examples(write, [
    '$ custody auth role write prod/jwt/ci --bound-audience https://github.com/my-org \\',
    "    --bound-claim 'repository=my-org/*' --bound-claim ref=refs/heads/main --bound-claim ref=refs/heads/release \\",
    '    --claim-mapping repository=repo --token-ttl 15m',
    '$ custody auth role write prod/entra/people --kind user --user-claim oid --groups-claim groups --token-ttl 1h',
    '$ custody auth role write prod/approle/trainer --secret-id-ttl 24h --secret-id-num-uses 10 \\',
    '    --token-bound-cidr 10.0.0.0/8 --token-ttl 1h --token-max-ttl 8h',
    '',
    'A role is replaced as a whole: flags you leave out go back to their defaults.',
  ]);

  const read = role
    .command('read')
    .description('Show a login role')
    .argument('<ENV/METHOD/ROLE>', 'the role')
    .action(async (ref: string, _o, cmd: Command) => {
      const parts = A.ref(ref, 'ENV/METHOD/ROLE', 'prod/jwt/ci');
      const client = await clientOf(cmd);
      const { body } = await client.get<LoginRole>(roleUrl(parts));
      showFlat(outputOf(cmd), body, ROLE_FIELDS);
    });
  examples(read, [
    '$ custody auth role read prod/jwt/ci',
    '$ custody auth role read prod/approle/trainer --format json',
  ]);

  const list = role
    .command('list')
    .description("List an auth method's login roles")
    .argument('<ENV/METHOD>', 'the method')
    .action(async (ref: string, _o, cmd: Command) => {
      const [env, method] = A.ref(ref, 'ENV/METHOD', 'prod/jwt');
      const client = await clientOf(cmd);
      const { body } = await client.get<{ items: LoginRole[] }>(`${methodUrl(env, method)}/roles`);
      outputOf(cmd).list(
        body,
        body.items,
        [
          { header: 'NAME', get: (r) => r.name },
          { header: 'TYPE', get: (r) => r.type },
          {
            header: 'KIND',
            get: (r) => r.config.identity_kind ?? (r.type === 'approle' ? 'workload' : null),
          },
          { header: 'TOKEN TTL', get: (r) => r.config.token_ttl },
          { header: 'TOKEN MAX TTL', get: (r) => r.config.token_max_ttl },
          { header: 'UPDATED', get: (r) => r.updated_at },
        ],
        `No login roles in ${env}/${method}.`,
      );
    });
  examples(list, ['$ custody auth role list prod/jwt']);

  const del = role
    .command('delete')
    .description('Delete a login role (and its AppRole secret ids)')
    .argument('<ENV/METHOD/ROLE>', 'the role')
    .action(async (ref: string, _o, cmd: Command) => {
      const parts = A.ref(ref, 'ENV/METHOD/ROLE', 'prod/jwt/ci');
      const client = await clientOf(cmd);
      const { body } = await client.call<{ deleted: boolean }>('DELETE', roleUrl(parts));
      outputOf(cmd).result(body, `Deleted the login role ${parts.join('/')}.`);
    });
  examples(del, ['$ custody auth role delete prod/approle/trainer']);
}

export function registerLogin(program: Command): void {
  const login = program
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
      let result: LoginResult;
      if (o.onBehalfOf !== undefined) {
        if (ref !== undefined)
          throw usageError('Give the login role once: as --on-behalf-of ENV/METHOD/ROLE');
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
        ({ body: result } = await client.post<LoginResult>(`/v1/auth/obo/${parts.map(pathOf).join('/')}`, {
          user_jwt: userJwt,
        }));
      } else {
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
        ({ body: result } = await client.post<LoginResult>(
          `/v1/auth/login/${parts.map(pathOf).join('/')}`,
          body,
          {
            auth: false,
          },
        ));
      }
      if (out.json) return out.printJson(result);
      out.raw(`${result.token}\n`);
      const who = `${result.identity.name} (${result.identity.kind} ${result.identity.id})`;
      out.note(
        `${result.actor ? `Acting for ${who} as ${result.actor.name}` : `Logged in as ${who}`}` +
          `; token ${result.accessor} expires ${result.expires_at ?? 'never'}.`,
      );
    });
  examples(login, [
    '$ custody login prod/k8s/trainer --jwt - < /var/run/secrets/tokens/custody',
    '$ export CUSTODY_TOKEN=$(custody login prod/jwt/ci --jwt-file "$ACTIONS_ID_TOKEN_FILE")',
    '$ export CUSTODY_TOKEN=$(custody login prod/approle/trainer --role-id "$ROLE_ID" --secret-id-file /run/secret-id)',
    '$ custody login --on-behalf-of prod/entra/people --user-jwt-file user.jwt --format json',
    '',
    'The token alone goes to stdout (json: token, accessor, identity, expires_at, …); who logged in',
    'goes to stderr. Credentials are read from files or stdin only, never from the command line.',
  ]);
}
