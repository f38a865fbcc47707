import { badRequest } from '../../errors.js';
import { validateEnvName } from '../../kv/names.js';
import type { AuthMethodService } from './auth-method-service.js';
import { KeySourceError } from './http-fetch.js';
import { type JwtMethodConfigInput, normalizeJwtMethodConfig } from './jwt-config.js';
import { createKeySource, type KeySource } from './key-source.js';
import type { MethodContext } from './method-context.js';
import { validateMethodName } from './names.js';
import { methodNotFound } from './store.js';
import type { AuthMethod, JwtMethodConfig } from './types.js';

type MethodConfigOps = Pick<AuthMethodService, 'createMethod' | 'listMethods' | 'getMethod' | 'deleteMethod'>;

/**
 * A JWT method's configuration, normalized, with a key source that has loaded its keys: a method
 * whose identity provider cannot be reached is refused when configured, not at its first login.
 */
async function checkedJwtConfig(
  input: JwtMethodConfigInput,
): Promise<{ config: JwtMethodConfig; source: KeySource }> {
  const config = normalizeJwtMethodConfig(input);
  const source = await createKeySource(config);
  try {
    await source.check();
  } catch (err) {
    await source.close();
    if (!(err instanceof KeySourceError)) throw err;
    throw badRequest(
      'JwksUnreachable',
      "The identity provider's discovery document or key set could not be loaded",
      `${err.message}. Check issuer / jwks_url, that the broker can reach it, and ca_pem for a private CA.`,
    );
  }
  return { config, source };
}

/** Enabling, reading and disabling auth methods, per environment. */
export function methodConfig(ctx: MethodContext): MethodConfigOps {
  const { store, kv, keySources } = ctx;
  return {
    async createMethod(env, input) {
      validateEnvName(env);
      const type = input.type;
      if (type !== 'jwt' && type !== 'approle') {
        throw badRequest('InvalidAuthMethodType', 'The auth method type is jwt or approle');
      }
      const name = validateMethodName(input.name ?? type);
      await kv.getEnvironment(env);
      await store.assertMethodAbsent(env, name);
      const now = Date.now();
      let config: AuthMethod['config'];
      let source: KeySource | null = null;
      if (type === 'jwt') {
        ({ config, source } = await checkedJwtConfig((input.config ?? {}) as JwtMethodConfigInput));
      } else {
        if (Object.keys(input.config ?? {}).length > 0) {
          throw badRequest(
            'InvalidConfig',
            'An approle method has no settings',
            'Configure its roles instead.',
          );
        }
        config = {};
      }
      const method: AuthMethod = { env, name, type, config, createdAt: now, updatedAt: now };
      try {
        await store.insertMethod(method);
      } catch (err) {
        await source?.close();
        throw err;
      }
      if (source) keySources.put(env, name, now, source);
      return method;
    },

    listMethods: async (env) => store.listMethods(validateEnvName(env)),

    getMethod: ctx.methodOf,

    async deleteMethod(env, method) {
      if (!(await store.deleteMethod(validateEnvName(env), validateMethodName(method)))) {
        throw methodNotFound(env, method);
      }
      keySources.drop(env, method);
    },
  };
}
