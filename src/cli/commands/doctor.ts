import type { Command } from 'commander';
import { type Agent, request } from 'undici';
import type { AuthMode, ClientConfig, ProviderName } from '../../client/config.js';
import { statusOf } from '../../client/errors.js';
import { HostPolicy } from '../../client/mlflow/allowlist.js';
import { type Credential, credentialFor, parseSecret } from '../../client/mlflow/credentials.js';
import { describeError, redact } from '../../client/redact.js';
import { parseDuration } from '../../duration.js';
import * as A from '../args.js';
import { examples, globalsOf, outputOf } from '../context.js';
import { usageError } from '../errors.js';

/*
 * `custody doctor`: every step between a job and an authenticated MLflow request, each a
 * PASS/FAIL/WARN line with an actionable hint. Secret values are never printed: every line goes
 * through the client's `redact` with the values this process has seen. The allowlist and the
 * secret formats are the client's own (src/client/mlflow), so doctor judges exactly what the proxy
 * and fetchWithAuth would send.
 */

/** The client SDK loads the AWS and Azure SDKs: imported only when a command runs, not for `--help`. */
async function sdk() {
  const [cfg, cc, http] = await Promise.all([
    import('../../client/config.js'),
    import('../../client/custody-client.js'),
    import('../../client/http.js'),
  ]);
  return { ...cfg, ...cc, ...http };
}
type Sdk = Awaited<ReturnType<typeof sdk>>;

export type CheckStatus = 'PASS' | 'FAIL' | 'WARN';
export interface Check {
  status: CheckStatus;
  name: string;
  detail: string;
  hint?: string;
}

/** Env from the global flags (`--addr`, `--token`, `--ca-cert`) over the process environment. */
export function effectiveEnv(
  cmd: Command,
  extra: Record<string, string | undefined> = {},
): NodeJS.ProcessEnv {
  const g = globalsOf(cmd);
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (g.addr) env.CUSTODY_ADDR = g.addr;
  if (g.token) env.CUSTODY_TOKEN = g.token;
  if (g.caCert) env.CUSTODY_CACERT = g.caCert;
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) env[k] = v;
  return env;
}

// ---- network error classification -----------------------------------------------------------

const TLS_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_GET_ISSUER_CERT',
  'CERT_HAS_EXPIRED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_UNTRUSTED',
]);

function errorCodes(err: unknown): string[] {
  const codes: string[] = [];
  let e: unknown = err;
  for (let i = 0; i < 6 && e && typeof e === 'object'; i++) {
    const c = (e as { code?: unknown }).code;
    if (typeof c === 'string') codes.push(c);
    const errors = (e as { errors?: unknown }).errors;
    if (Array.isArray(errors)) for (const x of errors) codes.push(...errorCodes(x));
    e = (e as { cause?: unknown }).cause;
  }
  return codes;
}

/** A network failure → detail and hint (TLS trust, DNS, refused, timeout). */
export function classifyNetworkError(
  err: unknown,
  target: string,
  caVar: string,
): { detail: string; hint: string } {
  const codes = errorCodes(err);
  const text = describeError(err);
  if (codes.some((c) => TLS_CODES.has(c)) || /certificate|self[- ]signed/i.test(text)) {
    return {
      detail: `TLS: the certificate of ${target} is not trusted (${codes.find((c) => TLS_CODES.has(c)) ?? text})`,
      hint: `set ${caVar} (or REQUESTS_CA_BUNDLE) to the PEM file of the CA that signed it`,
    };
  }
  if (codes.includes('ENOTFOUND') || codes.includes('EAI_AGAIN')) {
    return {
      detail: `DNS: ${target} does not resolve`,
      hint: 'check the host name in the address and the DNS configuration of this machine',
    };
  }
  if (codes.includes('ECONNREFUSED')) {
    return {
      detail: `connection refused by ${target}`,
      hint: 'is the server running and listening on that port? check the address and any firewall',
    };
  }
  if (codes.some((c) => /TIMEOUT|ETIMEDOUT|UND_ERR_CONNECT_TIMEOUT|ABORT/i.test(c))) {
    return {
      detail: `timed out connecting to ${target}`,
      hint: 'check the network path, proxy and firewall',
    };
  }
  return {
    detail: `${target}: ${text}`,
    hint: 'check the address, the network and TLS trust (CA certificate)',
  };
}

