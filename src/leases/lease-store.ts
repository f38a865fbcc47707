import type { Selectable } from 'kysely';
import type { Authorizer } from '../access/authorizer.js';
import type { TokenInfo } from '../auth/token-service.js';
import type { Barrier } from '../barrier/barrier.js';
import { badRequest, forbidden, notFound } from '../errors.js';
import type { Storage } from '../storage/storage.js';
import type { LeaseState, LeaseTable } from '../storage/tables.js';
import type { Lease } from './lease-service.js';

/** Row access to the leases table: reading a lease (for a caller), patching it, its sealed revocation data. */

export type LeaseRow = Selectable<LeaseTable>;

const ID_RE = /^[a-z][a-z0-9-]{0,31}\/[a-z0-9][a-z0-9_-]{0,62}\/[a-z0-9][a-z0-9_-]{0,62}\/[A-Za-z0-9_-]{16}$/;
/** Every state the reaper still has work for. */
export const UNFINISHED: LeaseState[] = ['creating', 'active', 'revoking', 'revoke-failed'];
const aadFor = (id: string) => `custody:lease:${id}`;

export const toLease = (r: LeaseRow): Lease => ({
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
  revocable: r.revocable !== 0,
  state: r.state,
  attempts: r.attempts,
  lastError: r.last_error,
  nextAttemptAt: r.next_attempt_at,
  revokedAt: r.revoked_at,
});

/** The leases under an id prefix and/or of one identity (ids start with ENV/ENGINE/ROLE/). */
export function matching<T extends { where: (...a: any[]) => T }>(
  q: T,
  { prefix, identityId }: { prefix?: string; identityId?: string },
): T {
  let r = q;
  if (prefix) r = r.where('id', '>=', prefix).where('id', '<', `${prefix}\uffff`);
  if (identityId) r = r.where('identity_id', '=', identityId);
  return r;
}

export interface LeaseStore {
  /** The lease; 400 InvalidLeaseId for a malformed id, 404 LeaseNotFound. */
  row(id: string): Promise<LeaseRow>;
  /** The lease, once `caller` may do `action` on it (see `authorizeOn`). */
  rowFor(caller: TokenInfo, id: string, action: string): Promise<LeaseRow>;
  /** Updates columns of one lease (and its updated_at). */
  finish(id: string, patch: Partial<LeaseRow>): Promise<void>;
  /** What the engine needs to revoke the lease, sealed under the barrier bound to the lease id. */
  seal(id: string, revocation: Record<string, unknown>): string;
  unseal(r: LeaseRow): Promise<Record<string, unknown>>;
}

export function createLeaseStore(storage: Storage, barrier: Barrier, authorizer: Authorizer): LeaseStore {
  const { db } = storage;

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
  async function authorizeOn(caller: TokenInfo, r: LeaseRow, action: string) {
    if (caller.identityId && caller.identityId === r.identity_id) return;
    const d = await authorizer.authorize(caller, action, `${r.env}/${r.engine}/${r.role}`);
    if (!d.allowed)
      throw forbidden(
        `Not allowed to ${action} lease ${r.id}: ${d.reason ?? 'denied'}`,
        'Only the lease holder or someone granted the action on its engine role may do this.',
      );
  }

  return {
    row,

    async rowFor(caller, id, action) {
      const r = await row(id);
      await authorizeOn(caller, r, action);
      return r;
    },

    async finish(id, patch) {
      await db
        .updateTable('leases')
        .set({ ...patch, updated_at: Date.now() })
        .where('id', '=', id)
        .execute();
    },

    seal: (id, revocation) => barrier.encrypt(JSON.stringify(revocation), aadFor(id)),

    async unseal(r) {
      return JSON.parse((await barrier.decrypt(r.revocation, aadFor(r.id))).toString('utf8')) as Record<
        string,
        unknown
      >;
    },
  };
}
