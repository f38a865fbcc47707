import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { iso, parseDuration } from '../../duration.js';
import type { EngineInfo, EngineRole } from '../../engines/engine-service.js';
import { nativeOperation as op } from '../operation.js';
import type { Services } from '../services.js';

const tags = ['engines'];
const err = { '4xx': { $ref: 'Error#' }, '5xx': { $ref: 'Error#' } };
const Name = Type.String({ maxLength: 64 });
const EngineParams = Type.Object({ env: Name, engine: Name });
const RoleParams = Type.Object({ env: Name, engine: Name, role: Name });
const Duration = Type.Union([Type.String({ maxLength: 32 }), Type.Integer({ minimum: 0 })]);

const EngineSchema = Type.Object({
  env: Type.String(),
  name: Type.String(),
  type: Type.String(),
  config: Type.Record(Type.String(), Type.Unknown()),
  created_at: Type.String(),
  updated_at: Type.String(),
});
const RoleSchema = Type.Object({
  env: Type.String(),
  engine: Type.String(),
  name: Type.String(),
  kind: Type.String(),
  config: Type.Record(Type.String(), Type.Unknown()),
  ttl: Type.Integer(),
  max_ttl: Type.Integer(),
  rotation_period: Type.Union([Type.Integer(), Type.Null()]),
  last_rotated_at: Type.Union([Type.String(), Type.Null()]),
});

const engine = (e: EngineInfo) => ({
  env: e.env,
  name: e.name,
  type: e.type,
  config: e.config,
  created_at: iso(e.createdAt)!,
  updated_at: iso(e.updatedAt)!,
});
const role = (r: EngineRole) => ({
  env: r.env,
  engine: r.engine,
  name: r.name,
  kind: r.kind,
  config: r.config,
  ttl: r.ttlSeconds,
  max_ttl: r.maxTtlSeconds,
  rotation_period: r.rotationPeriodSeconds,
  last_rotated_at: iso(r.lastRotatedAt),
});
const seconds = (d: string | number | undefined, what: string) =>
  d === undefined ? undefined : parseDuration(d, what);

