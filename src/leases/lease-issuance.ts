import { randomBytes } from 'node:crypto';
import { type EngineService, engineError } from '../engines/engine-service.js';
import { badRequest } from '../errors.js';
import type { Storage } from '../storage/storage.js';
import type { LeaseRevocation } from './lease-revocation.js';
import type { LeaseService } from './lease-service.js';
import { type LeaseRow, type LeaseStore, toLease } from './lease-store.js';

/**
 * Issuing and renewing leases. A lease row (with its sealed revocation data) is written before the
 * engine creates the credential, so whatever happens next the reaper can clean up.
 */

export interface LeaseIssuanceDeps {
  storage: Storage;
  store: LeaseStore;
  engines: EngineService;
  revoker: LeaseRevocation;
  claimMs: number;
  createGraceMs: number;
}

export type LeaseIssuance = Pick<LeaseService, 'issue' | 'renew'>;

export function createLeaseIssuance(deps: LeaseIssuanceDeps): LeaseIssuance {
  const { store, engines, revoker, claimMs, createGraceMs } = deps;
  const { db } = deps.storage;

  return {
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
      // The engine may refuse a TTL its backend cannot honour, and says whether the credential can
      // be revoked early or renewed (a requested TTL is checked as asked, not as capped).
      if (ttlSeconds !== undefined) engine.leaseTerms?.(role.config, ttlSeconds);
      const terms = engine.leaseTerms?.(role.config, ttl) ?? { revocable: true, renewable: true };
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
      const r: LeaseRow = {
        id,
        env,
        engine: engineName,
        role: roleName,
        identity_id: caller.identityId,
        token_accessor: caller.accessor,
        username: prepared.username,
        issued_at: now,
        expires_at: expiresAt,
        max_expires_at: terms.renewable ? now + role.maxTtlSeconds * 1000 : expiresAt,
        last_renewed_at: null,
        renewable: terms.renewable ? 1 : 0,
        revocable: terms.revocable ? 1 : 0,
        state: 'creating',
        attempts: 0,
        last_error: null,
        // Written before the backend user exists: if we crash before `create` returns, the reaper cleans up.
        next_attempt_at: now + createGraceMs,
        claimed_until: null,
        revocation: store.seal(id, prepared.revocation),
        revoked_at: null,
        updated_at: now,
      };
      await db.insertInto('leases').values(r).execute();
      let issued: Awaited<ReturnType<typeof engine.create>>;
      try {
        issued = await engine.create(role.config, prepared, ctx);
      } catch (err) {
        // Undo whatever part was created; if that fails too the reaper keeps trying.
        await store.finish(id, {
          state: 'revoking',
          claimed_until: Date.now() + claimMs,
          next_attempt_at: Date.now() + claimMs,
        });
        await revoker.revokeClaimed({ ...r, state: 'revoking' });
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
      const r = await store.rowFor(caller, id, 'leases/renew');
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
      const revocation = await store.unseal(r);
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
  };
}
