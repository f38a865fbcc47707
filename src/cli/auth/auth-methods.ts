import type { Command } from 'commander';
import * as A from '../args.js';
import { clientOf, collect, examples, outputOf } from '../context.js';
import { usageError } from '../errors.js';
import { readTextFile } from '../input.js';
import { given, listField, rejectFlags, showSettings } from '../role-options.js';
import { type AuthMethod, methodRows, methodUrl } from './api.js';

/** `custody auth enable|list|show|disable`: the auth methods of an environment. */

const PRESETS = ['azure', 'github', 'kubernetes', 'okta', 'google'] as const;

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
    ...given(o.issuer, 'issuer'),
    ...(o.discovery ? { discovery: true } : {}),
    ...given(o.jwksUrl, 'jwks_url'),
    ...listField(publicKeys, 'public_keys'),
    ...listField(o.audience, 'audiences'),
    ...given(o.preset, 'preset', (v: string) => A.oneOf(v, PRESETS, '--preset')),
    ...(o.caCertFile !== undefined ? { ca_pem: await readTextFile(o.caCertFile, '--ca-cert-file') } : {}),
    // A number of seconds here, where the role TTLs go to the broker as written.
    ...given(o.leeway, 'leeway_seconds', (v: string) => A.seconds(v, '--leeway')),
  };
}

export function registerAuthMethods(auth: Command): void {
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
        ...given(o.name, 'name'),
        ...(config ? { config } : {}),
      });
      showSettings(outputOf(cmd), body, methodRows);
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
      showSettings(outputOf(cmd), body, methodRows);
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
}
