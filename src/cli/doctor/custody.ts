import { request } from 'undici';
import type { ClientConfig } from '../../client/config.js';
import type { CustodyClient } from '../../client/custody-client.js';
import { statusOf } from '../../client/errors.js';
import { describeError } from '../../client/redact.js';
import { classifyNetworkError, type Doctor, fmtDuration, formatCheck } from './checks.js';

/*
 * The Custody provider path: reachability (health, TLS, seal), authentication (token or login),
 * permission on the MLflow secret, its format, and the token's lifetime versus --expect. The
 * authenticated client is handed back so the lease checks (--creds) use the same identity.
 */

/** An authenticated Custody client and what `lookup-self` said about its token. */
export interface CustodySession {
  client: CustodyClient;
  self: TokenSelf;
  /** The client logs in (CUSTODY_LOGIN): it can log in again when the token ends. */
  login: boolean;
}

export interface TokenSelf {
  ttl?: number;
  expires_at?: string | null;
  max_expires_at?: string | null;
  renewable?: boolean;
  display_name?: string;
  accessor?: string;
  identity?: { name?: string };
}

export function permissionHint(err: unknown, ref: string, who = '<ENV/IDENTITY>'): string {
  const e = err as { message?: string; hint?: string };
  const m = /Not allowed to (\S+) on (\S+?):?(?:\s|$)/.exec(e.message ?? '');
  const action = m ? m[1] : 'secrets/get';
  const scope = m ? m[2] : ref;
  const grant = scope.replace(/^(\w[\w-]*)\/(?!secrets\/)/, '$1/secrets/');
  return `the caller lacks the "${action}" action on ${scope}: ask an administrator for a role that grants it (e.g. \`custody access assign ${who} secrets-user ${grant} --reason '…'\`)${e.hint ? `; broker: ${e.hint}` : ''}`;
}

/** GET /v1/sys/health: false when the broker cannot be used at all (a FAIL line was added). */
async function reachable(d: Doctor, config: ClientConfig): Promise<boolean> {
  const c = config.custody;
  const addr = c.addr!;
  let agent: ReturnType<Doctor['lib']['createAgent']>;
  try {
    agent = d.lib.createAgent({ caCertFile: c.caCertFile });
  } catch (err) {
    d.add(
      'FAIL',
      'custody: reachable',
      `cannot read CUSTODY_CACERT: ${describeError(err)}`,
      'set CUSTODY_CACERT to a readable PEM file',
    );
    return false;
  }
  try {
    const res = await request(`${addr.replace(/\/+$/, '')}/v1/sys/health`, {
      dispatcher: agent,
      signal: AbortSignal.timeout(10_000),
    });
    const body = (await res.body.json().catch(() => ({}))) as { sealed?: boolean };
    if (res.statusCode === 200)
      d.add('PASS', 'custody: reachable', `${addr} answers (TLS trusted, unsealed)`);
    else if (body.sealed) {
      d.add(
        'FAIL',
        'custody: reachable',
        `${addr} is sealed (HTTP ${res.statusCode})`,
        'unseal it: `custody operator unseal`',
      );
      return false;
    } else d.add('WARN', 'custody: reachable', `${addr} answered HTTP ${res.statusCode} to its health check`);
    return true;
  } catch (err) {
    const { detail, hint } = classifyNetworkError(err, addr, 'CUSTODY_CACERT');
    d.add('FAIL', 'custody: reachable', detail, hint);
    return false;
  } finally {
    await agent.close().catch(() => {});
  }
}

/**
 * Logs in (or takes the token as is) and looks the token up. Adds the `custody: authentication`
 * line; returns undefined (after a FAIL line) when that does not work.
 */
