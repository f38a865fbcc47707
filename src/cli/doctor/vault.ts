import { type Agent, request } from 'undici';
import type { ClientConfig } from '../../client/config.js';
import { statusOf } from '../../client/errors.js';
import { describeError } from '../../client/redact.js';
import { classifyNetworkError, type Doctor, fmtDuration, formatCheck, isConnectError } from './checks.js';
import { permissionHint } from './custody.js';

/*
 * The HashiCorp Vault provider path (also Custody's Vault door): reachability (`sys/health`,
 * which also tells a Custody native address from its `/vault` door), authentication (token
 * lookup-self or AppRole login), permission on MLFLOW_VAULT_SECRET_PATH with the missing policy
 * path, the secret format, and the token's lifetime versus --expect. Vault answers 403 both for a
 * bad token and for a policy that denies the read: the lookup tells them apart.
 */

interface Reply {
  status: number;
  body: any;
}

/** Vault's `{"errors": […]}` as one string. */
const errorsOf = (body: any): string =>
  Array.isArray(body?.errors) ? (body.errors as unknown[]).map(String).join('; ') : '';

interface TokenInfo {
  token: string;
  via: 'token' | 'approle';
  ttl: number;
  renewable: boolean;
  policies: string[];
}

async function send(
  agent: Agent,
  config: ClientConfig,
  method: 'GET' | 'POST',
  path: string,
  token?: string,
  body?: unknown,
): Promise<Reply> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (token) headers['x-vault-token'] = token;
  if (config.vault.namespace) headers['x-vault-namespace'] = config.vault.namespace;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await request(`${config.vault.addr!.replace(/\/+$/, '')}/v1/${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    dispatcher: agent,
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.body.text();
  let parsed: any = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {}
  return { status: res.statusCode, body: parsed };
}

async function reachable(d: Doctor, config: ClientConfig, agent: Agent): Promise<boolean> {
  const addr = config.vault.addr!;
  const name = 'vault: reachable';
  let r: Reply;
  try {
    r = await send(agent, config, 'GET', 'sys/health');
  } catch (err) {
    const { detail, hint } = classifyNetworkError(err, addr, 'VAULT_CACERT');
    d.add('FAIL', name, detail, hint);
    return false;
  }
  const b = r.body ?? {};
  if (b && typeof b === 'object' && 'unseal_mode' in b && !('standby' in b)) {
    d.add(
      'FAIL',
      name,
      `${addr} is a Custody broker's native API, not a Vault API`,
      `point VAULT_ADDR at Custody's Vault door: ${addr.replace(/\/+$/, '')}/vault`,
    );
    return false;
  }
  if ([200, 429, 472, 473].includes(r.status)) {
    d.add(
      'PASS',
      name,
      `${addr} answers (Vault API${b.version ? ` ${b.version}` : ''}${r.status === 429 ? ', standby' : ''}, unsealed)`,
    );
    return true;
  }
  if (r.status === 503 || b.sealed === true) {
    d.add(
      'FAIL',
      name,
      `${addr} is sealed (HTTP ${r.status})`,
      'unseal it (`vault operator unseal`; for Custody `custody operator unseal`)',
    );
    return false;
  }
  if (r.status === 501) {
    d.add('FAIL', name, `${addr} is not initialized (HTTP 501)`, 'initialize the server first');
    return false;
  }
  if (r.status === 404) {
    d.add(
      'FAIL',
      name,
      `no Vault API at ${addr} (HTTP 404 on /v1/sys/health)`,
      "check VAULT_ADDR: for a Custody broker it is the broker's address followed by /vault",
    );
    return false;
  }
  d.add('WARN', name, `${addr} answered HTTP ${r.status} to its health check`);
  return true;
}

