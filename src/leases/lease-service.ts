import { randomBytes } from 'node:crypto';
import type { Selectable } from 'kysely';
import type { Authorizer } from '../access/authorizer.js';
import type { Auditor } from '../audit/index.js';
import type { TokenInfo } from '../auth/token-service.js';
import type { Barrier } from '../barrier/barrier.js';
import { type EngineService, engineError } from '../engines/engine-service.js';
import { badRequest, forbidden, notFound } from '../errors.js';
import type { Storage } from '../storage/storage.js';
import type { LeaseState, LeaseTable } from '../storage/tables.js';
import { nextAttemptDelay, sanitizeError } from './retry-policy.js';

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

const ID_RE = /^[a-z][a-z0-9-]{0,31}\/[a-z0-9][a-z0-9_-]{0,62}\/[a-z0-9][a-z0-9_-]{0,62}\/[A-Za-z0-9_-]{16}$/;
const UNFINISHED: LeaseState[] = ['creating', 'active', 'revoking', 'revoke-failed'];
const aadFor = (id: string) => `custody:lease:${id}`;

export function createLeaseService(deps: LeaseServiceDeps): LeaseService {
  const { storage, barrier, engines, authorizer, audit } = deps;
  const { db } = storage;
  const claimMs = deps.claimMs ?? 60_000;
  const createGraceMs = deps.createGraceMs ?? 60_000;
  const batchSize = deps.batchSize ?? 100;
  const concurrency = deps.concurrency ?? 8;

  const toLease = (r: Selectable<LeaseTable>): Lease => ({
    id: r.id,
    env: r.env,
    engine: r.engine,
    role: r.role,
    identityId: r.identity_id,
    username: r.username,
    issuedAt: r.issued_at,
    expiresAt: r.expires_at,
    maxExpiresAt: r.max_expires_at,
    lastRenewedAt: r.last_renewed_at,
    renewable: r.renewable === 1,
    state: r.state,
    attempts: r.attempts,
    lastError: r.last_error,
    nextAttemptAt: r.next_attempt_at,
    revokedAt: r.revoked_at,
  });

  async function row(id: string) {
    if (!ID_RE.test(id))
      throw badRequest(
        'InvalidLeaseId',
        'That is not a lease id',
        'Lease ids look like ENV/ENGINE/ROLE/<16 characters>.',
      );
    const r = await db.selectFrom('leases').selectAll().where('id', '=', id).executeTakeFirst();
    if (!r) throw notFound('LeaseNotFound', `No lease ${id}`, 'See `custody lease list`.');
    return r;
  }

  /** A lease's own identity may renew, revoke and look it up; anyone else needs the action. */
  async function authorizeOn(caller: TokenInfo, r: Selectable<LeaseTable>, action: string) {
    if (caller.identityId && caller.identityId === r.identity_id) return;
    const d = await authorizer.authorize(caller, action, `${r.env}/${r.engine}/${r.role}`);
    if (!d.allowed)
      throw forbidden(
        `Not allowed to ${action} lease ${r.id}: ${d.reason ?? 'denied'}`,
        'Only the lease holder or someone granted the action on its engine role may do this.',
      );
  }

  async function finish(id: string, patch: Partial<Selectable<LeaseTable>>) {
    await db
      .updateTable('leases')
      .set({ ...patch, updated_at: Date.now() })
      .where('id', '=', id)
      .execute();
  }

  async function auditRevocation(r: Selectable<LeaseTable>, outcome: 'ok' | 'error', errorCode?: string) {
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

  /** Revokes one lease that this node has claimed; records success or schedules a retry. */
  async function revokeClaimed(r: Selectable<LeaseTable>): Promise<boolean> {
    try {
      const engine = await engines.open(r.env, r.engine);
      const role = await engines.readRole(r.env, r.engine, r.role).catch(() => null);
      const revocation = JSON.parse(
        (await barrier.decrypt(r.revocation, aadFor(r.id))).toString('utf8'),
      ) as Record<string, unknown>;
      await engine.revoke(role?.config ?? null, revocation);
      const now = Date.now();
      await finish(r.id, {
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
      await finish(r.id, {
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
          .set({
            state: 'revoking',
            claimed_until: now + claimMs,
            next_attempt_at: now + claimMs,
            updated_at: now,
          })
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

  async function forceRevoke(r: Selectable<LeaseTable>): Promise<string> {
    const now = Date.now();
    await finish(r.id, {
      state: 'revoked',
      revoked_at: now,
      claimed_until: null,
      last_error: `forced: ${r.last_error ?? 'revocation skipped'}`,
    });
    deps.onRevocation?.('forced');
    return `${r.engine} user ${r.username} (lease ${r.id}) may still exist on the backend; remove it by hand`;
  }

  const service: LeaseService = {
    async issue(caller, env, engineName, roleName, ttlSeconds) {
      const engine = await engines.open(env, engineName);
      const role = await engines.readRole(env, engineName, roleName);
      if (role.kind !== 'dynamic')
        throw badRequest(
          'NotDynamicRole',
          `${env}/${engineName}/${roleName} is a static role`,
          'Read it with `custody creds static`.',
        );
      if (ttlSeconds !== undefined && (!Number.isInteger(ttlSeconds) || ttlSeconds < 1)) {
        throw badRequest('InvalidTtl', 'The ttl must be a positive number of seconds', 'Example: --ttl 1h.');
      }
      const now = Date.now();
      const ttl = Math.min(ttlSeconds ?? role.ttlSeconds, role.maxTtlSeconds);
      const expiresAt = now + ttl * 1000;
      const ctx = {
        env,
        engine: engineName,
        role: roleName,
        identityName: caller.identityName,
        expiresAt: new Date(expiresAt),
      };
      const prepared = engine.prepare(role.config, ctx);
      const id = `${env}/${engineName}/${roleName}/${randomBytes(12).toString('base64url')}`;
      const r: Selectable<LeaseTable> = {
        id,
        env,
        engine: engineName,
        role: roleName,
        identity_id: caller.identityId,
        token_accessor: caller.accessor,
        username: prepared.username,
        issued_at: now,
        expires_at: expiresAt,
        max_expires_at: now + role.maxTtlSeconds * 1000,
        last_renewed_at: null,
        renewable: 1,
        state: 'creating',
        attempts: 0,
        last_error: null,
        // Written before the backend user exists: if we crash before `create` returns, the reaper cleans up.
        next_attempt_at: now + createGraceMs,
        claimed_until: null,
        revocation: barrier.encrypt(JSON.stringify(prepared.revocation), aadFor(id)),
        revoked_at: null,
        updated_at: now,
      };
      await db.insertInto('leases').values(r).execute();
      let issued: Awaited<ReturnType<typeof engine.create>>;
      try {
        issued = await engine.create(role.config, prepared, ctx);
      } catch (err) {
        // Undo whatever part was created; if that fails too the reaper keeps trying.
        await finish(id, {
          state: 'revoking',
          claimed_until: Date.now() + claimMs,
          next_attempt_at: Date.now() + claimMs,
        });
        await revokeClaimed({ ...r, state: 'revoking' });
        throw engineError('Creating the credential', err);
      }
      await db
        .updateTable('leases')
        .set({ state: 'active', next_attempt_at: expiresAt, updated_at: Date.now() })
        .where('id', '=', id)
        .where('state', '=', 'creating')
        .execute();
      return {
        lease: toLease({ ...r, state: 'active', next_attempt_at: expiresAt }),
        username: issued.username,
        password: issued.password,
        data: issued.data,
      };
    },

    async renew(caller, id, incrementSeconds) {
      const r = await row(id);
      await authorizeOn(caller, r, 'leases/renew');
      if (r.state !== 'active')
        throw badRequest('LeaseNotActive', `Lease ${id} is ${r.state}`, 'Issue new credentials.');
      if (r.renewable !== 1)
        throw badRequest('LeaseNotRenewable', `Lease ${id} is not renewable`, 'Issue new credentials.');
      // Past its end (or ended with the token that issued it): the reaper revokes it, no renewal.
      if (r.expires_at <= Date.now())
        throw badRequest('LeaseExpired', `Lease ${id} has expired`, 'Issue new credentials.');
      const role = await engines.readRole(r.env, r.engine, r.role);
      const inc = incrementSeconds ?? role.ttlSeconds;
      if (!Number.isInteger(inc) || inc < 1)
        throw badRequest(
          'InvalidTtl',
          'The increment must be a positive number of seconds',
          'Example: --increment 1h.',
        );
      const now = Date.now();
      const wanted = now + inc * 1000;
      const expiresAt = Math.min(wanted, r.max_expires_at);
      const engine = await engines.open(r.env, r.engine);
      const revocation = JSON.parse(
        (await barrier.decrypt(r.revocation, aadFor(r.id))).toString('utf8'),
      ) as Record<string, unknown>;
      try {
        await engine.renew(role.config, revocation, new Date(expiresAt));
      } catch (err) {
        throw engineError('Renewing the credential', err);
      }
      const res = await db
        .updateTable('leases')
        .set({ expires_at: expiresAt, next_attempt_at: expiresAt, last_renewed_at: now, updated_at: now })
        .where('id', '=', id)
        .where('state', '=', 'active')
        .where('expires_at', '>', now)
        .executeTakeFirst();
      if (Number(res.numUpdatedRows) !== 1)
        throw badRequest('LeaseNotActive', `Lease ${id} is being revoked`, 'Issue new credentials.');
      return {
        lease: toLease({ ...r, expires_at: expiresAt, next_attempt_at: expiresAt, last_renewed_at: now }),
        capped: expiresAt < wanted,
      };
    },

    async revoke(caller, id, { force = false } = {}) {
      const r = await row(id);
      await authorizeOn(caller, r, 'leases/revoke');
      if (r.state === 'revoked') return { lease: toLease(r), leftBehind: null };
      if (force) {
        const leftBehind = await forceRevoke(r);
        return { lease: toLease(await row(id)), leftBehind };
      }
      const now = Date.now();
      // Claim it like the reaper does, so two revokers never both work on one lease.
      const claimed = await db
        .updateTable('leases')
        .set({
          state: 'revoking',
          claimed_until: now + claimMs,
          next_attempt_at: now + claimMs,
          updated_at: now,
        })
        .where('id', '=', id)
        .where((eb) => eb.or([eb('state', '!=', 'revoking'), eb('claimed_until', '<', now)]))
        .where('state', '!=', 'revoked')
        .executeTakeFirst();
      if (Number(claimed.numUpdatedRows) === 1) await revokeClaimed(r);
      return { lease: toLease(await row(id)), leftBehind: null };
    },

    async revokeMany({ prefix, identityId }, { force = false } = {}) {
      if (!prefix && !identityId)
        throw badRequest(
          'MissingFilter',
          'Give a prefix or an identity',
          'Example: --prefix prod/warehouse/.',
        );
      let q = db.selectFrom('leases').select(['id']).where('state', 'in', UNFINISHED);
      if (prefix) q = q.where('id', '>=', prefix).where('id', '<', `${prefix}\uffff`);
      if (identityId) q = q.where('identity_id', '=', identityId);
      const ids = (await q.execute()).map((r) => r.id);
      const leftBehind: string[] = [];
      for (const id of ids) {
        const r = await row(id);
        if (force) leftBehind.push(await forceRevoke(r));
        else if (r.state !== 'revoking') await finish(id, { next_attempt_at: 0 });
      }
      // Due now: drain through the reaper's claim path (so concurrent reapers never double-revoke),
      // wait for any a background reaper already holds, and give failures a couple of quick
      // retries before leaving them to the reaper's backoff. All within a bound.
      const deadline = Date.now() + 60_000;
      const inSet = <T extends { where: (...a: any[]) => T }>(q: T): T => {
        let r = q;
        if (prefix) r = r.where('id', '>=', prefix).where('id', '<', `${prefix}\uffff`);
        if (identityId) r = r.where('identity_id', '=', identityId);
        return r;
      };
      while (!force && ids.length > 0 && Date.now() < deadline) {
        await inSet(
          db
            .updateTable('leases')
            .set({ next_attempt_at: 0 })
            .where('state', '=', 'revoke-failed')
            .where('attempts', '<', 3),
        ).execute();
        const { claimed } = await service.reapOnce();
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

    async lookup(caller, id) {
      const r = await row(id);
      await authorizeOn(caller, r, 'leases/renew');
      return toLease(r);
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
      if (marked > 0) void service.reapOnce().catch(() => {});
      return marked;
    },

    async reapOnce(now = Date.now()) {
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
  return service;
}
