import { EventEmitter } from 'node:events';
import { readFile } from 'node:fs/promises';
import type { Agent } from 'undici';
import { SecretCache } from './cache.js';
import { CustodyClientError, errorFromReply, statusOf } from './errors.js';
import { createAgent, type HttpReply, sendJson } from './http.js';
import { type IssuedCredentials, Lease } from './lease.js';
import { type LogFn, type LogLevel, redactingLogger } from './redact.js';
import { parseRoleRef, parseSecretRef, pickField } from './refs.js';
import type { RetryOptions } from './retry.js';

export const KUBERNETES_TOKEN_PATH = '/var/run/secrets/kubernetes.io/serviceaccount/token';

/** How the client logs in (and logs in again before its token's max TTL). */
export interface LoginOptions {
  env: string;
  method: string;
  role: string;
  /** A file holding a JWT (re-read on every login, so a rotated token is picked up). */
  jwtFile?: string;
  /** The name of an environment variable holding a JWT. */
  jwtEnv?: string;
  /** The Kubernetes service-account token (`true`: the default path). */
  kubernetes?: boolean | string;
  approle?: { roleId: string; secretId?: string; secretIdFile?: string };
  /** Exchange a user's JWT for a token acting on their behalf (needs `token`, the actor). */
  onBehalfOf?: { userJwt?: string; userJwtFile?: string };
}

export interface CustodyClientOptions {
  /** Broker URL; default `CUSTODY_ADDR`. */
  addr?: string;
  /** Token; default `CUSTODY_TOKEN` (unless `login` is given). */
  token?: string;
  /** PEM of the CA to trust; or `caCertFile` (default `CUSTODY_CACERT`). */
  caCert?: string;
  caCertFile?: string;
  login?: LoginOptions;
  /** Cache TTL of secret values in ms (default 60 000; 0 = no cache). */
  cacheTtlMs?: number;
  retry?: Partial<RetryOptions>;
  /** Renew the token automatically (default true). */
  autoRenew?: boolean;
  /** Log sink; every line is redacted first. */
  log?: LogFn;
  logLevel?: LogLevel;
  /** Environment to read defaults from (default `process.env`). */
  env?: NodeJS.ProcessEnv;
}

interface TokenState {
  token: string;
  expiresAt: number | undefined;
  maxExpiresAt: number | undefined;
  renewable: boolean;
}

/**
 * The Custody broker client: login, automatic token renewal, secrets (cached, single flight),
 * dynamic credentials as self-renewing leases. Events: `login`, `renewed`, `warning`.
 */
export class CustodyClient extends EventEmitter {
  readonly addr: string;
  private readonly agent: Agent;
  private readonly retry: Partial<RetryOptions>;
  private readonly cache: SecretCache<string>;
  private readonly cacheTtlMs: number;
  private readonly loginOpts: LoginOptions | undefined;
  private readonly autoRenew: boolean;
  private readonly log: LogFn;
  private readonly leases = new Set<Lease>();
  private state: TokenState | undefined;
  private pendingLogin: Promise<TokenState> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private started = false;
  private readonly initialToken: string | undefined;

