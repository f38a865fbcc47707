import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { type TOptional, type TSchema, Type } from '@sinclair/typebox';
import type { AuthMethod } from '../../auth/methods/auth-method-service.js';
import { iso } from '../../duration.js';
import { nativeOperation as op } from '../operation.js';
import * as S from '../schemas.js';
import type { Services } from '../services.js';
import { err, Method, MethodPath, manage, Nullable, Strings, tags } from './auth-schemas.js';

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

const method = (m: AuthMethod) => ({
  env: m.env,
  name: m.name,
  type: m.type,
  config: m.config,
  created_at: iso(m.createdAt)!,
  updated_at: iso(m.updatedAt)!,
});

/** Auth methods of an environment: configure, list, read, delete. */
export const authMethodRoutes: FastifyPluginAsyncTypebox<{ services: Services }> = async (
  app,
  { services },
) => {
  const { pipeline, authMethods } = services;

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
};