async function authenticate(d: Doctor, config: ClientConfig, agent: Agent): Promise<TokenInfo | undefined> {
  const v = config.vault;
  const name = 'vault: authentication';
  if (v.roleId && v.secretId) {
    const r = await send(agent, config, 'POST', 'auth/approle/login', undefined, {
      role_id: v.roleId,
      secret_id: v.secretId,
    });
    const auth = r.body?.auth;
    if (r.status !== 200 || !auth?.client_token) {
      d.add(
        'FAIL',
        name,
        `AppRole login refused: HTTP ${r.status}${errorsOf(r.body) ? ` (${errorsOf(r.body)})` : ''}`,
        'VAULT_ROLE_ID/VAULT_SECRET_ID were refused: the secret id may be expired, used up or bound to other addresses; generate a new one (`vault write -f auth/approle/role/ROLE/secret-id`)',
      );
      return undefined;
    }
    d.remember(auth.client_token, auth.accessor);
    const info: TokenInfo = {
      token: auth.client_token,
      via: 'approle',
      ttl: Number(auth.lease_duration ?? 0),
      renewable: auth.renewable !== false,
      policies: Array.isArray(auth.policies) ? auth.policies : [],
    };
    d.add(
      'PASS',
      name,
      `AppRole login ok (policies: ${info.policies.join(', ') || 'none'}; token ttl ${info.ttl ? fmtDuration(info.ttl) : 'none'})`,
    );
    return info;
  }
  const token = v.token!;
  const r = await send(agent, config, 'GET', 'auth/token/lookup-self', token);
  if (r.status !== 200) {
    const errors = errorsOf(r.body);
    d.add(
      'FAIL',
      name,
      `VAULT_TOKEN was refused: HTTP ${r.status}${errors ? ` (${errors})` : ''}`,
      r.status === 403 || r.status === 401
        ? "VAULT_TOKEN is expired, revoked or not a token of this server: log in again (`vault login`; for Custody's door `custody login`) and export the new VAULT_TOKEN, or set VAULT_ROLE_ID + VAULT_SECRET_ID so the client logs in itself"
        : 'check VAULT_TOKEN and VAULT_ADDR',
    );
    return undefined;
  }
  const data = r.body?.data ?? {};
  d.remember(data.id, data.accessor);
  const info: TokenInfo = {
    token,
    via: 'token',
    ttl: Number(data.ttl ?? 0),
    renewable: data.renewable === true,
    policies: Array.isArray(data.policies) ? data.policies : [],
  };
  d.add(
    'PASS',
    name,
    `token valid (${data.display_name ?? 'token'}; policies: ${info.policies.join(', ') || 'none'}; ttl ${info.ttl ? fmtDuration(info.ttl) : 'none (never expires)'}${info.renewable ? '' : ', not renewable'})`,
  );
  return info;
}

/** `secret/mlflow/auth` → the KV v2 policy path `secret/data/mlflow/auth`. */
const policyPath = (where: string): string => {
  const [mount, ...rest] = where.split('/');
  return rest.length ? `${mount}/data/${rest.join('/')}` : where;
};

