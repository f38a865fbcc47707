import type { Command } from 'commander';
import { describeError, redact } from '../../client/redact.js';
import { VERSION } from '../../version.js';
import { examples, outputOf } from '../context.js';
import { effectiveEnv } from './doctor.js';

const SET = '[redacted]';
const secret = (v: string | undefined): string | null => (v ? SET : null);

/** The resolved client configuration with every secret replaced by a marker. */
export async function describeConfig(env: NodeJS.ProcessEnv): Promise<Record<string, unknown>> {
  // Imported here: the client SDK loads the AWS and Azure SDKs, which `--help` does not need.
  const { ConfigError, loadConfig } = await import('../../client/config.js');
  const known = [
    'CUSTODY_TOKEN',
    'CUSTODY_SECRET_ID',
    'VAULT_TOKEN',
    'VAULT_SECRET_ID',
    'AZURE_CLIENT_SECRET',
    'AWS_SECRET_ACCESS_KEY',
    'AWS_SESSION_TOKEN',
  ]
    .map((k) => env[k])
    .filter((v): v is string => !!v);
  const scrub = <T>(x: T): T => JSON.parse(redact(JSON.stringify(x), known));
  const base = { version: VERSION };
  let c: ReturnType<typeof loadConfig>;
  try {
    c = loadConfig(env);
  } catch (err) {
    const problems = err instanceof ConfigError ? err.problems : [describeError(err)];
    return scrub({ ...base, valid: false, problems });
  }
  const provider = (p: string) => c.providers.includes(p as never);
  return scrub({
    ...base,
    valid: true,
    providers: c.providers,
    allowed_hosts: c.allowedHosts ?? null,
    allowlist_note: c.allowedHosts ? undefined : 'MLFLOW_SECRETS_ALLOWED_HOSTS not set: no host restriction',
    auth_header_name: c.authHeaderName,
    log_level: c.logLevel,
    broker: {
      addr: c.custody.addr ?? null,
      ca_cert: c.custody.caCertFile ?? null,
      token: secret(c.custody.token),
      login: c.custody.login
        ? `${c.custody.login.env}/${c.custody.login.method}/${c.custody.login.role}${c.custody.login.approle ? ' (approle, secret id redacted)' : c.custody.login.jwtFile ? ` (jwt file ${c.custody.login.jwtFile})` : ' (kubernetes)'}`
        : null,
      secret: c.custody.secretRef ?? null,
      auth_mode: c.custody.authMode,
      ttl_sec: c.custody.ttlSec,
      enabled: provider('custody'),
    },
    vault: {
      addr: c.vault.addr ?? null,
      ca_cert: c.vault.caCertFile ?? null,
      token: secret(c.vault.token),
      role_id: c.vault.roleId ?? null,
      secret_id: secret(c.vault.secretId),
      namespace: c.vault.namespace ?? null,
      secret_path: c.vault.secretPath ?? null,
      auth_mode: c.vault.authMode,
      ttl_sec: c.vault.ttlSec,
      enabled: provider('vault'),
    },
    aws: {
      region: c.aws.region ?? null,
      secret_id: c.aws.secretId ?? null,
      access_key_id: env.AWS_ACCESS_KEY_ID ?? null,
      secret_access_key: secret(env.AWS_SECRET_ACCESS_KEY),
      auth_mode: c.aws.authMode,
      ttl_sec: c.aws.ttlSec,
      enabled: provider('aws-secrets-manager'),
    },
    azure: {
      vault_url: c.azure.vaultUrl ?? null,
      secret_name: c.azure.secretName ?? null,
      secret_version: c.azure.secretVersion ?? null,
      cloud: c.azure.cloud,
      tenant_id: env.AZURE_TENANT_ID ?? null,
      client_id: env.AZURE_CLIENT_ID ?? null,
      client_secret: secret(env.AZURE_CLIENT_SECRET),
      auth_mode: c.azure.authMode,
      ttl_sec: c.azure.ttlSec,
      enabled: provider('azure-key-vault'),
    },
    // A fresh process has read nothing yet.
    cache: { entries: 0, state: 'empty (fresh process)' },
  });
}

export function registerInfo(program: Command): void {
  const info = program
    .command('info')
    .description('Show the version and the resolved client configuration (secrets redacted)')
    .action(async (_o, cmd: Command) => {
      const data = await describeConfig(effectiveEnv(cmd));
      const out = outputOf(cmd);
      if (out.json) out.printJson(data);
      else {
        const flat: Record<string, unknown> = {};
        for (const [k, v] of Object.entries(data)) {
          if (v && typeof v === 'object' && !Array.isArray(v))
            for (const [k2, v2] of Object.entries(v)) flat[`${k}.${k2}`] = v2;
          else if (v !== undefined) flat[k] = v;
        }
        out.object(flat);
      }
    });
  examples(info, ['$ custody info', '$ custody info --format json']);
}
