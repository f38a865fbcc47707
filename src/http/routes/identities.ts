import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { Group, Identity } from '../../auth/identity-service.js';
import { iso } from '../../duration.js';
import { validateEnvName } from '../../kv/names.js';
import { nativeOperation as op } from '../operation.js';
import type { Services } from '../services.js';

const tags = ['identities'];
const err = { '4xx': { $ref: 'Error#' } };

const IdentitySchema = Type.Object({
  id: Type.String(),
  env: Type.String(),
  kind: Type.String(),
  name: Type.String(),
  auth_method: Type.String(),
  login_role: Type.String(),
  metadata: Type.Record(Type.String(), Type.String()),
  groups: Type.Optional(Type.Array(Type.String())),
  created_at: Type.String(),
  last_login_at: Type.String(),
});
const GroupSchema = Type.Object({
  id: Type.String(),
  env: Type.String(),
  name: Type.String(),
  created_at: Type.String(),
  members: Type.Optional(Type.Array(Type.String())),
});

const identity = (i: Identity, groups?: Group[]) => ({
  id: i.id,
  env: i.env,
  kind: i.kind,
  name: i.name,
  auth_method: i.authMethod,
  login_role: i.loginRole,
  metadata: i.metadata,
  ...(groups ? { groups: groups.map((g) => g.name) } : {}),
  created_at: iso(i.createdAt)!,
  last_login_at: iso(i.lastLoginAt)!,
});
const group = (g: Group, members?: Identity[]) => ({
  id: g.id,
  env: g.env,
  name: g.name,
  created_at: iso(g.createdAt)!,
  ...(members ? { members: members.map((m) => m.name) } : {}),
});
const envOfRef = (ref: string) => (ref.includes('/') ? ref.split('/')[0] : '');

/** Identities (created by logins) and groups (from claims or managed here). */
export const identityRoutes: FastifyPluginAsyncTypebox<{ services: Services }> = async (
  app,
  { services },
) => {
  const { pipeline, identities } = services;
  const EnvQuery = Type.Object({ env: Type.String({ maxLength: 64 }) }, { additionalProperties: false });

  app.get(
    '/v1/identities',
    {
      schema: {
        tags,
        summary: 'List identities in an environment',
        querystring: EnvQuery,
        response: { 200: Type.Object({ items: Type.Array(IdentitySchema) }), ...err },
      },
    },
    async (req) => {
      const env = validateEnvName(req.query.env);
      const items = await pipeline.run(op(req, { action: 'identities/read', resource: env }), () =>
        identities.list(env),
      );
      return { items: items.map((i) => identity(i)) };
    },
  );

  app.get(
    '/v1/identities/:ref',
    {
      schema: {
        tags,
        summary: 'Show an identity (id or ENV/NAME, URL-encoded) and its groups',
        params: Type.Object({ ref: Type.String({ maxLength: 300 }) }),
        response: { 200: IdentitySchema, ...err },
      },
    },
    async (req) => {
      // An id carries no environment; the pipeline then authorizes against the identity's own environment.
      const byId =
        envOfRef(req.params.ref) === '' ? await identities.get(req.params.ref).catch(() => null) : null;
      const env = byId?.env ?? envOfRef(req.params.ref);
      return pipeline.run(op(req, { action: 'identities/read', resource: env }), async () => {
        const i = byId ?? (await identities.resolve(req.params.ref));
        return identity(i, await identities.groupsOf(i.id));
      });
    },
  );

  app.post(
    '/v1/groups',
    {
      schema: {
        tags,
        summary: 'Create a group in an environment',
        body: Type.Object(
          { env: Type.String({ maxLength: 64 }), name: Type.String({ maxLength: 128 }) },
          { additionalProperties: false },
        ),
        response: { 200: GroupSchema, ...err },
      },
    },
    async (req) => {
      const env = validateEnvName(req.body.env);
      return group(
        await pipeline.run(op(req, { action: 'access/assign', resource: env, data: { ...req.body } }), () =>
          identities.createGroup(env, req.body.name),
        ),
      );
    },
  );

  app.get(
    '/v1/groups',
    {
      schema: {
        tags,
        summary: 'List groups',
        querystring: EnvQuery,
        response: { 200: Type.Object({ items: Type.Array(GroupSchema) }), ...err },
      },
    },
    async (req) => {
      const env = validateEnvName(req.query.env);
      return {
        items: (
          await pipeline.run(op(req, { action: 'identities/read', resource: env }), () =>
            identities.listGroups(env),
          )
        ).map((g) => group(g)),
      };
    },
  );

  const GroupParams = Type.Object({
    env: Type.String({ maxLength: 64 }),
    name: Type.String({ maxLength: 128 }),
  });
  app.get(
    '/v1/groups/:env/:name',
    {
      schema: {
        tags,
        summary: 'Show a group and its members',
        params: GroupParams,
        response: { 200: GroupSchema, ...err },
      },
    },
    async (req) => {
      const { env, name } = req.params;
      return pipeline.run(
        op(req, { action: 'identities/read', resource: validateEnvName(env) }),
        async () => {
          const g = await identities.getGroup(`${env}/${name}`);
          return group(g, await identities.members(g.id));
        },
      );
    },
  );

  app.delete(
    '/v1/groups/:env/:name',
    {
      schema: {
        tags,
        summary: 'Delete a group (and its assignments)',
        params: GroupParams,
        response: { 204: Type.Null(), ...err },
      },
    },
    async (req, reply) => {
      const { env, name } = req.params;
      await pipeline.run(op(req, { action: 'access/assign', resource: validateEnvName(env) }), async () =>
        identities.deleteGroup((await identities.getGroup(`${env}/${name}`)).id),
      );
      return reply.status(204).send(null);
    },
  );

  const MemberBody = Type.Object(
    { identity: Type.String({ maxLength: 300 }) },
    { additionalProperties: false },
  );
  for (const [method, verb] of [
    ['PUT', 'add'],
    ['DELETE', 'remove'],
  ] as const) {
    app.route({
      method,
      url: '/v1/groups/:env/:name/members',
      schema: {
        tags,
        summary: `${verb === 'add' ? 'Add' : 'Remove'} a member`,
        params: GroupParams,
        body: MemberBody,
        response: { 200: GroupSchema, ...err },
      },
      handler: async (req) => {
        const { env, name } = req.params as { env: string; name: string };
        const { identity: ref } = req.body as { identity: string };
        return pipeline.run(
          op(req, { action: 'access/assign', resource: validateEnvName(env), data: { identity: ref } }),
          async () => {
            const g = await identities.getGroup(`${env}/${name}`);
            const i = await identities.resolve(ref);
            if (verb === 'add') await identities.addMember(g.id, i.id);
            else await identities.removeMember(g.id, i.id);
            return group(g, await identities.members(g.id));
          },
        );
      },
    });
  }
};