async function permission(d: Doctor, config: ClientConfig, t: TokenInfo): Promise<void> {
  const ref = config.vault.secretPath!;
  const [provider] = d.lib.providersFromConfig({
    ...config,
    providers: ['vault'],
    vault: { ...config.vault, token: t.token, roleId: undefined, secretId: undefined },
  });
  const name = 'vault: permission';
  try {
    const value = await provider.get(ref);
    d.remember(value);
    d.add('PASS', name, `may read ${ref}`);
    formatCheck(d, 'vault', value, config.vault.authMode, config.authHeaderName);
  } catch (err) {
    const status = statusOf(err);
    const msg = describeError(err);
    const where = /secret (\S+): HTTP/.exec(msg)?.[1] ?? ref.split('#')[0];
    if (status === 403) {
      const why = /HTTP \d{3}.*$/.exec(msg)?.[0] ?? msg;
      const policy = policyPath(where);
      d.add(
        'FAIL',
        name,
        `the token may not read ${where}: ${why}`,
        /Not allowed to \S+ on \S+/.test(msg)
          ? `this is Custody's Vault door, where access comes from roles, not Vault policies: ${permissionHint(err, where)}`
          : `the token's policies (${t.policies.join(', ') || 'none'}) lack "read" on ${policy}: add \`path "${policy}" { capabilities = ["read"] }\` to one of them`,
      );
    } else if (status === 404 && /no field/.test(msg))
      d.add(
        'FAIL',
        name,
        msg,
        'the secret exists but has no such field: fix the #field part of MLFLOW_VAULT_SECRET_PATH',
      );
    else if (status === 404)
      d.add(
        'FAIL',
        name,
        `nothing at ${where} (HTTP 404)`,
        `check MLFLOW_VAULT_SECRET_PATH (MOUNT/PATH[#field], a KV v2 path without /data/); see what exists with \`vault kv list ${where.split('/').slice(0, -1).join('/') || where}\``,
      );
    else if (status === 400 && config.vault.namespace)
      d.add(
        'FAIL',
        name,
        msg,
        "VAULT_NAMESPACE is set and the server refused the request: check the namespace (Custody's Vault door has none: unset it)",
      );
    else if (status === undefined && isConnectError(err)) {
      const { detail, hint } = classifyNetworkError(err, config.vault.addr!, 'VAULT_CACERT');
      d.add('FAIL', name, detail, hint);
    } else d.add('FAIL', name, msg, 'check MLFLOW_VAULT_SECRET_PATH and the server logs');
  } finally {
    await provider.close().catch(() => {});
  }
}

function lifetime(d: Doctor, t: TokenInfo, expectSec: number): void {
  const name = 'vault: token lifetime';
  const want = fmtDuration(expectSec);
  if (t.via === 'approle')
    d.add(
      'PASS',
      name,
      `the client logs in again with AppRole when the token (ttl ${fmtDuration(t.ttl)}) ends`,
    );
  else if (t.ttl === 0) d.add('PASS', name, 'the token never expires');
  else if (t.ttl >= expectSec) d.add('PASS', name, `the token lives ${fmtDuration(t.ttl)} ≥ ${want}`);
  else if (t.renewable)
    d.add(
      'WARN',
      name,
      `ttl ${fmtDuration(t.ttl)} < ${want}: the client renews it, but only up to its max TTL, which Vault does not report here`,
      'use AppRole (VAULT_ROLE_ID + VAULT_SECRET_ID) so the client can log in again, or a token whose max TTL covers the job',
    );
  else
    d.add(
      'FAIL',
      name,
      `the token ends in ${fmtDuration(t.ttl)}, before the expected ${want}, and is not renewable`,
      'use AppRole (VAULT_ROLE_ID + VAULT_SECRET_ID) so the client can log in again, or a longer-lived token',
    );
}

export async function checkVault(
  d: Doctor,
  config: ClientConfig,
  expectSec: number | undefined,
): Promise<void> {
  d.remember(config.vault.token, config.vault.secretId);
  let agent: Agent;
  try {
    agent = d.lib.createAgent({ caCertFile: config.vault.caCertFile });
  } catch (err) {
    d.add(
      'FAIL',
      'vault: reachable',
      `cannot read VAULT_CACERT: ${describeError(err)}`,
      'set VAULT_CACERT to a readable PEM file',
    );
    return;
  }
  try {
    if (!(await reachable(d, config, agent))) return;
    let t: TokenInfo | undefined;
    try {
      t = await authenticate(d, config, agent);
    } catch (err) {
      const { detail, hint } = classifyNetworkError(err, config.vault.addr!, 'VAULT_CACERT');
      d.add('FAIL', 'vault: authentication', detail, hint);
    }
    if (!t) return;
    await permission(d, config, t);
    if (expectSec !== undefined) lifetime(d, t, expectSec);
  } finally {
    await agent.close().catch(() => {});
  }
}
