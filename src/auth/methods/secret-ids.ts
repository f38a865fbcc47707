import type { AuthMethodService } from './auth-method-service.js';
import type { MethodContext } from './method-context.js';
import { wrongType } from './method-context.js';
import type { AppRoleRoleConfig } from './types.js';

type SecretIdOps = Pick<
  AuthMethodService,
  'readRoleId' | 'createSecretId' | 'destroySecretId' | 'purgeExpired'
>;

/** AppRole credentials of a role: its role id, and the secret ids issued for it. */
export function appRoleSecretIds(ctx: MethodContext): SecretIdOps {
  const { store, secretIds } = ctx;

  /** The role, which must belong to an AppRole method; `hint` says why. */
  async function appRoleOf(env: string, method: string, role: string, hint: string) {
    const { m, r } = await ctx.roleOf(env, method, role);
    if (m.type !== 'approle') throw wrongType('approle', hint);
    return { r, ref: { env: m.env, method: m.name, role: r.name } };
  }

  return {
    async readRoleId(env, method, role) {
      const { ref } = await appRoleOf(env, method, role, 'Only AppRole roles have a role id.');
      return (await store.lookupKey(ref.env, ref.method, ref.role))!;
    },

    async createSecretId(env, method, role, input) {
      const { r, ref } = await appRoleOf(env, method, role, 'Only AppRole roles have secret ids.');
      return secretIds.issue(ref, r.config as AppRoleRoleConfig, input);
    },

    async destroySecretId(env, method, role, accessor) {
      const { ref } = await appRoleOf(env, method, role, 'Only AppRole roles have secret ids.');
      await secretIds.destroy(ref, accessor);
    },

    async purgeExpired(now = Date.now()) {
      const res = await ctx.storage.db
        .deleteFrom('approle_secret_ids')
        .where('expires_at', '<=', now)
        .executeTakeFirst();
      return Number(res.numDeletedRows);
    },
  };
}
