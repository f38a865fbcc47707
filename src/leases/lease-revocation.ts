import { randomBytes } from 'node:crypto';
import type { Auditor } from '../audit/index.js';
import type { EngineService } from '../engines/engine-service.js';
import { badRequest } from '../errors.js';
import type { Storage } from '../storage/storage.js';
import type { LeaseService } from './lease-service.js';
import { type LeaseRow, type LeaseStore, matching, toLease, UNFINISHED } from './lease-store.js';
import { nextAttemptDelay, sanitizeError } from './retry-policy.js';

/**
 * Ending leases. Every revocation goes through a claim (state `revoking`, `claimed_until`), so two
 * revokers — API calls or reapers on several broker nodes — never work on one lease at once; a
 * failure is recorded and retried with backoff, never dropped.
 */

export interface LeaseRevocationDeps {
  storage: Storage;
  store: LeaseStore;
  engines: EngineService;
  audit: Auditor;
  onRevocation?: (outcome: 'revoked' | 'failed' | 'forced') => void;
  claimMs: number;
  batchSize: number;
  concurrency: number;
}

export interface LeaseRevocation
  extends Pick<LeaseService, 'revoke' | 'revokeMany' | 'endForTokens' | 'reapOnce'> {
  /** Revokes one lease that this node has claimed; records success or schedules a retry. */
  revokeClaimed(r: LeaseRow): Promise<boolean>;
}

