import { badRequest } from '../../errors.js';
import { newRoleId } from './approle.js';
import { normalizeAppRoleRoleConfig } from './approle-config.js';
import type { AuthMethodService } from './auth-method-service.js';
import { normalizeJwtRoleConfig } from './jwt-config.js';
import type { MethodContext } from './method-context.js';
import { validateRoleName } from './names.js';
import { roleNotFound } from './store.js';
import type { JwtMethodConfig, LoginRole } from './types.js';

type LoginRoleOps = Pick<AuthMethodService, 'putRole' | 'getRole' | 'listRoles' | 'deleteRole'>;

const JWT_ROLE_KEYS = new Set([
  'user_claim',
  'bound_subject',
  'bound_audiences',
  'bound_claims',
  'claim_mappings',
  'groups_claim',
  'identity_kind',
  'token_ttl',
  'token_max_ttl',
]);
const APPROLE_ROLE_KEYS = new Set([
  'secret_id_ttl',
  'secret_id_num_uses',
  'secret_id_bound_cidrs',
  'token_bound_cidrs',
  'token_ttl',
  'token_max_ttl',
]);

/** One role body serves both method types, so a setting of the other type is refused, not ignored. */
function onlyKeys(input: object, allowed: Set<string>, what: string): void {
  const extra = Object.keys(input).filter((k) => !allowed.has(k));
  if (extra.length > 0) {
    throw badRequest(
      'InvalidConfig',
      `${extra.join(', ')} ${extra.length === 1 ? 'is not a setting' : 'are not settings'} of ${what}`,
      `Settings: ${[...allowed].join(', ')}.`,
    );
  }
}

/** Login roles of a method: create or replace, read, list, delete. */
export function loginRoles(ctx: MethodContext): LoginRoleOps {
  const { store, methodOf } = ctx;
  return {
    async putRole(env, method, role, input) {
      const m = await methodOf(env, method);
      validateRoleName(role);
      const now = Date.now();
      const existing = await store.findRole(m.env, m.name, role);
      let config: LoginRole['config'];
      let lookupKey: string | null = null;
      if (m.type === 'jwt') {
        onlyKeys(input, JWT_ROLE_KEYS, 'jwt roles');
        config = normalizeJwtRoleConfig(input, m.config as JwtMethodConfig);
      } else {
        onlyKeys(input, APPROLE_ROLE_KEYS, 'approle roles');
        config = normalizeAppRoleRoleConfig(input);
        // Replacing a role keeps its role id, so deployed jobs keep logging in.
        lookupKey = existing?.lookup_key ?? newRoleId();
      }
      const r: LoginRole = {
        env: m.env,
        method: m.name,
        name: role,
        type: m.type,
        config,
        createdAt: existing?.created_at ?? now,
        updatedAt: now,
      };
      await store.putRole(r, lookupKey);
      return r;
    },

    getRole: async (env, method, role) => (await ctx.roleOf(env, method, role)).r,

    async listRoles(env, method) {
      const m = await methodOf(env, method);
      return store.listRoles(m.env, m.name, m.type);
    },

    async deleteRole(env, method, role) {
      const m = await methodOf(env, method);
      if (!(await store.deleteRole(m.env, m.name, validateRoleName(role))))
        throw roleNotFound(env, method, role);
    },
  };
}