  constructor(opts: CustodyClientOptions = {}) {
    super();
    const env = opts.env ?? process.env;
    const addr = opts.addr ?? env.CUSTODY_ADDR;
    if (!addr) throw new CustodyClientError('NoAddress', 'no broker address: set CUSTODY_ADDR or `addr`');
    let u: URL;
    try {
      u = new URL(addr);
    } catch {
      throw new CustodyClientError('BadAddress', `CUSTODY_ADDR is not a URL: ${addr}`);
    }
    if (u.protocol !== 'https:' && u.protocol !== 'http:') {
      throw new CustodyClientError('BadAddress', `the broker address must be http(s): ${u.protocol}`);
    }
    this.addr = addr.replace(/\/+$/, '');
    const caCertFile = opts.caCertFile ?? (opts.caCert ? undefined : env.CUSTODY_CACERT);
    this.agent = createAgent({ caCert: opts.caCert, caCertFile });
    this.retry = opts.retry ?? {};
    this.cacheTtlMs = opts.cacheTtlMs ?? 60_000;
    this.cache = new SecretCache({ ttlMs: this.cacheTtlMs });
    this.loginOpts = opts.login;
    this.autoRenew = opts.autoRenew ?? true;
    this.log = redactingLogger(opts.log, opts.logLevel ?? 'info');
    this.initialToken = opts.token ?? (opts.login && !opts.login.onBehalfOf ? undefined : env.CUSTODY_TOKEN);
    if (!this.initialToken && !this.loginOpts) {
      throw new CustodyClientError(
        'NoCredentials',
        'no token and no login method: set CUSTODY_TOKEN or `login`',
      );
    }
    if (this.loginOpts?.onBehalfOf && !this.initialToken) {
      throw new CustodyClientError(
        'NoCredentials',
        'an on-behalf-of exchange needs the actor token (`token`)',
      );
    }
    if (this.initialToken && !this.loginOpts) {
      this.state = {
        token: this.initialToken,
        expiresAt: undefined,
        maxExpiresAt: undefined,
        renewable: true,
      };
    }
  }

  // ---- tokens -------------------------------------------------------------------------------

  /** The current token, logging in first when needed. */
  async token(): Promise<string> {
    if (this.closed) throw new CustodyClientError('ClientClosed', 'the client is closed');
    if (this.state) {
      if (!this.started && this.autoRenew && !this.loginOpts) {
        // A token given as is: learn its lifetime once, in the background, to schedule renewal.
        this.started = true;
        this.start().catch((err) => this.log('warn', `token lookup failed: ${(err as Error).message}`));
      }
      return this.state.token;
    }
    return (await this.login()).token;
  }

  /** Logs in with the configured method (concurrent callers share one login). */
  login(): Promise<TokenState> {
    if (!this.loginOpts) {
      return Promise.reject(new CustodyClientError('NoLogin', 'no login method configured'));
    }
    this.pendingLogin ??= this.doLogin(this.loginOpts).finally(() => {
      this.pendingLogin = undefined;
    });
    return this.pendingLogin;
  }

  private async doLogin(l: LoginOptions): Promise<TokenState> {
    const path = `${encodeURIComponent(l.env)}/${encodeURIComponent(l.method)}/${encodeURIComponent(l.role)}`;
    let r: HttpReply;
    if (l.onBehalfOf) {
      const userJwt = l.onBehalfOf.userJwt ?? (await readTrimmed(l.onBehalfOf.userJwtFile, 'user JWT file'));
      r = await this.post(`/v1/auth/obo/${path}`, { user_jwt: userJwt }, this.initialToken);
    } else {
      r = await this.post(`/v1/auth/login/${path}`, await loginBody(l), undefined);
    }
    if (r.status !== 200) throw errorFromReply(r.status, r.body, `login to ${l.env}/${l.method}/${l.role}`);
    const s: TokenState = {
      token: r.body.token,
      expiresAt: r.body.expires_at ? Date.parse(r.body.expires_at) : undefined,
      maxExpiresAt: r.body.max_expires_at ? Date.parse(r.body.max_expires_at) : undefined,
      renewable: r.body.renewable !== false,
    };
    this.state = s;
    this.log('info', `logged in to ${l.env}/${l.method}/${l.role} as ${r.body.identity?.name ?? '?'}`);
    this.emit('login', { identity: r.body.identity, expiresAt: s.expiresAt });
    this.scheduleRenewal();
    return s;
  }

  /** Renews the token now (`POST /v1/auth/token/renew-self`). */
  async renewToken(): Promise<void> {
    const r = await this.post('/v1/auth/token/renew-self', {}, await this.token());
    if (r.status !== 200) throw errorFromReply(r.status, r.body, 'renew token');
    const s = this.state!;
    s.expiresAt = r.body.expires_at ? Date.parse(r.body.expires_at) : undefined;
    s.maxExpiresAt = r.body.max_expires_at ? Date.parse(r.body.max_expires_at) : undefined;
    s.renewable = r.body.renewable !== false;
    this.log('debug', `token renewed until ${r.body.expires_at ?? 'never'}`);
    this.emit('renewed', { expiresAt: s.expiresAt });
    this.scheduleRenewal();
  }

