import { Type } from '@sinclair/typebox';
import { METHOD_NAME_PATTERN, ROLE_NAME_PATTERN } from '../../auth/methods/names.js';

/** Schemas and operation shapes shared by the auth route modules (methods, roles, secret ids, login). */
export const tags = ['auth'];
export const err = { '4xx': { $ref: 'Error#' } };
export { Nullable } from '../schemas.js';
export const Strings = (maxItems: number, maxLength = 512) =>
  Type.Array(Type.String({ minLength: 1, maxLength }), { maxItems });

const Env = Type.String({ pattern: '^[a-z][a-z0-9-]{0,31}$' });
export const Method = Type.String({ pattern: METHOD_NAME_PATTERN });
const Role = Type.String({ pattern: ROLE_NAME_PATTERN });
export const MethodPath = Type.Object({ env: Env, method: Method });
export const RolePath = Type.Object({ env: Env, method: Method, role: Role });

/** Managing a method and its roles is one action, on the method (or the environment, to list). */
export const manage = (env: string, m?: string) => ({
  action: 'auth/manage',
  resource: m ? `${env}/${m}` : env,
});
/** The same for one role, named in the audited data before any other field. */
export const manageRole = (env: string, m: string, role: string, data: Record<string, unknown> = {}) => ({
  ...manage(env, m),
  data: { role, ...data },
});
