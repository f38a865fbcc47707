import { badRequest, conflict } from '../errors.js';
import { type KvContext, toEnv } from './kv-context.js';
import type { KvService } from './kv-service.js';
import { validateEnvName } from './names.js';

type EnvironmentOps = Pick<
  KvService,
  'createEnvironment' | 'listEnvironments' | 'getEnvironment' | 'updateEnvironment'
>;

/** Environments: the boundary every secret lives in, with its retention and purge protection. */
export function createEnvironmentOps({ db, requireEnv }: KvContext): EnvironmentOps {
  return {
    async createEnvironment({ name, retentionDays = 90, purgeProtection = false }) {
      validateEnvName(name);
      if (!Number.isInteger(retentionDays) || retentionDays < 7 || retentionDays > 90) {
        throw badRequest(
          'InvalidRetention',
          'Retention is a whole number of days from 7 to 90',
          'Omit it for 90.',
        );
      }
      const now = Date.now();
      const res = await db
        .insertInto('environments')
        .values({
          name,
          retention_days: retentionDays,
          purge_protection: purgeProtection ? 1 : 0,
          created_at: now,
          updated_at: now,
        })
        .onConflict((oc) => oc.column('name').doNothing())
        .executeTakeFirst();
      if (Number(res.numInsertedOrUpdatedRows ?? 0) === 0) {
        throw conflict('EnvironmentExists', `Environment ${name} already exists`, 'Use `custody env show`.');
      }
      return requireEnv(name);
    },

    async listEnvironments() {
      return (await db.selectFrom('environments').selectAll().orderBy('name').execute()).map(toEnv);
    },

    getEnvironment: (name) => requireEnv(name),

    async updateEnvironment(name, { purgeProtection }) {
      const env = await requireEnv(name);
      if (purgeProtection === false && env.purgeProtection) {
        throw conflict(
          'PurgeProtectionLocked',
          'Purge protection cannot be turned off once enabled',
          'This is deliberate: it guarantees deleted secrets stay recoverable for the retention period.',
        );
      }
      if (purgeProtection) {
        await db
          .updateTable('environments')
          .set({ purge_protection: 1, updated_at: Date.now() })
          .where('name', '=', name)
          .execute();
      }
      return requireEnv(name);
    },
  };
}
