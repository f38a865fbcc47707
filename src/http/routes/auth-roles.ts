import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { type TSchema, Type } from '@sinclair/typebox';
import type { LoginRole } from '../../auth/methods/auth-method-service.js';
import { iso } from '../../duration.js';
import { nativeOperation as op } from '../operation.js';
import * as S from '../schemas.js';
import type { Services } from '../services.js';
import { err, MethodPath, manage, manageRole, Nullable, RolePath, Strings, tags } from './auth-schemas.js';

const ClaimMap = <T extends TSchema>(value: T) =>
  Type.Record(Type.String({ minLength: 1, maxLength: 256 }), value, { maxProperties: 32 });

/** JWT and AppRole settings in one body: the service refuses those of the method's other type. */
const RoleBody = Type.Object(
  {
    user_claim: Type.Optional(Type.String({ maxLength: 256 })),
    bound_subject: Type.Optional(Type.String({ maxLength: 512 })),
    bound_audiences: Type.Optional(Strings(32)),
    bound_claims: Type.Optional(
      ClaimMap(Type.Union([Type.String({ minLength: 1, maxLength: 512 }), Strings(64)])),
    ),
    claim_mappings: Type.Optional(ClaimMap(Type.String({ maxLength: 64 }))),
    groups_claim: Type.Optional(Type.String({ maxLength: 256 })),
    identity_kind: Type.Optional(Type.Union([Type.Literal('workload'), Type.Literal('user')])),
    token_ttl: Type.Optional(S.Duration),
    token_max_ttl: Type.Optional(S.Duration),
    secret_id_ttl: Type.Optional(S.Duration),
    secret_id_num_uses: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000 })),
    secret_id_bound_cidrs: Type.Optional(Strings(32, 64)),
    token_bound_cidrs: Type.Optional(Strings(32, 64)),
  },
  { additionalProperties: false },
);

const RoleOut = Type.Object({
  env: Type.String(),
  method: Type.String(),
  name: Type.String(),
  type: Type.String(),
  config: Type.Object({
    user_claim: Type.Optional(Type.String()),
    bound_subject: Type.Optional(Nullable(Type.String())),
    bound_audiences: Type.Optional(Type.Array(Type.String())),
    bound_claims: Type.Optional(Type.Record(Type.String(), Type.Array(Type.String()))),
    claim_mappings: Type.Optional(Type.Record(Type.String(), Type.String())),
    groups_claim: Type.Optional(Nullable(Type.String())),
    identity_kind: Type.Optional(Type.String()),
    token_ttl: Type.Integer({ description: 'seconds' }),
    token_max_ttl: Type.Integer({ description: 'seconds' }),
    secret_id_ttl: Type.Optional(Type.Integer({ description: 'seconds; 0 = no expiry' })),
    secret_id_num_uses: Type.Optional(Type.Integer({ description: '0 = unlimited' })),
    secret_id_bound_cidrs: Type.Optional(Type.Array(Type.String())),
    token_bound_cidrs: Type.Optional(Type.Array(Type.String())),
  }),
  created_at: Type.String({ format: 'date-time' }),
  updated_at: Type.String({ format: 'date-time' }),
});

const role = (r: LoginRole) => ({
  env: r.env,
  method: r.method,
  name: r.name,
  type: r.type,
  config: r.config,
  created_at: iso(r.createdAt)!,
  updated_at: iso(r.updatedAt)!,
});

/** Login roles of an auth method: create or replace, list, read, delete. */
export const authRoleRoutes: FastifyPluginAsyncTypebox<{ services: Services }> = async (
  app,
  { services },
) => {
  const { pipeline, authMethods } = services;

  app.put(
    '/v1/auth/methods/:env/:method/roles/:role',
    {
      schema: {
        tags,
        summary: 'Create or replace a login role',
        params: RolePath,
        body: RoleBody,
        response: { 200: RoleOut, ...err },
      },
    },
    async (req) => {
      const { env, method: m, role: r } = req.params;
      const saved = await pipeline.run(op(req, manageRole(env, m, r, req.body)), () =>
        authMethods.putRole(env, m, r, req.body),
      );
      return role(saved);
    },
  );

  app.get(
    '/v1/auth/methods/:env/:method/roles',
    {
      schema: {
        tags,
        summary: "List an auth method's login roles",
        params: MethodPath,
        response: { 200: Type.Object({ items: Type.Array(RoleOut) }), ...err },
      },
    },
    async (req) => {
      const { env, method: m } = req.params;
      return {
        items: (await pipeline.run(op(req, manage(env, m)), () => authMethods.listRoles(env, m))).map(role),
      };
    },
  );

  app.get(
    '/v1/auth/methods/:env/:method/roles/:role',
    { schema: { tags, summary: 'Read a login role', params: RolePath, response: { 200: RoleOut, ...err } } },
    async (req) => {
      const { env, method: m, role: r } = req.params;
      return role(await pipeline.run(op(req, manageRole(env, m, r)), () => authMethods.getRole(env, m, r)));
    },
  );

  app.delete(
    '/v1/auth/methods/:env/:method/roles/:role',
    {
      schema: {
        tags,
        summary: 'Delete a login role (and its AppRole secret ids)',
        params: RolePath,
        response: { 200: Type.Object({ deleted: Type.Boolean() }), ...err },
      },
    },
    async (req) => {
      const { env, method: m, role: r } = req.params;
      await pipeline.run(op(req, manageRole(env, m, r)), () => authMethods.deleteRole(env, m, r));
      return { deleted: true };
    },
  );
};
