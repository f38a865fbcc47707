import { badRequest } from '../../errors.js';
import { validateEnvName } from '../../kv/names.js';
import { SecretIds } from './approle.js';
import type { AuthMethodDeps } from './auth-method-service.js';
import { KeySourceCache } from './key-source-cache.js';
import { validateMethodName, validateRoleName } from './names.js';
import { MethodStore } from './store.js';
import type { AuthMethod, AuthMethodType, LoginRole } from './types.js';

/** What the parts of the auth method service share: their dependencies, stores and key-set cache. */
export interface MethodContext extends AuthMethodDeps {
  store: MethodStore;
  secretIds: SecretIds;
  keySources: KeySourceCache;
  /** The method, after checking the names (so a bad name is a 400, not a 404). */
  methodOf(env: string, method: string): Promise<AuthMethod>;
  roleOf(env: string, method: string, role: string): Promise<{ m: AuthMethod; r: LoginRole }>;
}

export function createMethodContext(deps: AuthMethodDeps): MethodContext {
  const store = new MethodStore(deps.storage, deps.barrier);
  const methodOf = async (env: string, method: string) =>
    store.getMethod(validateEnvName(env), validateMethodName(method));
  return {
    ...deps,
    store,
    secretIds: new SecretIds(deps.storage),
    keySources: new KeySourceCache(),
    methodOf,
    async roleOf(env, method, role) {
      const m = await methodOf(env, method);
      const r = await store.getRole(m.env, m.name, validateRoleName(role), m.type);
      return { m, r };
    },
  };
}

export const wrongType = (expected: AuthMethodType, hint: string) =>
  badRequest('WrongAuthMethodType', `This operation needs an ${expected} method`, hint);