export function createLeaseRevocation(deps: LeaseRevocationDeps): LeaseRevocation {
  const { storage, store, engines, audit, claimMs, batchSize, concurrency } = deps;
  const { db } = storage;

  /** A claimed lease is `revoking` and held by its claimant until claimMs from now. */
  const claim = (now: number) => ({
    state: 'revoking' as const,
    claimed_until: now + claimMs,
    next_attempt_at: now + claimMs,
    updated_at: now,
  });

  async function auditRevocation(r: LeaseRow, outcome: 'ok' | 'error', errorCode?: string) {
    await audit
      .log({
        type: 'response',
        requestId: `reaper-${randomBytes(6).toString('hex')}`,
        door: 'internal',
        remoteAddr: '',
        auth: { identity: 'lease-reaper' },
        action: 'leases/revoke',
        resource: r.id,
        outcome,
        errorCode,
        data: {
          username: r.username,
          attempts: r.attempts + 1,
          expired_at: new Date(r.expires_at).toISOString(),
        },
      })
      .catch(() => {}); // a revocation is never held back by audit: it only reduces access
  }

  async function revokeClaimed(r: LeaseRow): Promise<boolean> {
    try {
      const engine = await engines.open(r.env, r.engine);
      const role = await engines.readRole(r.env, r.engine, r.role).catch(() => null);
      const revocation = await store.unseal(r);
      await engine.revoke(role?.config ?? null, revocation);
      const now = Date.now();
      await store.finish(r.id, {
        state: 'revoked',
        revoked_at: now,
        claimed_until: null,
        last_error: null,
        attempts: r.attempts + 1,
      });
      deps.onRevocation?.('revoked');
      await auditRevocation(r, 'ok');
      return true;
    } catch (err) {
      const attempts = r.attempts + 1;
      await store.finish(r.id, {
        state: 'revoke-failed',
        attempts,
        last_error: sanitizeError(err),
        next_attempt_at: Date.now() + nextAttemptDelay(attempts),
        claimed_until: null,
      });
      deps.onRevocation?.('failed');
      await auditRevocation(r, 'error', 'RevocationFailed');
      return false;
    }
  }

  /** The reaper's claim: due, unfinished leases no other node holds, marked `revoking` for claimMs. */
  async function claimDue(now: number) {
    return storage.transaction(async (trx) => {
      let q = trx
        .selectFrom('leases')
        .selectAll()
        .where('state', 'in', UNFINISHED)
        .where('next_attempt_at', '<=', now)
        .orderBy('next_attempt_at')
        .limit(batchSize);
      // Several broker nodes on PostgreSQL: each claims rows no other node holds, none waits.
      if (storage.kind === 'postgres') q = q.forUpdate().skipLocked();
      const rows = await q.execute();
      if (rows.length > 0) {
        await trx
          .updateTable('leases')
          .set(claim(now))
          .where(
            'id',
            'in',
            rows.map((r) => r.id),
          )
          .execute();
      }
      return rows;
    });
  }

  /** Marks a lease revoked without touching the backend; returns what may be left there. */
  async function forceRevoke(r: LeaseRow): Promise<string> {
    const now = Date.now();
    await store.finish(r.id, {
      state: 'revoked',
      revoked_at: now,
      claimed_until: null,
      last_error: `forced: ${r.last_error ?? 'revocation skipped'}`,
    });
    deps.onRevocation?.('forced');
    return `${r.engine} user ${r.username} (lease ${r.id}) may still exist on the backend; remove it by hand`;
  }

  async function reapOnce(now = Date.now()) {
    const rows = await claimDue(now);
    let revoked = 0;
    let next = 0;
    const worker = async () => {
      while (next < rows.length) {
        const r = rows[next++];
        if (await revokeClaimed(r)) revoked++;
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, rows.length) }, worker));
    return { claimed: rows.length, revoked, failed: rows.length - revoked };
  }

  return {
    revokeClaimed,
    reapOnce,

    async revoke(caller, id, { force = false } = {}) {
      const r = await store.rowFor(caller, id, 'leases/revoke');
      if (r.state === 'revoked') return { lease: toLease(r), leftBehind: null };
      if (force) {
        const leftBehind = await forceRevoke(r);
        return { lease: toLease(await store.row(id)), leftBehind };
      }
      const now = Date.now();
      // Claim it like the reaper does, so two revokers never both work on one lease.
      const claimed = await db
        .updateTable('leases')
        .set(claim(now))
        .where('id', '=', id)
        .where((eb) => eb.or([eb('state', '!=', 'revoking'), eb('claimed_until', '<', now)]))
        .where('state', '!=', 'revoked')
        .executeTakeFirst();
      if (Number(claimed.numUpdatedRows) === 1) await revokeClaimed(r);
      return { lease: toLease(await store.row(id)), leftBehind: null };
    },

    async revokeMany(filter, { force = false } = {}) {
      if (!filter.prefix && !filter.identityId)
        throw badRequest(
          'MissingFilter',
          'Give a prefix or an identity',
          'Example: --prefix prod/warehouse/.',
        );
      const inSet = <T extends { where: (...a: any[]) => T }>(q: T): T => matching(q, filter);
      const ids = (
        await inSet(db.selectFrom('leases').select(['id']).where('state', 'in', UNFINISHED)).execute()
      ).map((r) => r.id);
      const leftBehind: string[] = [];
      for (const id of ids) {
        const r = await store.row(id);
        if (force) leftBehind.push(await forceRevoke(r));
        else if (r.state !== 'revoking') await store.finish(id, { next_attempt_at: 0 });
      }
      // Due now: drain through the reaper's claim path (so concurrent reapers never double-revoke),
      // wait for any a background reaper already holds, and give failures a couple of quick
      // retries before leaving them to the reaper's backoff. All within a bound.
      const deadline = Date.now() + 60_000;
      while (!force && ids.length > 0 && Date.now() < deadline) {
        await inSet(
          db
            .updateTable('leases')
            .set({ next_attempt_at: 0 })
            .where('state', '=', 'revoke-failed')
            .where('attempts', '<', 3),
        ).execute();
        const { claimed } = await reapOnce();
        const pending = await inSet(
          db
            .selectFrom('leases')
            .select('id')
            .where((eb) =>
              eb.or([
                eb('state', 'in', ['creating', 'active', 'revoking']),
                eb.and([eb('state', '=', 'revoke-failed'), eb('attempts', '<', 3)]),
              ]),
            ),
        ).executeTakeFirst();
        if (!pending) break;
        if (claimed === 0) await new Promise((r) => setTimeout(r, 50));
      }
      return { leases: ids, leftBehind };
    },

    async endForTokens(accessors) {
      if (accessors.length === 0) return 0;
      const now = Date.now();
      let marked = 0;
      // Chunks keep the IN list inside SQLite's variable limit for a large token tree.
      for (let i = 0; i < accessors.length; i += 500) {
        const res = await db
          .updateTable('leases')
          .set({ expires_at: now, next_attempt_at: now, updated_at: now })
          .where('token_accessor', 'in', accessors.slice(i, i + 500))
          .where('state', 'in', ['active', 'revoke-failed'])
          .executeTakeFirst();
        marked += Number(res.numUpdatedRows);
      }
      // Not awaited: the caller's revocation is done; the leases follow through the reaper's claim
      // path (audited, retried with backoff, never twice across nodes).
      if (marked > 0) void reapOnce().catch(() => {});
      return marked;
    },
  };
}