/** Engine mounts, their roles and static roles (action engines/manage on ENV/ENGINE[/ROLE]). */
export const engineRoutes: FastifyPluginAsyncTypebox<{ services: Services }> = async (app, { services }) => {
  const { pipeline, engines } = services;

  app.put(
    '/v1/engines/:env/:engine',
    {
      schema: {
        tags,
        summary: 'Configure an engine (the connection is tested before it is saved)',
        params: EngineParams,
        body: Type.Object(
          { type: Type.String({ maxLength: 32 }), config: Type.Record(Type.String(), Type.Unknown()) },
          { additionalProperties: false },
        ),
        response: { 200: EngineSchema, ...err },
      },
    },
    async (req) => {
      const { env, engine: name } = req.params;
      return engine(
        await pipeline.run(
          op(req, {
            action: 'engines/manage',
            resource: `${env}/${name}`,
            data: { type: req.body.type },
            sensitive: { config: req.body.config },
          }),
          () => engines.configure(env, name, req.body.type, req.body.config),
        ),
      );
    },
  );

  app.get(
    '/v1/engines/:env',
    {
      schema: {
        tags,
        summary: 'List engines',
        params: Type.Object({ env: Name }),
        response: { 200: Type.Object({ items: Type.Array(EngineSchema) }), ...err },
      },
    },
    async (req) => ({
      items: (
        await pipeline.run(op(req, { action: 'engines/manage', resource: req.params.env }), () =>
          engines.list(req.params.env),
        )
      ).map(engine),
    }),
  );

  app.get(
    '/v1/engines/:env/:engine',
    {
      schema: {
        tags,
        summary: 'Show an engine (no passwords)',
        params: EngineParams,
        response: { 200: EngineSchema, ...err },
      },
    },
    async (req) => {
      const { env, engine: name } = req.params;
      return engine(
        await pipeline.run(op(req, { action: 'engines/manage', resource: `${env}/${name}` }), () =>
          engines.info(env, name),
        ),
      );
    },
  );

  app.delete(
    '/v1/engines/:env/:engine',
    {
      schema: {
        tags,
        summary: 'Remove an engine (refused while leases are live)',
        params: EngineParams,
        response: { 204: Type.Null(), ...err },
      },
    },
    async (req, reply) => {
      const { env, engine: name } = req.params;
      await pipeline.run(op(req, { action: 'engines/manage', resource: `${env}/${name}` }), () =>
        engines.remove(env, name),
      );
      return reply.status(204).send(null);
    },
  );

  app.post(
    '/v1/engines/:env/:engine/rotate-root',
    {
      schema: {
        tags,
        summary: "Rotate the engine's own admin password so only Custody knows it",
        params: EngineParams,
        response: { 200: EngineSchema, ...err },
      },
    },
    async (req) => {
      const { env, engine: name } = req.params;
      return engine(
        await pipeline.run(op(req, { action: 'engines/manage', resource: `${env}/${name}` }), () =>
          engines.rotateRoot(env, name),
        ),
      );
    },
  );

  app.put(
    '/v1/engines/:env/:engine/roles/:role',
    {
      schema: {
        tags,
        summary: 'Write a dynamic role',
        params: RoleParams,
        body: Type.Object(
          {
            ttl: Type.Optional(Duration),
            max_ttl: Type.Optional(Duration),
            config: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
          },
          { additionalProperties: false },
        ),
        response: { 200: RoleSchema, ...err },
      },
    },
    async (req) => {
      const { env, engine: name, role: r } = req.params;
      const b = req.body;
      return role(
        await pipeline.run(
          op(req, { action: 'engines/manage', resource: `${env}/${name}/${r}`, data: { ...b } }),
          () =>
            engines.writeRole(env, name, r, {
              ttlSeconds: seconds(b.ttl, 'ttl'),
              maxTtlSeconds: seconds(b.max_ttl, 'max ttl'),
              config: b.config ?? {},
            }),
        ),
      );
    },
  );

  app.get(
    '/v1/engines/:env/:engine/roles',
    {
      schema: {
        tags,
        summary: 'List roles',
        params: EngineParams,
        response: { 200: Type.Object({ items: Type.Array(RoleSchema) }), ...err },
      },
    },
    async (req) => {
      const { env, engine: name } = req.params;
      return {
        items: (
          await pipeline.run(op(req, { action: 'engines/manage', resource: `${env}/${name}` }), () =>
            engines.listRoles(env, name),
          )
        ).map(role),
      };
    },
  );

  app.get(
    '/v1/engines/:env/:engine/roles/:role',
    { schema: { tags, summary: 'Show a role', params: RoleParams, response: { 200: RoleSchema, ...err } } },
    async (req) => {
      const { env, engine: name, role: r } = req.params;
      return role(
        await pipeline.run(op(req, { action: 'engines/manage', resource: `${env}/${name}/${r}` }), () =>
          engines.readRole(env, name, r),
        ),
      );
    },
  );

  app.delete(
    '/v1/engines/:env/:engine/roles/:role',
    {
      schema: { tags, summary: 'Delete a role', params: RoleParams, response: { 204: Type.Null(), ...err } },
    },
    async (req, reply) => {
      const { env, engine: name, role: r } = req.params;
      await pipeline.run(op(req, { action: 'engines/manage', resource: `${env}/${name}/${r}` }), () =>
        engines.deleteRole(env, name, r),
      );
      return reply.status(204).send(null);
    },
  );

  app.put(
    '/v1/engines/:env/:engine/static-roles/:role',
    {
      schema: {
        tags,
        summary: 'Take ownership of an existing user: Custody sets and rotates its password',
        params: RoleParams,
        body: Type.Object(
          { username: Type.String({ maxLength: 63 }), rotation_period: Duration },
          { additionalProperties: false },
        ),
        response: { 200: RoleSchema, ...err },
      },
    },
    async (req) => {
      const { env, engine: name, role: r } = req.params;
      return role(
        await pipeline.run(
          op(req, { action: 'engines/manage', resource: `${env}/${name}/${r}`, data: { ...req.body } }),
          () =>
            engines.writeStaticRole(env, name, r, {
              username: req.body.username,
              rotationPeriodSeconds: parseDuration(req.body.rotation_period, 'rotation period'),
            }),
        ),
      );
    },
  );

  app.post(
    '/v1/engines/:env/:engine/static-roles/:role/rotate',
    {
      schema: {
        tags,
        summary: "Rotate a static role's password now",
        params: RoleParams,
        response: { 200: RoleSchema, ...err },
      },
    },
    async (req) => {
      const { env, engine: name, role: r } = req.params;
      return role(
        await pipeline.run(op(req, { action: 'engines/manage', resource: `${env}/${name}/${r}` }), () =>
          engines.rotateStatic(env, name, r),
        ),
      );
    },
  );

  app.get(
    '/v1/static-creds/:env/:engine/:role',
    {
      schema: {
        tags,
        summary: "Read a static role's current credentials",
        params: RoleParams,
        response: {
          200: Type.Object({
            username: Type.String(),
            password: Type.String(),
            last_rotated_at: Type.Union([Type.String(), Type.Null()]),
            rotation_period: Type.Union([Type.Integer(), Type.Null()]),
          }),
          ...err,
        },
      },
    },
    async (req) => {
      const { env, engine: name, role: r } = req.params;
      const c = await pipeline.run(
        op(req, { action: 'leases/issue', resource: `${env}/${name}/${r}` }),
        async (ctx) => {
          const creds = await engines.staticCredentials(env, name, r);
          ctx.auditResponse({ data: { username: creds.username }, sensitive: { password: creds.password } });
          return creds;
        },
      );
      return {
        username: c.username,
        password: c.password,
        last_rotated_at: iso(c.role.lastRotatedAt),
        rotation_period: c.role.rotationPeriodSeconds,
      };
    },
  );
};