// ---- the checks ---------------------------------------------------------------------------

interface DoctorOptions {
  dryRun?: string;
  expect?: string;
  secret?: string;
  miTimeout?: string;
}

const fmtDuration = (sec: number): string => {
  if (sec < 120) return `${Math.round(sec)}s`;
  if (sec < 7200) return `${Math.round(sec / 60)}m`;
  return `${(sec / 3600).toFixed(1).replace(/\.0$/, '')}h`;
};

class Doctor {
  readonly checks: Check[] = [];
  readonly known = new Set<string>();
  constructor(readonly lib: Sdk) {}
  credential: { provider: ProviderName; cred: Credential } | undefined;

  add(status: CheckStatus, name: string, detail: string, hint?: string): void {
    const known = [...this.known];
    this.checks.push({
      status,
      name: redact(name, known),
      detail: redact(detail, known),
      ...(hint && status !== 'PASS' ? { hint: redact(hint, known) } : {}),
    });
  }

  remember(...values: (string | undefined)[]): void {
    for (const v of values) if (v) this.known.add(v);
  }
}

function permissionHint(err: unknown, ref: string): string {
  const e = err as { message?: string; hint?: string };
  const m = /Not allowed to (\S+) on (\S+)/.exec(e.message ?? '');
  const action = m ? m[1] : 'secrets/read';
  const scope = m ? m[2] : ref;
  return `the caller lacks the "${action}" action on ${scope}: ask an administrator for a role that grants it (e.g. \`custody access assign --role secrets-user --scope ${scope.replace(/^(\w[\w-]*)\/(?!secrets\/)/, '$1/secrets/')} …\`)${e.hint ? `; broker: ${e.hint}` : ''}`;
}

