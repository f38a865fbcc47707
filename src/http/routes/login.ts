import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { Identity } from '../../auth/identity-service.js';
import type { LoginResult } from '../../auth/methods/auth-method-service.js';
import { iso } from '../../duration.js';
import { nativeOperation as op } from '../operation.js';
import type { Services } from '../services.js';
import { err, Nullable, RolePath, tags } from './auth-schemas.js';

const IdentityOut = Type.Object({ id: Type.String(), name: Type.String(), kind: Type.String() });
const LoginOut = Type.Object({
  token: Type.String(),
  accessor: Type.String(),
  identity: IdentityOut,
  actor: Type.Optional(IdentityOut),
  expires_at: Nullable(Type.String({ format: 'date-time' })),
  max_expires_at: Nullable(Type.String({ format: 'date-time' })),
  renewable: Type.Boolean(),
  policies: Type.Array(Type.String()),
  env: Type.String(),
});

/** Drops absent fields so the audit trail holds no digests of `undefined`. */
const present = (fields: Record<string, unknown>) =>
  Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined));
const identity = (i: Identity) => ({ id: i.id, name: i.name, kind: i.kind });
const login = (l: LoginResult) => ({
  token: l.token,
  accessor: l.info.accessor,
  identity: identity(l.identity),
  ...(l.actor ? { actor: identity(l.actor) } : {}),
  expires_at: iso(l.info.expiresAt),
  max_expires_at: iso(l.info.maxExpiresAt),
  renewable: l.info.renewable,
  policies: l.info.policies,
  env: l.info.env ?? '',
});
const loginAudit = (l: LoginResult) => ({
  data: {
    identity: l.identity.id,
    identity_name: l.identity.name,
    kind: l.identity.kind,
    ...(l.actor
      ? { actor: l.actor.id, actor_name: l.actor.name, parent_accessor: l.info.parentAccessor }
      : {}),
    accessor: l.info.accessor,
    expires_at: iso(l.info.expiresAt),
  },
  sensitive: { token: l.token },
});

/** Logins (JWT, AppRole) and on-behalf-of exchange: credentials in, token out. */
export const loginRoutes: FastifyPluginAsyncTypebox<{ services: Services }> = async (app, { services }) => {
  const { pipeline, authMethods } = services;

  app.post(
    '/v1/auth/login/:env/:method/:role',
    {
      schema: {
        tags,
        summary: 'Log in with a JWT or an AppRole role id + secret id',
        security: [],
        params: RolePath,
        body: Type.Object(
          {
            jwt: Type.Optional(Type.String({ maxLength: 256 * 1024 })),
            role_id: Type.Optional(Type.String({ maxLength: 256 })),
            secret_id: Type.Optional(Type.String({ maxLength: 256 })),
          },
          { additionalProperties: false },
        ),
        response: { 200: LoginOut, ...err },
      },
    },
    async (req) => {
      const { env, method: m, role: r } = req.params;
      const b = req.body;
      const result = await pipeline.run(
        op(req, {
          action: 'auth/login',
          resource: `${env}/${m}/${r}`,
          anonymous: true,
          sensitive: present({ jwt: b.jwt, role_id: b.role_id, secret_id: b.secret_id }),
        }),
        async (ctx) => {
          const l = await authMethods.login(
            env,
            m,
            r,
            { jwt: b.jwt, roleId: b.role_id, secretId: b.secret_id },
            req.ip,
          );
          ctx.auditResponse(loginAudit(l));
          return l;
        },
      );
      return login(result);
    },
  );

  app.post(
    '/v1/auth/obo/:env/:method/:role',
    {
      schema: {
        tags,
        summary:
          "Exchange a user's JWT for a token acting on the user's behalf (caller: the workload's token)",
        params: RolePath,
        body: Type.Object(
          { user_jwt: Type.String({ minLength: 1, maxLength: 256 * 1024 }) },
          { additionalProperties: false },
        ),
        response: { 200: LoginOut, ...err },
      },
    },
    async (req) => {
      const { env, method: m, role: r } = req.params;
      // Anonymous to the pipeline: the workload token is checked by the exchange itself, since the
      // authorizer has no grant that would let a workload log someone in.
      const operation = op(req, { action: 'auth/obo', resource: `${env}/${m}/${r}`, anonymous: true });
      // Both credentials reach the audit trail only as digests.
      operation.sensitive = present({ user_jwt: req.body.user_jwt, actor_token: operation.token });
      const result = await pipeline.run(operation, async (ctx) => {
        const l = await authMethods.loginOnBehalfOf(env, m, r, {
          actorToken: operation.token,
          userJwt: req.body.user_jwt,
        });
        ctx.auditResponse(loginAudit(l));
        return l;
      });
      return login(result);
    },
  );
};
