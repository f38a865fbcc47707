import { readFile } from 'node:fs/promises';
import type { Agent } from 'undici';
import { createAgent, type HttpReply, sendJson } from '../http.js';
import { type LogFn, redactingLogger } from '../redact.js';
import { pickField, splitField } from '../refs.js';
import type { RetryOptions } from '../retry.js';
import { type GetOptions, ProviderError, type SecretProvider } from './provider.js';

export interface VaultProviderOptions {
  /** `VAULT_ADDR` (may carry a path prefix, e.g. Custody's `https://broker/vault`). */
  addr: string;
  token?: string;
  approle?: { roleId: string; secretId: string; mount?: string };
  jwt?: { role: string; jwt?: string; jwtFile?: string; mount?: string };
  namespace?: string;
  /** Default KV mount when a reference does not name a known one (default `secret`). */
  mount?: string;
  /** KV version of every mount; default: detected via `sys/mounts`, or v2 then v1. */
  kvVersion?: 1 | 2;
  caCert?: string;
  caCertFile?: string;
  retry?: Partial<RetryOptions>;
  /** Renew the token at ~2/3 of its TTL (default true). */
  autoRenew?: boolean;
  log?: LogFn;
}

/**
 * HashiCorp Vault KV v1/v2 over HTTP. `ref` is `[MOUNT/]PATH[#field]`: the first segment is the mount
 * when it is a known KV mount (from `sys/mounts`, or `sys/internal/ui/mounts/<path>` for a token that
 * may not list mounts), else the default mount is used. Without a field a
 * KV v2 object is returned as JSON, except `{"value": "…"}` alone, which returns the string.
 */
export class VaultProvider implements SecretProvider {
  readonly name = 'vault';
  private readonly addr: string;
  private readonly agent: Agent;
  private readonly o: VaultProviderOptions;
  private readonly log: LogFn;
  private token: string | undefined;
  private tokenPending: Promise<string> | undefined;
  private mounts: Promise<Map<string, 1 | 2> | undefined> | undefined;
  private readonly pathMounts = new Map<string, Promise<{ mount: string; version: 1 | 2 } | undefined>>();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(o: VaultProviderOptions) {
    if (!o.addr) throw new ProviderError('vault', 'VAULT_ADDR is not set');
    if (!o.token && !o.approle && !o.jwt) {
      throw new ProviderError(
        'vault',
        'no credentials: set VAULT_TOKEN, or VAULT_ROLE_ID and VAULT_SECRET_ID',
      );
    }
    this.o = o;
    this.addr = o.addr.replace(/\/+$/, '');
    this.agent = createAgent({ caCert: o.caCert, caCertFile: o.caCertFile });
    this.token = o.token;
    this.log = redactingLogger(o.log);
  }

  private headers(token?: string): Record<string, string> {
    const h: Record<string, string> = {};
    if (token) h['x-vault-token'] = token;
    if (this.o.namespace) h['x-vault-namespace'] = this.o.namespace;
    return h;
  }

  private send(method: string, path: string, token?: string, body?: unknown): Promise<HttpReply> {
    return sendJson(`${this.addr}/v1/${path}`, {
      method,
      headers: this.headers(token),
      body,
      dispatcher: this.agent,
      retry: this.o.retry,
    });
  }

  private fail(r: HttpReply, what: string): never {
    const errors = Array.isArray(r.body?.errors) ? (r.body.errors as string[]).join('; ') : '';
    throw new ProviderError(this.name, `${what}: HTTP ${r.status}${errors ? ` (${errors})` : ''}`, r.status);
  }

  private async getToken(): Promise<string> {
    if (this.closed) throw new ProviderError(this.name, 'the provider is closed');
    if (this.token) return this.token;
    this.tokenPending ??= this.login().finally(() => {
      this.tokenPending = undefined;
    });
    return this.tokenPending;
  }

  private async login(): Promise<string> {
    let r: HttpReply;
    if (this.o.approle) {
      const mount = this.o.approle.mount ?? 'approle';
      r = await this.send('POST', `auth/${mount}/login`, undefined, {
        role_id: this.o.approle.roleId,
        secret_id: this.o.approle.secretId,
      });
    } else if (this.o.jwt) {
      const j = this.o.jwt;
      const jwt = j.jwt ?? (j.jwtFile ? (await readFile(j.jwtFile, 'utf8')).trim() : undefined);
      if (!jwt) throw new ProviderError(this.name, 'JWT login needs a jwt or a jwtFile');
      r = await this.send('POST', `auth/${j.mount ?? 'jwt'}/login`, undefined, { role: j.role, jwt });
    } else {
      throw new ProviderError(this.name, 'the token was refused and there is no login method');
    }
    if (r.status !== 200 || !r.body?.auth?.client_token) this.fail(r, 'login');
    this.token = r.body.auth.client_token as string;
    this.log('info', `vault login ok (${this.o.approle ? 'approle' : 'jwt'})`);
    this.scheduleRenewal(r.body.auth.lease_duration, r.body.auth.renewable);
    return this.token;
  }