async function checkCustody(d: Doctor, config: ClientConfig, expectSec: number | undefined): Promise<void> {
  const c = config.custody;
  const addr = c.addr!;
  d.remember(c.token, c.login?.approle?.secretId);
  // Reachability.
  let agent: Agent | undefined;
  try {
    agent = d.lib.createAgent({ caCertFile: c.caCertFile });
  } catch (err) {
    d.add(
      'FAIL',
      'custody: reachable',
      `cannot read CUSTODY_CACERT: ${describeError(err)}`,
      'set CUSTODY_CACERT to a readable PEM file',
    );
    return;
  }
  try {
    const res = await request(`${addr.replace(/\/+$/, '')}/v1/sys/health`, {
      dispatcher: agent,
      signal: AbortSignal.timeout(10_000),
    });
    const body = (await res.body.json().catch(() => ({}))) as { sealed?: boolean; initialized?: boolean };
    if (res.statusCode === 200)
      d.add('PASS', 'custody: reachable', `${addr} answers (TLS trusted, unsealed)`);
    else if (body.sealed) {
      d.add(
        'FAIL',
        'custody: reachable',
        `${addr} is sealed (HTTP ${res.statusCode})`,
        'unseal it: `custody operator unseal`',
      );
      return;
    } else d.add('WARN', 'custody: reachable', `${addr} answered HTTP ${res.statusCode} to its health check`);
  } catch (err) {
    const { detail, hint } = classifyNetworkError(err, addr, 'CUSTODY_CACERT');
    d.add('FAIL', 'custody: reachable', detail, hint);
    return;
  } finally {
    await agent.close().catch(() => {});
  }

  // Authentication.
  let client: InstanceType<Sdk['CustodyClient']>;
  try {
    client = new d.lib.CustodyClient({
      addr,
      token: c.login ? undefined : c.token,
      caCertFile: c.caCertFile,
      login: c.login,
      cacheTtlMs: 0,
      autoRenew: false,
      retry: { attempts: 1 },
      env: {},
    });
  } catch (err) {
    d.add('FAIL', 'custody: authentication', describeError(err), 'set CUSTODY_TOKEN or CUSTODY_LOGIN');
    return;
  }
  try {
    let self: any;
    try {
      if (c.login) {
        const s = await client.login();
        d.remember(s.token);
      }
      self = await client.lookupSelf();
    } catch (err) {
      const status = statusOf(err);
      const hint =
        status === 401
          ? c.login
            ? `login ${c.login.env}/${c.login.method}/${c.login.role} was refused: check the role and its credential (secret id, JWT audience and issuer)`
            : 'the token is expired, revoked or unknown: get a new one (`custody login …` or `custody token create`) and set CUSTODY_TOKEN'
          : ((err as { hint?: string }).hint ?? 'check the token and the broker logs');
      d.add('FAIL', 'custody: authentication', describeError(err), hint);
      return;
    }
    const ttl = typeof self.ttl === 'number' ? self.ttl : undefined;
    const who = self.display_name ?? self.identity?.name ?? self.accessor ?? 'token';
    d.add(
      'PASS',
      'custody: authentication',
      `token valid (${who}${c.login ? `, logged in via ${c.login.env}/${c.login.method}/${c.login.role}` : ''}); ttl ${ttl === undefined || ttl === 0 ? 'none (never expires)' : fmtDuration(ttl)}${self.renewable === false ? ', not renewable' : ''}`,
    );

    // Permission + secret format.
    const ref = c.secretRef!;
    let value: string;
    try {
      value = await client.getSecret(ref, { noCache: true });
      d.remember(value);
    } catch (err) {
      const status = statusOf(err);
      if (status === 403) d.add('FAIL', 'custody: permission', describeError(err), permissionHint(err, ref));
      else if (status === 404)
        d.add(
          'FAIL',
          'custody: permission',
          `secret ${ref} not found`,
          'check CUSTODY_MLFLOW_SECRET (ENV/NAME[#field]) or create it with `custody kv put`',
        );
      else d.add('FAIL', 'custody: permission', describeError(err), (err as { hint?: string }).hint);
      return;
    }
    d.add('PASS', 'custody: permission', `may read ${ref}`);
    formatCheck(d, 'custody', value, c.authMode, config.authHeaderName);

    // Lifetimes.
    if (expectSec !== undefined) {
      const now = Date.now();
      const exp = self.expires_at ? Date.parse(self.expires_at) : undefined;
      const maxExp = self.max_expires_at ? Date.parse(self.max_expires_at) : undefined;
      const need = now + expectSec * 1000;
      const want = fmtDuration(expectSec);
      if (exp === undefined || exp >= need)
        d.add(
          'PASS',
          'custody: token lifetime',
          `the token lives ${exp === undefined ? 'forever' : fmtDuration((exp - now) / 1000)} ≥ ${want}`,
        );
      else if (self.renewable !== false && (maxExp === undefined || maxExp >= need))
        d.add(
          'PASS',
          'custody: token lifetime',
          `ttl ${fmtDuration((exp - now) / 1000)} < ${want}, but it renews up to ${maxExp === undefined ? 'no limit' : fmtDuration((maxExp - now) / 1000)}`,
        );
      else if (c.login)
        d.add(
          'WARN',
          'custody: token lifetime',
          `the token ends in ${fmtDuration(((maxExp ?? exp) - now) / 1000)} < ${want}; the client logs in again then`,
          'make sure the login credential (JWT file, secret id) stays valid for the whole job',
        );
      else
        d.add(
          'FAIL',
          'custody: token lifetime',
          `the token ends in ${fmtDuration(((maxExp ?? exp) - now) / 1000)}, before the expected ${want}`,
          'use a login method (CUSTODY_LOGIN) so the client can log in again, or a token with a longer --max-ttl',
        );
      const cache = config.custody.ttlSec;
      d.add(
        'PASS',
        'custody: cache ttl',
        `the secret is re-read every ${fmtDuration(cache)} (MLFLOW_CUSTODY_TTL_SEC)`,
      );
    }
  } finally {
    await client.close().catch(() => {});
  }
}

function formatCheck(
  d: Doctor,
  provider: ProviderName,
  value: string,
  mode: AuthMode,
  headerName: string,
): void {
  try {
    const secret = parseSecret(value);
    const cred = credentialFor(secret, { authMode: mode, headerName });
    d.remember(...cred.secrets, cred.value);
    d.add(
      'PASS',
      `${provider}: secret format`,
      `${secret.kind === 'basic' ? 'username + password' : 'token'} (${mode} mode)`,
    );
    d.credential ??= { provider, cred };
  } catch (err) {
    d.add(
      'FAIL',
      `${provider}: secret format`,
      (err as Error).message,
      'store {"token":"…"} for bearer mode or {"username":"…","password":"…"} for basic mode',
    );
  }
}

