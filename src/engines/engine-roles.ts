import type { Selectable } from 'kysely';
import { badRequest, notFound } from '../errors.js';
import type { Storage } from '../storage/storage.js';
import type { EngineRoleTable } from '../storage/tables.js';
import { type EngineMounts, validateEngineName } from './engine-config.js';
import type { EngineRole, EngineService } from './engine-service.js';

/** Dynamic roles of a mounted engine: templates its factory validates, with their TTLs. */

const DEFAULT_TTL = 3600;
const DEFAULT_MAX_TTL = 24 * 3600;

export const toRole = (r: Selectable<EngineRoleTable>): EngineRole => ({
  env: r.env,
  engine: r.engine,
  name: r.name,
  kind: r.kind,
  config: JSON.parse(r.config) as Record<string, unknown>,
  ttlSeconds: r.ttl_seconds,
  maxTtlSeconds: r.max_ttl_seconds,
  rotationPeriodSeconds: r.rotation_period_seconds,
  lastRotatedAt: r.last_rotated_at,
});

export interface EngineRoles
  extends Pick<EngineService, 'writeRole' | 'readRole' | 'listRoles' | 'deleteRole'> {
  /** A role's row, dynamic or static; 404 RoleNotFound when there is none. */
  roleRow(env: string, engine: string, role: string): Promise<Selectable<EngineRoleTable>>;
}

export function createEngineRoles(storage: Storage, mounts: EngineMounts): EngineRoles {
  const { db } = storage;

  async function roleRow(env: string, engine: string, role: string) {
    validateEngineName('role', role);
    const r = await db
      .selectFrom('engine_roles')
      .selectAll()
      .where('env', '=', env)
      .where('engine', '=', engine)
      .where('name', '=', role)
      .executeTakeFirst();
    if (!r)
      throw notFound(
        'RoleNotFound',
        `No role ${env}/${engine}/${role}`,
        `List roles with \`custody engine role list ${env}/${engine}\`.`,
      );
    return r;
  }

  return {
    roleRow,

    async writeRole(env, engine, role, input) {
      const r = await mounts.row(env, engine);
      validateEngineName('role', role);
      const config = mounts.factoryFor(r.type).parseRole(input.config) as Record<string, unknown>;
      const ttl = input.ttlSeconds ?? DEFAULT_TTL;
      const maxTtl = input.maxTtlSeconds ?? Math.max(DEFAULT_MAX_TTL, ttl);
      if (ttl < 1 || maxTtl < ttl)
        throw badRequest(
          'InvalidTtl',
          'ttl must be at least 1s and no longer than max ttl',
          'Example: --ttl 1h --max-ttl 24h.',
        );
      mounts.factoryFor(r.type).checkRoleTtl?.(config, ttl, maxTtl);
      const now = Date.now();
      const values = {
        kind: 'dynamic' as const,
        config: JSON.stringify(config),
        ttl_seconds: ttl,
        max_ttl_seconds: maxTtl,
        updated_at: now,
      };
      await db
        .insertInto('engine_roles')
        .values({
          env,
          engine,
          name: role,
          ...values,
          secret: null,
          rotation_period_seconds: null,
          last_rotated_at: null,
          created_at: now,
        })
        .onConflict((oc) => oc.columns(['env', 'engine', 'name']).doUpdateSet(values))
        .execute();
      return toRole(await roleRow(env, engine, role));
    },

    readRole: async (env, engine, role) => toRole(await roleRow(env, engine, role)),

    async listRoles(env, engine) {
      await mounts.row(env, engine);
      return (
        await db
          .selectFrom('engine_roles')
          .selectAll()
          .where('env', '=', env)
          .where('engine', '=', engine)
          .orderBy('name')
          .execute()
      ).map(toRole);
    },

    async deleteRole(env, engine, role) {
      await roleRow(env, engine, role);
      await db
        .deleteFrom('engine_roles')
        .where('env', '=', env)
        .where('engine', '=', engine)
        .where('name', '=', role)
        .execute();
    },
  };
}
