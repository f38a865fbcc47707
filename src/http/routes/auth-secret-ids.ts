import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { iso } from '../../duration.js';
import { nativeOperation as op } from '../operation.js';
import type { Services } from '../services.js';
import { err, manageRole, Nullable, RolePath, Strings, tags } from './auth-schemas.js';

/** AppRole credentials of a role: read its role id, issue and destroy secret ids. */
export const authSecretIdRoutes: FastifyPluginAsyncTypebox<{ services: Services }> = async (
  app,
  { services },
) => {
  const { pipeline, authMethods } = services;

  app.get(
    '/v1/auth/methods/:env/:method/roles/:role/role-id',
    {
      schema: {
        tags,
        summary: "Read an AppRole role's role id",
        params: RolePath,
        response: { 200: Type.Object({ role_id: Type.String() }), ...err },
      },
    },
    async (req) => {
      const { env, method: m, role: r } = req.params;
      const roleId = await pipeline.run(op(req, manageRole(env, m, r)), async (ctx) => {
        const id = await authMethods.readRoleId(env, m, r);
        ctx.auditResponse({ sensitive: { role_id: id } });
        return id;
      });
      return { role_id: roleId };
    },
  );

  app.post(
    '/v1/auth/methods/:env/:method/roles/:role/secret-id',
    {
      schema: {
        tags,
        summary: 'Issue an AppRole secret id (shown once)',
        params: RolePath,
        body: Type.Optional(
          Type.Object(
            {
              metadata: Type.Optional(
                Type.Record(Type.String({ maxLength: 64 }), Type.String({ maxLength: 512 }), {
                  maxProperties: 32,
                }),
              ),
              cidrs: Type.Optional(Strings(32, 64)),
            },
            { additionalProperties: false },
          ),
        ),
        response: {
          200: Type.Object({
            secret_id: Type.String(),
            secret_id_accessor: Type.String(),
            expires_at: Nullable(Type.String({ format: 'date-time' })),
            uses_left: Nullable(Type.Integer()),
          }),
          ...err,
        },
      },
    },
    async (req) => {
      const { env, method: m, role: r } = req.params;
      const b = req.body ?? {};
      const issued = await pipeline.run(
        op(req, manageRole(env, m, r, { metadata: b.metadata, cidrs: b.cidrs })),
        async (ctx) => {
          const s = await authMethods.createSecretId(env, m, r, b);
          ctx.auditResponse({
            data: { secret_id_accessor: s.accessor, expires_at: iso(s.expiresAt), uses_left: s.usesLeft },
            sensitive: { secret_id: s.secretId },
          });
          return s;
        },
      );
      return {
        secret_id: issued.secretId,
        secret_id_accessor: issued.accessor,
        expires_at: iso(issued.expiresAt),
        uses_left: issued.usesLeft,
      };
    },
  );

  app.post(
    '/v1/auth/methods/:env/:method/roles/:role/secret-id/destroy',
    {
      schema: {
        tags,
        summary: 'Destroy an AppRole secret id by its accessor',
        params: RolePath,
        body: Type.Object(
          { secret_id_accessor: Type.String({ minLength: 1, maxLength: 64 }) },
          { additionalProperties: false },
        ),
        response: { 200: Type.Object({ destroyed: Type.Boolean() }), ...err },
      },
    },
    async (req) => {
      const { env, method: m, role: r } = req.params;
      const accessor = req.body.secret_id_accessor;
      await pipeline.run(op(req, manageRole(env, m, r, { secret_id_accessor: accessor })), () =>
        authMethods.destroySecretId(env, m, r, accessor),
      );
      return { destroyed: true };
    },
  );
};