/** Azure: which credential of the chain wins, each probed with a timeout. */
async function checkAzureChain(d: Doctor, miTimeoutMs: number): Promise<void> {
  const id = await import('@azure/identity');
  const scope = 'https://vault.azure.net/.default';
  const chain: [string, () => { getToken: (s: string, o?: any) => Promise<unknown> }, string][] = [
    [
      'EnvironmentCredential',
      () => new id.EnvironmentCredential(),
      'AZURE_TENANT_ID/AZURE_CLIENT_ID + secret or certificate',
    ],
    [
      'WorkloadIdentityCredential',
      () => new id.WorkloadIdentityCredential(),
      'AZURE_FEDERATED_TOKEN_FILE (AKS workload identity)',
    ],
    [
      'ManagedIdentityCredential',
      () =>
        new id.ManagedIdentityCredential(
          process.env.AZURE_CLIENT_ID ? { clientId: process.env.AZURE_CLIENT_ID } : {},
        ),
      'the instance metadata endpoint',
    ],
    ['AzureCliCredential', () => new id.AzureCliCredential({ processTimeoutInMs: 10_000 }), '`az login`'],
  ];
  const why: string[] = [];
  for (const [name, make, source] of chain) {
    const isMi = name === 'ManagedIdentityCredential';
    try {
      const cred = make();
      const signal = AbortSignal.timeout(isMi ? miTimeoutMs : 15_000);
      const t = (await cred.getToken(scope, { abortSignal: signal })) as {
        expiresOnTimestamp?: number;
      } | null;
      if (t) {
        d.add(
          'PASS',
          'azure-key-vault: authentication',
          `${name} won (${source})${why.length ? `; before it: ${why.join('; ')}` : ''}`,
        );
        return;
      }
      why.push(`${name}: no token`);
    } catch (err) {
      const msg = describeError(err).split('\n')[0];
      why.push(
        `${name}: ${isMi && /abort|timeout/i.test(msg) ? `no answer within ${miTimeoutMs}ms` : msg.slice(0, 160)}`,
      );
    }
  }
  d.add(
    'FAIL',
    'azure-key-vault: authentication',
    `no credential of the chain worked: ${why.join('; ')}`,
    'set AZURE_TENANT_ID/AZURE_CLIENT_ID/AZURE_CLIENT_SECRET, enable workload or managed identity, or `az login`; raise --mi-timeout on a slow metadata endpoint',
  );
}

async function checkGenericProvider(
  d: Doctor,
  config: ClientConfig,
  p: ProviderName,
  miTimeoutMs: number,
): Promise<void> {
  if (p === 'azure-key-vault') await checkAzureChain(d, miTimeoutMs);
  if (p === 'vault') d.remember(config.vault.token, config.vault.secretId);
  const [provider] = d.lib.providersFromConfig({ ...config, providers: [p] });
  const ref = d.lib.secretRefFor(config, p);
  try {
    const value = await provider.get(ref, { version: d.lib.secretVersionFor(config, p) });
    d.remember(value);
    d.add('PASS', `${p}: reachable`, 'answered');
    d.add('PASS', `${p}: permission`, `may read ${ref}`);
    const mode =
      p === 'vault'
        ? config.vault.authMode
        : p === 'aws-secrets-manager'
          ? config.aws.authMode
          : config.azure.authMode;
    formatCheck(d, p, value, mode, config.authHeaderName);
  } catch (err) {
    const status = statusOf(err);
    const msg = describeError(err);
    if (status === undefined) {
      const caVar = p === 'vault' ? 'VAULT_CACERT' : 'REQUESTS_CA_BUNDLE';
      const { detail, hint } = classifyNetworkError(err, p, caVar);
      d.add('FAIL', `${p}: reachable`, /TLS|DNS|refused|timed out/.test(detail) ? detail : msg, hint);
    } else if (status === 401)
      d.add(
        'FAIL',
        `${p}: authentication`,
        msg,
        p === 'vault'
          ? 'VAULT_TOKEN is expired or invalid: log in again (or check VAULT_ROLE_ID/VAULT_SECRET_ID)'
          : 'the credential was refused: check it is valid and for the right tenant/audience',
      );
    else if (status === 403)
      d.add(
        'FAIL',
        `${p}: permission`,
        msg,
        p === 'azure-key-vault'
          ? 'the identity may not get secrets: with the Azure RBAC permission model assign it the "Key Vault Secrets User" role on the vault (Microsoft.KeyVault/vaults/secrets/getSecret/action); with the access-policy model add a policy granting secret Get'
          : p === 'aws-secrets-manager'
            ? 'the IAM principal lacks secretsmanager:GetSecretValue (and kms:Decrypt for a customer key) on the secret'
            : 'the Vault policy lacks "read" on the secret path',
      );
    else if (status === 404)
      d.add(
        'FAIL',
        `${p}: permission`,
        `${ref} not found: ${msg}`,
        'check the secret name/path configured for this provider',
      );
    else d.add('FAIL', `${p}: permission`, msg);
  } finally {
    await provider.close().catch(() => {});
  }
}