  /** `GET /v1/auth/token/lookup-self`. */
  async lookupSelf(): Promise<any> {
    return this.ok(await this.get('/v1/auth/token/lookup-self'), 'look up token');
  }

  /** Starts renewal from the token's real lifetime (a token given as is has unknown TTLs until looked up). */
  async start(): Promise<void> {
    this.started = true;
    await this.token();
    const s = this.state!;
    if (s.expiresAt === undefined) {
      const info = await this.lookupSelf();
      s.expiresAt = info.expires_at ? Date.parse(info.expires_at) : undefined;
      s.maxExpiresAt = info.max_expires_at ? Date.parse(info.max_expires_at) : undefined;
      s.renewable = info.renewable !== false;
      this.scheduleRenewal();
    }
  }

  private scheduleRenewal() {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const s = this.state;
    if (!this.autoRenew || this.closed || !s?.expiresAt) return;
    const now = Date.now();
    const left = s.expiresAt - now;
    const delay = Math.max(50, (left * 2) / 3);
    this.timer = setTimeout(() => void this.renewOrRelogin(), delay);
    this.timer.unref();
  }

  /** Renew; when the max TTL is near or renewal is refused, log in again (if a method is configured). */
  private async renewOrRelogin() {
    this.timer = undefined;
    if (this.closed) return;
    const s = this.state!;
    const now = Date.now();
    const ttl = (s.expiresAt ?? now) - now;
    const nearMax = s.maxExpiresAt !== undefined && s.maxExpiresAt - now <= Math.max(ttl, 1000) * 1.5;
    try {
      if ((nearMax || !s.renewable) && this.loginOpts) {
        this.log('info', 'token near its max TTL: logging in again');
        await this.login();
        return;
      }
      await this.renewToken();
    } catch (renewErr) {
      let err = renewErr;
      if (this.loginOpts && !this.closed) {
        this.log('warn', `token renewal refused (${(err as Error).message}): logging in again`);
        try {
          await this.login();
          return;
        } catch (e) {
          err = e;
        }
      }
      const msg = `token could not be renewed: ${(err as Error).message}`;
      this.log('warn', msg);
      this.emit('warning', msg);
    }
  }

  // ---- HTTP -----------------------------------------------------------------------------------

  private post(path: string, body: unknown, token: string | undefined): Promise<HttpReply> {
    return sendJson(`${this.addr}${path}`, {
      method: 'POST',
      headers: token ? { authorization: `Bearer ${token}` } : {},
      body,
      dispatcher: this.agent,
      retry: this.retry,
    });
  }

  /** GET with the token; on 401 (expired or revoked token) logs in again once, when it can. */
  private async get(path: string): Promise<HttpReply> {
    const send = async () =>
      sendJson(`${this.addr}${path}`, {
        headers: { authorization: `Bearer ${await this.token()}` },
        dispatcher: this.agent,
        retry: this.retry,
      });
    const r = await send();
    if (r.status === 401 && this.loginOpts && !this.loginOpts.onBehalfOf) {
      this.log('info', 'token refused (401): logging in again');
      this.state = undefined;
      return send();
    }
    return r;
  }

  private ok(r: HttpReply, what: string): any {
    if (r.status !== 200) throw errorFromReply(r.status, r.body, what);
    return r.body;
  }

  // ---- secrets and credentials ----------------------------------------------------------------

  /** A secret value by reference `ENV/NAME[#field]` (cached per reference and version). */
  async getSecret(ref: string, opts: { version?: string; noCache?: boolean } = {}): Promise<string> {
    const { env, name, field } = parseSecretRef(ref);
    const query = opts.version ? `?version=${encodeURIComponent(opts.version)}` : '';
    const path = `/v1/secrets/${encodeURIComponent(env)}/${name.split('/').map(encodeURIComponent).join('/')}${query}`;
    const key = `${env}/${name}${query}`;
    const load = async () => {
      const r = await this.get(path);
      return this.ok(r, `get secret ${env}/${name}`).value as string;
    };
    if (opts.noCache) this.cache.invalidate(key);
    const value = await this.cache.get(key, load, this.cacheTtlMs);
    try {
      return pickField(value, field, `secret ${env}/${name}`);
    } catch (err) {
      throw new CustodyClientError('NoSuchField', (err as Error).message);
    }
  }