export async function openSession(d: Doctor, config: ClientConfig): Promise<CustodySession | undefined> {
  const c = config.custody;
  d.remember(c.token, c.login?.approle?.secretId);
  let client: CustodyClient;
  try {
    client = new d.lib.CustodyClient({
      addr: c.addr,
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
    return undefined;
  }
  let self: TokenSelf;
  try {
    if (c.login) d.remember((await client.login()).token);
    self = (await client.lookupSelf()) as TokenSelf;
  } catch (err) {
    const status = statusOf(err);
    const hint =
      status === 401
        ? c.login
          ? `login ${c.login.env}/${c.login.method}/${c.login.role} was refused: check the role and its credential (secret id, JWT audience and issuer)`
          : 'the token is expired, revoked or unknown: get a new one (`custody login …` or `custody token create`) and set CUSTODY_TOKEN'
        : ((err as { hint?: string }).hint ?? 'check the token and the broker logs');
    d.add('FAIL', 'custody: authentication', describeError(err), hint);
    await client.close().catch(() => {});
    return undefined;
  }
  const ttl = typeof self.ttl === 'number' ? self.ttl : undefined;
  const who = self.display_name ?? self.identity?.name ?? self.accessor ?? 'token';
  d.add(
    'PASS',
    'custody: authentication',
    `token valid (${who}${c.login ? `, logged in via ${c.login.env}/${c.login.method}/${c.login.role}` : ''}); ttl ${ttl === undefined || ttl === 0 ? 'none (never expires)' : fmtDuration(ttl)}${self.renewable === false ? ', not renewable' : ''}`,
  );
  return { client, self, login: !!c.login };
}

/** When the token stops working for good (max TTL, or TTL if not renewable); undefined: never. */
export function tokenEnd(self: TokenSelf): number | undefined {
  const exp = self.expires_at ? Date.parse(self.expires_at) : undefined;
  const maxExp = self.max_expires_at ? Date.parse(self.max_expires_at) : undefined;
  if (exp === undefined) return undefined;
  return self.renewable === false ? exp : (maxExp ?? undefined);
}

/** The `custody: token lifetime` line: does the token (with renewals, or a new login) outlive --expect? */
export function tokenLifetime(d: Doctor, s: CustodySession, expectSec: number): void {
  const now = Date.now();
  const exp = s.self.expires_at ? Date.parse(s.self.expires_at) : undefined;
  const maxExp = s.self.max_expires_at ? Date.parse(s.self.max_expires_at) : undefined;
  const need = now + expectSec * 1000;
  const want = fmtDuration(expectSec);
  const name = 'custody: token lifetime';
  if (exp === undefined || exp >= need)
    d.add(
      'PASS',
      name,
      `the token lives ${exp === undefined ? 'forever' : fmtDuration((exp - now) / 1000)} ≥ ${want}`,
    );
  else if (s.self.renewable !== false && (maxExp === undefined || maxExp >= need))
    d.add(
      'PASS',
      name,
      `ttl ${fmtDuration((exp - now) / 1000)} < ${want}, but it renews up to ${maxExp === undefined ? 'no limit' : fmtDuration((maxExp - now) / 1000)}`,
    );
  else if (s.login)
    d.add(
      'WARN',
      name,
      `the token ends in ${fmtDuration(((maxExp ?? exp) - now) / 1000)} < ${want}; the client logs in again then`,
      'make sure the login credential (JWT file, secret id) stays valid for the whole job',
    );
  else
    d.add(
      'FAIL',
      name,
      `the token ends in ${fmtDuration(((maxExp ?? exp) - now) / 1000)}, before the expected ${want}`,
      'use a login method (CUSTODY_LOGIN) so the client can log in again, or a token with a longer --max-ttl',
    );
}

/**
 * The whole Custody path. Returns the open session (the caller closes it) so that lease checks
 * reuse the identity; undefined when authentication failed.
 */
export async function checkCustody(
  d: Doctor,
  config: ClientConfig,
  expectSec: number | undefined,
): Promise<CustodySession | undefined> {
  if (!(await reachable(d, config))) return undefined;
  const s = await openSession(d, config);
  if (!s) return undefined;

  const ref = config.custody.secretRef!;
  let value: string | undefined;
  try {
    value = await s.client.getSecret(ref, { noCache: true });
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
  }
  if (value !== undefined) {
    d.add('PASS', 'custody: permission', `may read ${ref}`);
    formatCheck(d, 'custody', value, config.custody.authMode, config.authHeaderName);
  }

  if (expectSec !== undefined) {
    tokenLifetime(d, s, expectSec);
    if (value !== undefined)
      d.add(
        'PASS',
        'custody: cache ttl',
        `the secret is re-read every ${fmtDuration(config.custody.ttlSec)} (MLFLOW_CUSTODY_TTL_SEC)`,
      );
  }
  return s;
}
