import { ApiClient } from '../cli/api-client.js';
import {
  type ClientConfig,
  type GlobalOptions,
  missingTokenError,
  resolveClientConfig,
} from '../cli/config.js';
import type { Reporter } from './reporter.js';
import { Timer } from './timer.js';

/**
 * Who `custody run` acts as. Today: a Custody token from `--token` or `CUSTODY_TOKEN`. Workload
 * logins (a JWT file, a Kubernetes service-account token, AppRole) slot in here later: each ends in
 * a token, and everything downstream only sees `RunIdentity`.
 */
export interface RunIdentity {
  /** Where the token came from, for messages (never the token itself). */
  source: 'flag' | 'CUSTODY_TOKEN';
  token: string;
  /** Broker address, CA and token, as every CLI command resolves them. */
  config: ClientConfig & { token: string };
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
  ) {}

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

  private schedule(): void {
    const l = this.lifetime;
    if (this.stopped || !l || l.expiresAt === null || !l.renewable) return;
    const left = l.expiresAt - Date.now();
    if (l.maxExpiresAt !== null && l.expiresAt >= l.maxExpiresAt) {
      this.warnCap(l.maxExpiresAt);
      return;
    }
    this.timer.set(() => void this.renew(), Math.max(1000, (left * 2) / 3));
  }

  private warnCap(at: number): void {
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
    } catch (err) {
      const left = (this.lifetime?.expiresAt ?? 0) - Date.now();
      this.report.warn('TokenRenewFailed', `renewing the job's token failed (${codeOf(err)}); retrying`);
      if (left > 2000 && !this.stopped) this.timer.set(() => void this.renew(), Math.min(30_000, left / 3));
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