  /** Drops cached secret values (all, or one `ENV/NAME`). */
  invalidate(ref?: string) {
    if (ref === undefined) this.cache.clear();
    else {
      const { env, name } = parseSecretRef(ref);
      this.cache.invalidate(`${env}/${name}`);
    }
  }

  /** Issues dynamic credentials for `ENV/ENGINE/ROLE`: a lease that renews itself until closed. */
  async issueCredentials(
    ref: string,
    opts: { ttl?: string | number; autoRenew?: boolean } = {},
  ): Promise<Lease> {
    const { env, engine, role } = parseRoleRef(ref);
    const path = `/v1/creds/${encodeURIComponent(env)}/${encodeURIComponent(engine)}/${encodeURIComponent(role)}`;
    const body = opts.ttl === undefined ? {} : { ttl: opts.ttl };
    let r = await this.post(path, body, await this.token());
    if (r.status === 401 && this.loginOpts && !this.loginOpts.onBehalfOf) {
      this.state = undefined;
      r = await this.post(path, body, await this.token());
    }
    const issued = this.ok(r, `issue credentials ${ref}`) as IssuedCredentials;
    const lease = new Lease(
      issued,
      {
        addr: this.addr,
        dispatcher: this.agent,
        retry: this.retry,
        token: () => this.token(),
        log: this.log,
        forget: (l) => this.leases.delete(l),
      },
      opts.autoRenew ?? true,
    );
    lease.on('warning', (msg: string) => this.emit('warning', msg));
    this.leases.add(lease);
    this.log('info', `issued lease ${lease.id} (expires ${issued.expires_at})`);
    return lease;
  }

  /** Leases issued by this client and not yet closed. */
  openLeases(): Lease[] {
    return [...this.leases];
  }

  /** Revokes every open lease, stops the timers and closes the connection pool. */
  async close(): Promise<void> {
    if (this.closed) return;
    const results = await Promise.allSettled([...this.leases].map((l) => l.close()));
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.cache.clear();
    for (const r of results) {
      if (r.status === 'rejected')
        this.log('warn', `lease revocation failed: ${(r.reason as Error).message}`);
    }
    await this.agent.close();
    const failed = results.filter((r) => r.status === 'rejected');
    if (failed.length) {
      throw new CustodyClientError('RevokeFailed', `${failed.length} lease(s) could not be revoked`, {
        status: statusOf((failed[0] as PromiseRejectedResult).reason),
      });
    }
  }
}

async function readTrimmed(file: string | undefined, what: string): Promise<string> {
  if (!file) throw new CustodyClientError('BadLogin', `no ${what} given`);
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch (err) {
    throw new CustodyClientError('BadLogin', `cannot read the ${what} ${file}: ${(err as Error).message}`);
  }
}

async function loginBody(l: LoginOptions): Promise<Record<string, string>> {
  if (l.approle) {
    const secretId =
      l.approle.secretId ?? (await readTrimmed(l.approle.secretIdFile, 'AppRole secret id file'));
    return { role_id: l.approle.roleId, secret_id: secretId };
  }
  if (l.jwtFile) return { jwt: await readTrimmed(l.jwtFile, 'JWT file') };
  if (l.jwtEnv) {
    const jwt = process.env[l.jwtEnv];
    if (!jwt) throw new CustodyClientError('BadLogin', `the variable ${l.jwtEnv} (a JWT) is not set`);
    return { jwt: jwt.trim() };
  }
  if (l.kubernetes) {
    const file = typeof l.kubernetes === 'string' ? l.kubernetes : KUBERNETES_TOKEN_PATH;
    return { jwt: await readTrimmed(file, 'Kubernetes service-account token') };
  }
  throw new CustodyClientError('BadLogin', 'the login needs one of jwtFile, jwtEnv, kubernetes, approle');
}
