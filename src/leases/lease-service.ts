import type { Authorizer } from '../access/authorizer.js';
import type { Auditor } from '../audit/index.js';
import type { TokenInfo } from '../auth/token-service.js';
import type { Barrier } from '../barrier/barrier.js';
import type { EngineService } from '../engines/engine-service.js';
import { badRequest } from '../errors.js';
import type { Storage } from '../storage/storage.js';
import type { LeaseState } from '../storage/tables.js';
import { createLeaseIssuance } from './lease-issuance.js';
import { createLeaseRevocation } from './lease-revocation.js';
import { createLeaseStore, toLease, UNFINISHED } from './lease-store.js';

export interface Lease {
  id: string;
  env: string;
  engine: string;
  role: string;
  identityId: string | null;
  username: string;
  issuedAt: number;
  expiresAt: number;
  maxExpiresAt: number;
  lastRenewedAt: number | null;
  renewable: boolean;
  /** False when revoking the lease cannot end the credential before its expiry. */
  revocable: boolean;
  state: LeaseState;
  attempts: number;
  lastError: string | null;
  nextAttemptAt: number;
  revokedAt: number | null;
}

export interface IssuedLease {
  lease: Lease;
  username: string;
  password: string;
  data: Record<string, string>;
}

export interface LeaseFilter {
  prefix?: string;
  state?: LeaseState;
  identityId?: string;
  limit?: number;
}

export interface ReapResult {
  claimed: number;
  revoked: number;
  failed: number;
}

/** Lease records, renew/revoke, and the expiry reaper with retries. Knows no engine internals. */
export interface LeaseService {
  issue(
    caller: TokenInfo & { identityName: string },
    env: string,
    engine: string,
    role: string,
    ttlSeconds?: number,
  ): Promise<IssuedLease>;
  renew(caller: TokenInfo, id: string, incrementSeconds?: number): Promise<{ lease: Lease; capped: boolean }>;
  revoke(
    caller: TokenInfo,
    id: string,
    opts?: { force?: boolean },
  ): Promise<{ lease: Lease; leftBehind: string | null }>;
  /** Marks every unfinished lease under a prefix (or of an identity) due now; the reaper revokes them. */
  revokeMany(
    filter: { prefix?: string; identityId?: string },
    opts?: { force?: boolean },
  ): Promise<{ leases: string[]; leftBehind: string[] }>;
  lookup(caller: TokenInfo, id: string): Promise<Lease>;
  list(filter: LeaseFilter): Promise<Lease[]>;
  /**
   * The leases issued with these tokens end now (the tokens were revoked): they are marked expired
   * and due, and a reaper pass starts at once. Returns how many were marked.
   */
  endForTokens(accessors: string[]): Promise<number>;
  /** One reaper pass: claims due leases (safely across broker nodes) and revokes them. */
  reapOnce(now?: number): Promise<ReapResult>;
  countByState(state: LeaseState): Promise<number>;
  /** Whether a lease of `ENV/ENGINE/` (or any prefix) is not finished yet (not revoked). */
  hasUnfinished(prefix: string): Promise<boolean>;
}

export interface LeaseServiceDeps {
  storage: Storage;
  barrier: Barrier;
  engines: EngineService;
  authorizer: Authorizer;
  audit: Auditor;
  onRevocation?: (outcome: 'revoked' | 'failed' | 'forced') => void;
  /** How long a claimed lease stays with one reaper before another may take it over. */
  claimMs?: number;
  /** How long a lease may stay `creating` before the reaper treats it as abandoned. */
  createGraceMs?: number;
  batchSize?: number;
  concurrency?: number;
}

/**
 * One service over three parts: issue/renew (lease-issuance.ts), revoke and the reaper's claim path
 * (lease-revocation.ts), both on the row access of lease-store.ts. Lookups are here.
 */
export function createLeaseService(deps: LeaseServiceDeps): LeaseService {
  const { storage, engines } = deps;
  const { db } = storage;
  const claimMs = deps.claimMs ?? 60_000;
  const store = createLeaseStore(storage, deps.barrier, deps.authorizer);
  const revoker = createLeaseRevocation({
    storage,
    store,
    engines,
    audit: deps.audit,
    onRevocation: deps.onRevocation,
    claimMs,
    batchSize: deps.batchSize ?? 100,
    concurrency: deps.concurrency ?? 8,
  });
  const issuance = createLeaseIssuance({
    storage,
    store,
    engines,
    revoker,
    claimMs,
    createGraceMs: deps.createGraceMs ?? 60_000,
  });

  return {
    issue: issuance.issue,
    renew: issuance.renew,
    revoke: revoker.revoke,
    revokeMany: revoker.revokeMany,

    async lookup(caller, id) {
      return toLease(await store.rowFor(caller, id, 'leases/renew'));
    },

    async list({ prefix, state, identityId, limit = 100 }) {
      if (!Number.isInteger(limit) || limit < 1 || limit > 10_000)
        throw badRequest('InvalidLimit', 'limit is from 1 to 10000', 'Narrow with --prefix.');
      let q = db.selectFrom('leases').selectAll().orderBy('issued_at', 'desc').limit(limit);
      if (prefix) q = q.where('id', '>=', prefix).where('id', '<', `${prefix}\uffff`);
      if (state) q = q.where('state', '=', state);
      if (identityId) q = q.where('identity_id', '=', identityId);
      return (await q.execute()).map(toLease);
    },

    endForTokens: revoker.endForTokens,
    reapOnce: revoker.reapOnce,

    async hasUnfinished(prefix) {
      const r = await db
        .selectFrom('leases')
        .select('id')
        .where('id', '>=', prefix)
        .where('id', '<', `${prefix}\uffff`)
        .where('state', 'in', UNFINISHED)
        .executeTakeFirst();
      return r !== undefined;
    },

    async countByState(state) {
      const r = await db
        .selectFrom('leases')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('state', '=', state)
        .executeTakeFirstOrThrow();
      return Number(r.n);
    },
  };
}
