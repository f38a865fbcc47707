import type { Selectable } from 'kysely';
import type { Barrier } from '../barrier/barrier.js';
import { badRequest } from '../errors.js';
import type { Storage } from '../storage/storage.js';
import type { EngineRoleTable } from '../storage/tables.js';
import { type EngineMounts, validateEngineName } from './engine-config.js';
import { type EngineRoles, toRole } from './engine-roles.js';
import type { EngineRole, EngineService } from './engine-service.js';
import { generatePassword } from './password.js';

/**
 * Static roles: an existing backend user whose password Custody owns and rotates. The current
 * password is stored encrypted, bound to its role.
 */

const staticAad = (env: string, engine: string, role: string) =>
  `custody:static-role:${env}/${engine}/${role}`;

export type EngineStaticRoles = Pick<
  EngineService,
  'writeStaticRole' | 'staticCredentials' | 'rotateStatic' | 'dueStaticRoles'
>;

export function createEngineStaticRoles(
  storage: Storage,
  barrier: Barrier,
  mounts: EngineMounts,
  roles: EngineRoles,
): EngineStaticRoles {
  const { db } = storage;

  async function rotateStaticRow(r: Selectable<EngineRoleTable>): Promise<EngineRole> {
    const engine = await mounts.open(r.env, r.engine);
    const { username } = JSON.parse(r.config) as { username: string };
    const password = generatePassword();
    await engine.setPassword(username, password);
    const now = Date.now();
    await db
      .updateTable('engine_roles')
      .set({
        secret: barrier.encrypt(password, staticAad(r.env, r.engine, r.name)),
        last_rotated_at: now,
        updated_at: now,
      })
      .where('env', '=', r.env)
      .where('engine', '=', r.engine)
      .where('name', '=', r.name)
      .execute();
    return toRole({ ...r, last_rotated_at: now });
  }

  return {
    async writeStaticRole(env, engine, role, { username, rotationPeriodSeconds }) {
      await mounts.row(env, engine);
      validateEngineName('role', role);
      if (!/^[A-Za-z0-9_.@-]{1,63}$/.test(username))
        throw badRequest(
          'InvalidUsername',
          'The static user name has characters that are not allowed',
          'Letters, digits, _ . @ - up to 63.',
        );
      if (!Number.isInteger(rotationPeriodSeconds) || rotationPeriodSeconds < 60) {
        throw badRequest(
          'InvalidDuration',
          'The rotation period is at least 60 seconds',
          'Example: --rotation-period 24h.',
        );
      }
      const now = Date.now();
      const values = {
        kind: 'static' as const,
        config: JSON.stringify({ username }),
        ttl_seconds: rotationPeriodSeconds,
        max_ttl_seconds: rotationPeriodSeconds,
        rotation_period_seconds: rotationPeriodSeconds,
        updated_at: now,
      };
      await db
        .insertInto('engine_roles')
        .values({ env, engine, name: role, ...values, secret: null, last_rotated_at: null, created_at: now })
        .onConflict((oc) => oc.columns(['env', 'engine', 'name']).doUpdateSet(values))
        .execute();
      // Take ownership at once: from now on only Custody knows the password.
      return rotateStaticRow(await roles.roleRow(env, engine, role));
    },

    async staticCredentials(env, engine, role) {
      const r = await roles.roleRow(env, engine, role);
      if (r.kind !== 'static' || !r.secret)
        throw badRequest(
          'NotStaticRole',
          `${env}/${engine}/${role} is not a static role`,
          'Issue dynamic credentials with `custody creds issue`.',
        );
      const password = (await barrier.decrypt(r.secret, staticAad(env, engine, role))).toString('utf8');
      return { role: toRole(r), username: (JSON.parse(r.config) as { username: string }).username, password };
    },

    async rotateStatic(env, engine, role) {
      const r = await roles.roleRow(env, engine, role);
      if (r.kind !== 'static')
        throw badRequest(
          'NotStaticRole',
          `${env}/${engine}/${role} is not a static role`,
          'Only static roles rotate.',
        );
      return rotateStaticRow(r);
    },

    async dueStaticRoles(now = Date.now()) {
      const rows = await db.selectFrom('engine_roles').selectAll().where('kind', '=', 'static').execute();
      return rows
        .filter((r) => (r.last_rotated_at ?? 0) + (r.rotation_period_seconds ?? 0) * 1000 <= now)
        .map(toRole);
    },
  };
}