async function checkMlflow(d: Doctor, config: ClientConfig, url: URL): Promise<void> {
  const host = url.hostname.toLowerCase();
  const allowed = config.allowedHosts ?? [];
  const decision = new HostPolicy({ allowedHosts: allowed }).check(url);
  if (!decision.allowed) {
    const why =
      decision.reason === 'insecure'
        ? `plain http to ${host} would send the credential in clear text`
        : decision.reason === 'not-allowed'
          ? `${host} matches none of MLFLOW_SECRETS_ALLOWED_HOSTS (${allowed.join(', ')})`
          : decision.message;
    d.add(
      'FAIL',
      'allowlist',
      `credentials refused for ${url.origin}: ${why}`,
      decision.reason === 'insecure'
        ? 'use https for a non-loopback MLflow server'
        : `add the host to MLFLOW_SECRETS_ALLOWED_HOSTS if it is yours (beware look-alike domains)`,
    );
    d.add('WARN', 'mlflow: authenticated request', 'skipped: the host is not allowed');
    return;
  }
  if (allowed.length === 0) {
    d.add(
      'WARN',
      'allowlist',
      `MLFLOW_SECRETS_ALLOWED_HOSTS is not set: credentials would be sent to any host, ${host} included`,
      `set MLFLOW_SECRETS_ALLOWED_HOSTS=${url.hostname}`,
    );
  } else {
    d.add('PASS', 'allowlist', `${host} is on MLFLOW_SECRETS_ALLOWED_HOSTS (${allowed.join(', ')})`);
  }
  if (!d.credential) {
    d.add('WARN', 'mlflow: authenticated request', 'skipped: no usable credential');
    return;
  }
  const target = `${url.origin}${url.pathname.replace(/\/+$/, '')}/api/2.0/mlflow/experiments/search?max_results=1`;
  const { header: headerName, value: header } = d.credential.cred;
  const ca = process.env.REQUESTS_CA_BUNDLE ?? process.env.MLFLOW_TRACKING_SERVER_CERT_PATH;
  let agent: Agent | undefined;
  try {
    agent = ca ? d.lib.createAgent({ caCertFile: ca }) : undefined;
    const res = await request(target, {
      headers: { [headerName]: header, accept: 'application/json' },
      dispatcher: agent,
      signal: AbortSignal.timeout(15_000),
      maxRedirections: 0,
    } as Parameters<typeof request>[1]);
    const text = (await res.body.text()).slice(0, 300);
    const where = `GET ${url.origin}…/experiments/search`;
    if (res.statusCode === 200)
      d.add(
        'PASS',
        'mlflow: authenticated request',
        `${where} → 200 with the ${d.credential.provider} credential`,
      );
    else if (res.statusCode === 401)
      d.add(
        'FAIL',
        'mlflow: authenticated request',
        `${where} → 401: MLflow refused the credential`,
        'the stored username/password or token is wrong or expired: update the secret',
      );
    else if (res.statusCode === 403)
      d.add(
        'FAIL',
        'mlflow: authenticated request',
        `${where} → 403: authenticated but not permitted`,
        'grant the MLflow user permission (e.g. READ on experiments) or set a default permission',
      );
    else if (res.statusCode >= 300 && res.statusCode < 400)
      d.add(
        'FAIL',
        'mlflow: authenticated request',
        `${where} → ${res.statusCode} redirect to ${String(res.headers.location ?? '?')}`,
        'use the final URL: credentials are not sent across redirects',
      );
    else
      d.add(
        'FAIL',
        'mlflow: authenticated request',
        `${where} → HTTP ${res.statusCode}: ${text.replace(/\s+/g, ' ')}`,
      );
  } catch (err) {
    const { detail, hint } = classifyNetworkError(err, url.origin, 'REQUESTS_CA_BUNDLE');
    d.add('FAIL', 'mlflow: authenticated request', detail, hint);
  } finally {
    await agent?.close().catch(() => {});
  }
}

