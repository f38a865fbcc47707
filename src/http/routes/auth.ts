import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { type TOptional, type TSchema, Type } from '@sinclair/typebox';
import type { Identity } from '../../auth/identity-service.js';
import type { AuthMethod, LoginResult, LoginRole } from '../../auth/methods/auth-method-service.js';
import { METHOD_NAME_PATTERN, ROLE_NAME_PATTERN } from '../../auth/methods/names.js';
import { iso } from '../../duration.js';
import { nativeOperation as op } from '../operation.js';
import * as S from '../schemas.js';
import type { Services } from '../services.js';

const tags = ['auth'];
const err = { '4xx': { $ref: 'Error#' } };
const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);
const Strings = (maxItems: number, maxLength = 512) =>
  Type.Array(Type.String({ minLength: 1, maxLength }), { maxItems });

const Env = Type.String({ pattern: '^[a-z][a-z0-9-]{0,31}$' });
const Method = Type.String({ pattern: METHOD_NAME_PATTERN });
const Role = Type.String({ pattern: ROLE_NAME_PATTERN });
const MethodPath = Type.Object({ env: Env, method: Method });
const RolePath = Type.Object({ env: Env, method: Method, role: Role });

const JwtMethodConfigFields = {
  issuer: Type.String({ maxLength: 512 }),
  discovery: Type.Boolean(),
  jwks_url: Type.String({ maxLength: 2048 }),
  public_keys: Strings(16, 16 * 1024),
  audiences: Strings(32),
  algorithms: Strings(16, 16),
  leeway_seconds: Type.Integer({ minimum: 0, maximum: 300 }),
  jwks_cooldown_seconds: Type.Integer({ minimum: 1, maximum: 3600 }),
  ca_pem: Type.String({ maxLength: 64 * 1024 }),
  preset: Type.String({ maxLength: 32 }),
};
const optional = <T extends Record<string, TSchema>>(fields: T) =>
  Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, Type.Optional(v)])) as {
    [K in keyof T]: TOptional<T[K]>;
  };

const CreateMethodBody = Type.Object(
  {
    type: Type.Union([Type.Literal('jwt'), Type.Literal('approle')]),
    name: Type.Optional(Method),
    config: Type.Optional(Type.Object(optional(JwtMethodConfigFields), { additionalProperties: false })),
  },
  { additionalProperties: false },
);

const MethodOut = Type.Object({
  env: Type.String(),
  name: Type.String(),
  type: Type.String(),
  config: Type.Object({
    issuer: Type.Optional(Nullable(Type.String())),
    discovery: Type.Optional(Type.Boolean()),
    jwks_url: Type.Optional(Nullable(Type.String())),
    public_keys: Type.Optional(Type.Array(Type.String())),
    audiences: Type.Optional(Type.Array(Type.String())),
    algorithms: Type.Optional(Type.Array(Type.String())),
    leeway_seconds: Type.Optional(Type.Integer()),
    jwks_cooldown_seconds: Type.Optional(Type.Integer()),
    ca_pem: Type.Optional(Nullable(Type.String())),
    preset: Type.Optional(Nullable(Type.String())),
  }),
  created_at: Type.String({ format: 'date-time' }),
  updated_at: Type.String({ format: 'date-time' }),
});

const ClaimMap = <T extends TSchema>(value: T) =>
  Type.Record(Type.String({ minLength: 1, maxLength: 256 }), value, { maxProperties: 32 });

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

const method = (m: AuthMethod) => ({
  env: m.env,
  name: m.name,
  type: m.type,
  config: m.config,
  created_at: iso(m.createdAt)!,
  updated_at: iso(m.updatedAt)!,
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

/** Auth methods, login roles, AppRole secret ids, logins and on-behalf-of exchange. Adapter only. */
export const authRoutes: FastifyPluginAsyncTypebox<{ services: Services }> = async (app, { services }) => {
  const { pipeline, authMethods } = services;
  const manage = (env: string, m?: string) => ({ action: 'auth/manage', resource: m ? `${env}/${m}` : env });

  app.post(
    '/v1/auth/methods/:env',
    {
      schema: {
        tags,
        summary: 'Configure an auth method (jwt or approle) in an environment',
        params: S.EnvPath,
        body: CreateMethodBody,
        response: { 200: MethodOut, ...err },
      },
    },
    async (req) => {
      const { env } = req.params;
      const b = req.body;
      const name = b.name ?? b.type;
      const c = b.config ?? {};
      const created = await pipeline.run(
        op(req, {
          ...manage(env, name),
          data: {
            type: b.type,
            name,
            issuer: c.issuer,
            discovery: c.discovery,
            jwks_url: c.jwks_url,
            public_keys: c.public_keys?.length,
            audiences: c.audiences,
            algorithms: c.algorithms,
            preset: c.preset,
          },
        }),
        () => authMethods.createMethod(env, { type: b.type, name: b.name, config: c }),
      );
      return method(created);
    },
  );

  app.get(
    '/v1/auth/methods/:env',
    {
      schema: {
        tags,
        summary: "List an environment's auth methods",
        params: S.EnvPath,
        response: { 200: Type.Object({ items: Type.Array(MethodOut) }), ...err },
      },
    },
    async (req) => ({
      items: (
        await pipeline.run(op(req, manage(req.params.env)), () => authMethods.listMethods(req.params.env))
      ).map(method),
    }),
  );

  app.get(
    '/v1/auth/methods/:env/:method',
    {
      schema: {
        tags,
        summary: 'Read an auth method',
        params: MethodPath,
        response: { 200: MethodOut, ...err },
      },
    },
    async (req) => {
      const { env, method: m } = req.params;
      return method(await pipeline.run(op(req, manage(env, m)), () => authMethods.getMethod(env, m)));
    },
  );

  app.delete(
    '/v1/auth/methods/:env/:method',
    {
      schema: {
        tags,
        summary: 'Delete an auth method with its roles and secret ids',
        params: MethodPath,
        response: { 200: Type.Object({ deleted: Type.Boolean() }), ...err },
      },
    },
    async (req) => {
      const { env, method: m } = req.params;
      await pipeline.run(op(req, manage(env, m)), () => authMethods.deleteMethod(env, m));
      return { deleted: true };
    },
  );

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
      const saved = await pipeline.run(op(req, { ...manage(env, m), data: { role: r, ...req.body } }), () =>
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
      return role(
        await pipeline.run(op(req, { ...manage(env, m), data: { role: r } }), () =>
          authMethods.getRole(env, m, r),
        ),
      );
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
      await pipeline.run(op(req, { ...manage(env, m), data: { role: r } }), () =>
        authMethods.deleteRole(env, m, r),
      );
      return { deleted: true };
    },
  );

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
      const roleId = await pipeline.run(op(req, { ...manage(env, m), data: { role: r } }), async (ctx) => {
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
        op(req, { ...manage(env, m), data: { role: r, metadata: b.metadata, cidrs: b.cidrs } }),
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
      await pipeline.run(
        op(req, { ...manage(env, m), data: { role: r, secret_id_accessor: accessor } }),
        () => authMethods.destroySecretId(env, m, r, accessor),
      );
      return { destroyed: true };
    },
  );

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