  private scheduleRenewal(ttlSeconds: number, renewable: boolean) {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.o.autoRenew === false || this.closed || !ttlSeconds) return;
    this.timer = setTimeout(
      () => void this.renewOrRelogin(renewable),
      Math.max(50, (ttlSeconds * 1000 * 2) / 3),
    );
    this.timer.unref();
  }

  private async renewOrRelogin(renewable: boolean) {
    const canLogin = !!(this.o.approle || this.o.jwt);
    try {
      if (!renewable) throw new Error('token not renewable');
      const r = await this.send('POST', 'auth/token/renew-self', this.token, {});
      if (r.status !== 200) this.fail(r, 'renew token');
      const auth = r.body.auth ?? {};
      this.log('debug', 'vault token renewed');
      this.scheduleRenewal(auth.lease_duration ?? 0, auth.renewable ?? false);
    } catch (err) {
      this.log('warn', `vault token renewal failed: ${(err as Error).message}`);
      if (canLogin && !this.closed) {
        this.token = undefined;
        await this.getToken().catch((e) => this.log('warn', `vault login failed: ${(e as Error).message}`));
      }
    }
  }

  /** Renews the token now; exposed for callers and tests. */
  async renewToken(): Promise<number> {
    const r = await this.send('POST', 'auth/token/renew-self', await this.getToken(), {});
    if (r.status !== 200) this.fail(r, 'renew token');
    return r.body.auth?.lease_duration ?? 0;
  }

  /** `sys/mounts` → KV mounts and versions; undefined when not permitted. */
  private detectMounts(): Promise<Map<string, 1 | 2> | undefined> {
    this.mounts ??= (async () => {
      const r = await this.send('GET', 'sys/mounts', await this.getToken());
      if (r.status !== 200) return undefined;
      const data = r.body?.data ?? r.body;
      const out = new Map<string, 1 | 2>();
      for (const [k, v] of Object.entries<any>(data ?? {})) {
        if (!k.endsWith('/') || !v || typeof v !== 'object') continue;
        if (v.type !== 'kv' && v.type !== 'generic') continue;
        out.set(k.slice(0, -1), String(v.options?.version ?? '1') === '2' ? 2 : 1);
      }
      return out;
    })().catch(() => undefined);
    return this.mounts;
  }

  /**
   * The mount of one path from `sys/internal/ui/mounts/<path>` — what Vault answers to any token
   * with a capability under the mount (the `vault kv` CLI uses it), for tokens that may not read
   * `sys/mounts`. Cached per first segment; undefined when the server does not say.
   */
  private mountOf(clean: string): Promise<{ mount: string; version: 1 | 2 } | undefined> {
    const first = clean.split('/')[0];
    let p = this.pathMounts.get(first);
    if (!p) {
      p = (async () => {
        const r = await this.send('GET', `sys/internal/ui/mounts/${clean}`, await this.getToken());
        const d = r.status === 200 ? r.body?.data : undefined;
        const mount = typeof d?.path === 'string' ? d.path.replace(/\/+$/, '') : '';
        if (!mount || !clean.startsWith(`${mount}/`)) return undefined;
        return { mount, version: String(d.options?.version ?? '1') === '2' ? (2 as const) : (1 as const) };
      })().catch(() => undefined);
      this.pathMounts.set(first, p);
    }
    return p;
  }

  /** Sends with the token; a 403 with a login method means: log in once more and resend. */
  private async authed(path: string): Promise<HttpReply> {
    let r = await this.send('GET', path, await this.getToken());
    if ((r.status === 401 || r.status === 403) && (this.o.approle || this.o.jwt) && this.token) {
      this.token = undefined;
      r = await this.send('GET', path, await this.getToken());
    }
    return r;
  }

  async get(ref: string, opts: GetOptions = {}): Promise<string> {
    const { path: full, field } = splitField(ref);
    const clean = full.replace(/^\/+|\/+$/g, '');
    const mounts = this.o.kvVersion ? undefined : await this.detectMounts();
    const first = clean.split('/')[0];
    let mount = this.o.mount ?? 'secret';
    let path = clean;
    let version: 1 | 2 | undefined = this.o.kvVersion;
    const own = !mounts && !this.o.kvVersion ? await this.mountOf(clean) : undefined;
    if (own) {
      mount = own.mount;
      path = clean.slice(mount.length + 1);
      version = own.version;
    } else if (mounts?.has(first) || (!mounts && clean.startsWith(`${mount}/`))) {
      mount = first;
      path = clean.slice(first.length + 1);
    }
    if (!path) throw new ProviderError(this.name, `no secret path in "${full}"`, 400);
    version ??= mounts?.get(mount);
    const what = `secret ${mount}/${path}`;
    let data: unknown;
    if (version !== 1) {
      const q = opts.version ? `?version=${encodeURIComponent(opts.version)}` : '';
      const r = await this.authed(`${mount}/data/${path}${q}`);
      if (r.status === 200) data = r.body?.data?.data;
      else if (version === 2 || (r.status !== 404 && r.status !== 405)) this.fail(r, `read ${what}`);
    }
    if (data === undefined) {
      if (opts.version) throw new ProviderError(this.name, `KV v1 has no versions (${what})`, 400);
      const r = await this.authed(`${mount}/${path}`);
      if (r.status !== 200) this.fail(r, `read ${what}`);
      data = r.body?.data;
    }
    if (!data || typeof data !== 'object') throw new ProviderError(this.name, `${what} has no data`, 404);
    const obj = data as Record<string, unknown>;
    const keys = Object.keys(obj);
    const value = keys.length === 1 && typeof obj.value === 'string' ? obj.value : JSON.stringify(obj);
    try {
      return field !== undefined && keys.length === 1 && typeof obj.value === 'string' && field !== 'value'
        ? pickField(value, field, what)
        : field !== undefined
          ? pickField(JSON.stringify(obj), field, what)
          : value;
    } catch (err) {
      throw new ProviderError(this.name, (err as Error).message, 404);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.agent.close();
  }
}
