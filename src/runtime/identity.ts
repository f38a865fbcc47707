import { statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { ApiClient } from '../cli/api-client.js';
import {
  type ClientConfig,
  type GlobalOptions,
  missingTokenError,
  resolveClientConfig,
} from '../cli/config.js';
import { CliError } from '../cli/errors.js';
import type { ExpiryWatch } from './expiry-watch.js';
import type { Reporter } from './reporter.js';
import { Timer } from './timer.js';

/** How `custody run` logs in as a workload (`ENV/METHOD/ROLE` plus what proves it). */
export interface WorkloadLogin {
  env: string;
  method: string;
  role: string;
  /** A JWT file (explicit, CUSTODY_JWT_FILE or the Kubernetes service-account token): re-read at every login. */
  jwtFile?: string;
  approle?: { roleId: string; secretId?: string; secretIdFile?: string };
}

export type IdentitySource =
  | 'flag'
  | 'CUSTODY_TOKEN'
  | 'login-flags'
  | 'CUSTODY_JWT_FILE'
  | 'kubernetes'
  | 'approle-env';

/**
 * Who `custody run` acts as: a token, either given (`--token`, CUSTODY_TOKEN) or obtained by a
 * workload login, which `relogin` repeats before the token's max TTL. Everything downstream sees
 * `RunIdentity`; `token` (and `config.token`, shared with the ApiClient) changes on a re-login.
 */
export interface RunIdentity {
  /** Where the token came from, for messages (never the token itself). */
  source: IdentitySource;
  token: string;
  /** Broker address, CA and token, as every CLI command resolves them. */
  config: ClientConfig & { token: string };
  /** The workload login, when the token came from one. */
  login?: WorkloadLogin;
}

/** `--login`, `--jwt-file`, `--role-id`, `--secret-id-file` of `custody run`. */
export interface LoginFlags {
  login?: string;
  jwtFile?: string;
  roleId?: string;
  secretIdFile?: string;
}

export const K8S_TOKEN_PATH = '/var/run/secrets/kubernetes.io/serviceaccount/token';

function parseLoginRef(ref: string, what: string): Pick<WorkloadLogin, 'env' | 'method' | 'role'> {
  const parts = ref.split('/');
  if (parts.length !== 3 || parts.some((p) => p.trim() === '')) {
    throw new CliError(
      'BadLogin',
      `${what} must be ENV/METHOD/ROLE, got "${ref}"`,
      'Example: --login prod/jwt/training-job',
      2,
    );
  }
  return { env: parts[0], method: parts[1], role: parts[2] };
}

const isFile = (f: string) => {
  try {
    return statSync(f).isFile();
  } catch {
    return false;
  }
};

/**
 * Which login `custody run` uses, first match wins: explicit flags (`--login` with `--jwt-file`, or
 * `--role-id` + `--secret-id-file`); CUSTODY_JWT_FILE (+ CUSTODY_LOGIN); the Kubernetes
 * service-account token (CUSTODY_K8S_TOKEN_FILE overrides its path) with CUSTODY_LOGIN; AppRole
 * from CUSTODY_ROLE_ID / CUSTODY_SECRET_ID (+ CUSTODY_LOGIN); else none (a token is used).
 */
export function chooseLogin(
  flags: LoginFlags,
  env: NodeJS.ProcessEnv,
): { source: IdentitySource; login: WorkloadLogin } | null {
  const set = (v: string | undefined) => v !== undefined && v.trim() !== '';
  if (set(flags.login) || set(flags.jwtFile) || set(flags.roleId) || set(flags.secretIdFile)) {
    if (!set(flags.login))
      throw new CliError(
        'BadLogin',
        '--jwt-file / --role-id / --secret-id-file need --login ENV/METHOD/ROLE',
        'Example: --login prod/jwt/job --jwt-file /var/run/job.jwt',
        2,
      );
    const ref = parseLoginRef(flags.login!, '--login');
    if (set(flags.jwtFile)) {
      if (set(flags.roleId))
        throw new CliError('BadLogin', '--jwt-file and --role-id exclude each other', undefined, 2);
      return { source: 'login-flags', login: { ...ref, jwtFile: flags.jwtFile } };
    }
    if (set(flags.roleId)) {
      if (!set(flags.secretIdFile))
        throw new CliError('BadLogin', '--role-id needs --secret-id-file FILE', undefined, 2);
      return {
        source: 'login-flags',
        login: { ...ref, approle: { roleId: flags.roleId!, secretIdFile: flags.secretIdFile } },
      };
    }
    throw new CliError(
      'BadLogin',
      '--login needs --jwt-file FILE, or --role-id ID with --secret-id-file FILE',
      undefined,
      2,
    );
  }
  const loginRef = () => {
    if (!set(env.CUSTODY_LOGIN))
      throw new CliError(
        'BadLogin',
        'CUSTODY_LOGIN (ENV/METHOD/ROLE) is not set: it says where to log in',
        'Example: CUSTODY_LOGIN=prod/jwt/training-job',
        2,
      );
    return parseLoginRef(env.CUSTODY_LOGIN!, 'CUSTODY_LOGIN');
  };
  if (set(env.CUSTODY_JWT_FILE))
    return { source: 'CUSTODY_JWT_FILE', login: { ...loginRef(), jwtFile: env.CUSTODY_JWT_FILE } };
  const k8s = set(env.CUSTODY_K8S_TOKEN_FILE) ? env.CUSTODY_K8S_TOKEN_FILE! : K8S_TOKEN_PATH;
  if (set(env.CUSTODY_LOGIN) && isFile(k8s))
    return { source: 'kubernetes', login: { ...loginRef(), jwtFile: k8s } };
  if (set(env.CUSTODY_ROLE_ID) && set(env.CUSTODY_SECRET_ID))
    return {
      source: 'approle-env',
      login: { ...loginRef(), approle: { roleId: env.CUSTODY_ROLE_ID!, secretId: env.CUSTODY_SECRET_ID } },
    };
  return null;
}

interface LoginWire {
  token: string;
}

async function readTrimmed(file: string, what: string): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch (err) {
    throw new CliError(
      'BadLogin',
      `Cannot read the ${what} ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  }
}

/**
 * One login (`POST /v1/auth/login/ENV/METHOD/ROLE`, anonymous). The JWT / secret id file is read
 * each time, so a token rotated on disk (a projected service-account token) is picked up.
 */
export async function loginOnce(client: ApiClient, l: WorkloadLogin): Promise<string> {
  let body: Record<string, string>;
  if (l.approle) {
    const secretId = l.approle.secretId ?? (await readTrimmed(l.approle.secretIdFile!, 'secret id file'));
    body = { role_id: l.approle.roleId, secret_id: secretId };
  } else {
    body = { jwt: await readTrimmed(l.jwtFile!, 'JWT file') };
  }
  const path = [l.env, l.method, l.role].map(encodeURIComponent).join('/');
  const { body: r } = await client.post<LoginWire>(`/v1/auth/login/${path}`, body, { auth: false });
  return r.token;
}

export function resolveRunIdentity(opts: GlobalOptions, env: NodeJS.ProcessEnv = process.env): RunIdentity {
  const config = resolveClientConfig(opts, env);
  if (!config.token) throw missingTokenError(config);
  const fromFlag = opts.token !== undefined && opts.token.trim() !== '';
  return {
    source: fromFlag ? 'flag' : 'CUSTODY_TOKEN',
    token: config.token,
    config: { ...config, token: config.token },
  };
}

/**
 * The identity of `custody run`: a workload login when one is configured (see chooseLogin), else
 * the token (`--token`, CUSTODY_TOKEN). An explicit `--token` beats the environment's logins.
 */
export async function resolveWorkloadIdentity(
  opts: GlobalOptions,
  flags: LoginFlags,
  env: NodeJS.ProcessEnv = process.env,
): Promise<RunIdentity> {
  const explicitFlags = Object.values(flags).some((v) => v !== undefined);
  const tokenFlag = opts.token !== undefined && opts.token.trim() !== '';
  const chosen = !tokenFlag || explicitFlags ? chooseLogin(flags, env) : null;
  if (!chosen) return resolveRunIdentity(opts, env);
  const config = resolveClientConfig(opts, env);
  const client = await ApiClient.create({ ...config, token: undefined });
  try {
    const token = await loginOnce(client, chosen.login);
    return { source: chosen.source, token, config: { ...config, token }, login: chosen.login };
  } finally {
    await client.close();
  }
}

export const clientFor = (identity: RunIdentity): Promise<ApiClient> => ApiClient.create(identity.config);

/** The token's lifetime as `GET /v1/auth/token/lookup-self` reports it. */
export interface TokenLifetime {
  /** Epoch ms, or null for a token that never expires (the bootstrap root token). */
  expiresAt: number | null;
  maxExpiresAt: number | null;
  renewable: boolean;
  identityId: string | null;
}

interface TokenInfoWire {
  expires_at: string | null;
  max_expires_at: string | null;
  renewable: boolean;
  identity_id: string | null;
  ttl: number;
}

const ms = (iso: string | null) => (iso === null ? null : Date.parse(iso));
const lifetimeOf = (t: TokenInfoWire): TokenLifetime => ({
  expiresAt: ms(t.expires_at),
  maxExpiresAt: ms(t.max_expires_at),
  renewable: t.renewable,
  identityId: t.identity_id,
});

/**
 * Keeps the job's token alive while the child runs: renews it (`renew-self`) at about two thirds of
 * its remaining life, up to its max TTL, and warns once when the max TTL is near. The child may hold
 * the same token (VAULT_TOKEN, the managed-identity endpoint), so it must not expire under it.
 */
export class TokenKeeper {
  private lifetime: TokenLifetime | null = null;
  private readonly timer = new Timer();
  private warnedCap = false;
  private stopped = false;

  constructor(
    private readonly client: ApiClient,
    private readonly report: Reporter,
    /** With a workload login: logs in again before the token's max TTL (the client sees the new token). */
    private readonly identity?: RunIdentity,
    /** Told when the token will end while the child runs (warnings on stderr and in the audit trail). */
    private readonly expiry?: ExpiryWatch,
  ) {}

  private watch(at: number): void {
    this.expiry?.watch(
      'token',
      "the job's Custody token (and the child's VAULT_TOKEN / managed-identity token)",
      at,
      { auditEnd: false },
    );
  }

  /** Logins done after the first one (tests, messages). */
  relogins = 0;

  /** Looks the token up (this also proves it works before anything else is asked). */
  async start(): Promise<TokenLifetime> {
    const { body } = await this.client.get<TokenInfoWire>('/v1/auth/token/lookup-self');
    this.lifetime = lifetimeOf(body);
    this.schedule();
    return this.lifetime;
  }

  /** The token's current expiry (epoch ms), null when it never expires. */
  get expiresAt(): number | null {
    return this.lifetime?.expiresAt ?? null;
  }

  /** The token's max expiry (epoch ms), null when it has none. */
  get maxExpiresAt(): number | null {
    return this.lifetime?.maxExpiresAt ?? null;
  }

  private schedule(): void {
    const l = this.lifetime;
    if (this.stopped || !l || l.expiresAt === null) return;
    const left = l.expiresAt - Date.now();
    const capped = l.maxExpiresAt !== null && l.expiresAt >= l.maxExpiresAt - 1000;
    if (this.identity?.login && (capped || !l.renewable)) {
      // Renewing cannot go further: log in again (a fresh token, a fresh max TTL) well before the end.
      this.timer.set(() => void this.relogin(), Math.max(200, (left * 2) / 3));
      return;
    }
    if (!l.renewable) {
      this.watch(l.expiresAt);
      return;
    }
    if (capped && l.maxExpiresAt !== null) {
      this.warnCap(l.maxExpiresAt, l.expiresAt);
      return;
    }
    this.timer.set(() => void this.renew(), Math.max(1000, (left * 2) / 3));
  }

  /** `endsAt`: when the token really ends — no renewal comes any more, so its current expiry. */
  private warnCap(at: number, endsAt: number): void {
    this.watch(endsAt);
    if (this.warnedCap) return;
    this.warnedCap = true;
    this.report.warn(
      'TokenMaxTtl',
      `the job's token reaches its max TTL at ${new Date(at).toISOString()} and cannot be renewed past it; leases stay renewed, but the child's VAULT_TOKEN / managed-identity token stop working then`,
    );
  }

  private async renew(): Promise<void> {
    try {
      const { body } = await this.client.post<TokenInfoWire>('/v1/auth/token/renew-self', {});
      this.lifetime = lifetimeOf(body);
      this.expiry?.unwatch('token');
    } catch (err) {
      const left = (this.lifetime?.expiresAt ?? 0) - Date.now();
      if (this.lifetime?.expiresAt) this.watch(this.lifetime.expiresAt);
      this.report.warn('TokenRenewFailed', `renewing the job's token failed (${codeOf(err)}); retrying`);
      if (left > 2000 && !this.stopped) this.timer.set(() => void this.renew(), Math.min(30_000, left / 3));
      return;
    }
    this.schedule();
  }

  private async relogin(): Promise<void> {
    const id = this.identity;
    if (this.stopped || !id?.login) return;
    try {
      const token = await loginOnce(this.client, id.login);
      if (this.stopped) return;
      // config is the object the ApiClient holds: every later call (leases too) uses the new token.
      id.token = token;
      id.config.token = token;
      const { body } = await this.client.get<TokenInfoWire>('/v1/auth/token/lookup-self');
      this.lifetime = lifetimeOf(body);
      this.relogins += 1;
      this.expiry?.unwatch('token');
      this.report.note(
        `logged in again to ${id.login.env}/${id.login.method}/${id.login.role} before the token's max TTL`,
      );
    } catch (err) {
      const left = (this.lifetime?.expiresAt ?? 0) - Date.now();
      if (this.lifetime?.expiresAt) this.watch(this.lifetime.expiresAt);
      this.report.warn('ReloginFailed', `logging in again failed (${codeOf(err)}); retrying`);
      if (left > 1000 && !this.stopped) this.timer.set(() => void this.relogin(), Math.min(30_000, left / 3));
      return;
    }
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    this.timer.clear();
  }
}

export const codeOf = (err: unknown): string => {
  const e = err as { code?: unknown };
  return typeof e?.code === 'string' ? e.code : err instanceof Error ? err.name : 'error';
};
