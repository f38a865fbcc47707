import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Services } from '../services.js';
import { authMethodRoutes } from './auth-methods.js';
import { authRoleRoutes } from './auth-roles.js';
import { authSecretIdRoutes } from './auth-secret-ids.js';
import { loginRoutes } from './login.js';

/**
 * Auth methods, login roles, AppRole secret ids, logins and on-behalf-of exchange. Adapter only.
 * Registered in this order so the routes (and the OpenAPI document) keep their order.
 */
export const authRoutes: FastifyPluginAsyncTypebox<{ services: Services }> = async (app, { services }) => {
  await app.register(authMethodRoutes, { services });
  await app.register(authRoleRoutes, { services });
  await app.register(authSecretIdRoutes, { services });
  await app.register(loginRoutes, { services });
};