export async function runDoctor(env: NodeJS.ProcessEnv, o: DoctorOptions): Promise<Check[]> {
  const d = new Doctor(await sdk());
  const expectSec = o.expect === undefined ? undefined : parseDuration(o.expect, '--expect');
  const miTimeoutMs = o.miTimeout === undefined ? 2000 : parseDuration(o.miTimeout, '--mi-timeout') * 1000;
  let dryRun: URL | undefined;
  if (o.dryRun !== undefined) {
    try {
      dryRun = new URL(o.dryRun);
    } catch {
      throw usageError(
        `--dry-run is not a URL: ${redact(o.dryRun)}`,
        'Example: --dry-run https://mlflow.example.com',
      );
    }
  }
  const e = { ...env };
  if (o.secret) {
    e.CUSTODY_MLFLOW_SECRET = o.secret;
    if (!e.MLFLOW_SECRETS_AUTH_ENABLE && !e.MLFLOW_SECRETS_AUTH_ENABLE_CUSTODY)
      e.MLFLOW_SECRETS_AUTH_ENABLE = 'custody';
  }
  for (const k of [
    'CUSTODY_TOKEN',
    'VAULT_TOKEN',
    'VAULT_SECRET_ID',
    'CUSTODY_SECRET_ID',
    'AZURE_CLIENT_SECRET',
    'AWS_SECRET_ACCESS_KEY',
    'AWS_SESSION_TOKEN',
  ])
    d.remember(e[k]);
  let config: ClientConfig;
  try {
    config = d.lib.loadConfig(e);
  } catch (err) {
    if (err instanceof d.lib.ConfigError)
      d.add(
        'FAIL',
        'configuration',
        err.problems.join('; '),
        'fix the variables listed (see `custody info`)',
      );
    else d.add('FAIL', 'configuration', describeError(err));
    return d.checks;
  }
  if (config.providers.length === 0) {
    d.add(
      'FAIL',
      'configuration',
      'no provider is enabled',
      'set MLFLOW_SECRETS_AUTH_ENABLE=custody (and CUSTODY_ADDR, CUSTODY_TOKEN, CUSTODY_MLFLOW_SECRET), or pass --secret ENV/NAME',
    );
    return d.checks;
  }
  d.add('PASS', 'configuration', `valid; providers in order: ${config.providers.join(', ')}`);
  for (const p of config.providers) {
    if (p === 'custody') await checkCustody(d, config, expectSec);
    else await checkGenericProvider(d, config, p, miTimeoutMs);
  }
  if (dryRun) await checkMlflow(d, config, dryRun);
  return d.checks;
}

export function registerDoctor(program: Command): void {
  const doctor = program
    .command('doctor')
    .description(
      'Check every step from configuration to an authenticated MLflow request (exit 1 on any FAIL)',
    )
    .option(
      '--dry-run <url>',
      'the MLflow tracking URL: check the allowlist and send one authenticated request',
    )
    .option(
      '--expect <duration>',
      'how long the job runs, e.g. 36h: token and lease lifetimes are checked against it',
    )
    .option(
      '--secret <ref>',
      'ENV/NAME[#field] of the MLflow credential in Custody (default CUSTODY_MLFLOW_SECRET)',
    )
    .option('--mi-timeout <duration>', 'Azure managed-identity probe timeout (default 2s)')
    .action(async (o: DoctorOptions, cmd: Command) => {
      if (o.expect !== undefined) A.duration(o.expect, '--expect');
      if (o.miTimeout !== undefined) A.duration(o.miTimeout, '--mi-timeout');
      const checks = await runDoctor(effectiveEnv(cmd), o);
      const failed = checks.some((c) => c.status === 'FAIL');
      const out = outputOf(cmd);
      if (out.json) out.printJson({ ok: !failed, checks });
      else {
        const lines = checks.map(
          (c) => `${c.status} ${c.name} — ${c.detail}${c.hint ? `\n     hint: ${c.hint}` : ''}`,
        );
        out.raw(`${lines.join('\n')}\n`);
      }
      if (failed) process.exitCode = 1;
    });
  examples(doctor, [
    '$ custody doctor --dry-run https://mlflow.example.com --expect 36h',
    '$ custody doctor --secret prod/mlflow --format json',
  ]);
}
