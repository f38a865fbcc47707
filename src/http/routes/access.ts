import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { Assignment } from '../../access/access-service.js';
import { formatScope, parseScope } from '../../access/scope.js';
import { iso, parseDuration } from '../../duration.js';
import { nativeOperation as op } from '../operation.js';
import type { Services } from '../services.js';

const tags = ['access'];
const err = { '4xx': { $ref: 'Error#' } };

const AssignmentSchema = Type.Object({
  id: Type.String(),
  env: Type.String(),
  principal_type: Type.String(),
  principal_id: Type.String(),
  role: Type.String(),
  scope: Type.String(),
  allow_management: Type.Boolean(),
  reason: Type.String(),
  created_by: Type.String(),
  created_at: Type.String(),
  expires_at: Type.Union([Type.String(), Type.Null()]),
});
const RoleSchema = Type.Object({
  name: Type.String(),
  description: Type.String(),
  actions: Type.Array(Type.String()),
  builtin: Type.Boolean(),
});

const present = (a: Assignment) => ({
  id: a.id,
  env: a.env,
  principal_type: a.principalType,
  principal_id: a.principalId,
  role: a.role,
  scope: formatScope(a.scope),
  allow_management: a.allowManagement,
  reason: a.reason,
  created_by: a.createdBy,
  created_at: iso(a.createdAt)!,
  expires_at: iso(a.expiresAt),
});

/** Roles, assignments and access queries. The guardrails live in AccessService, not here. */
export const accessRoutes: FastifyPluginAsyncTypebox<{ services: Services }> = async (app, { services }) => {
  const { pipeline, access } = services;

  app.get(
    '/v1/roles',
    {
      schema: {
        tags,
        summary: 'List roles',
        response: { 200: Type.Object({ items: Type.Array(RoleSchema) }), ...err },
      },
    },
    async (req) => ({
      items: await pipeline.run(op(req, { action: 'roles/read', resource: '' }), () => access.listRoles()),
    }),
  );

  app.get(
    '/v1/roles/:name',
    {
      schema: {
        tags,
        summary: 'Show a role',
        params: Type.Object({ name: Type.String({ maxLength: 64 }) }),
        response: { 200: RoleSchema, ...err },
      },
    },
    async (req) =>
      pipeline.run(op(req, { action: 'roles/read', resource: '' }), () => access.getRole(req.params.name)),
  );

  app.post(
    '/v1/roles',
    {
      schema: {
        tags,
        summary: 'Create a custom role from the action list',
        body: Type.Object(
          {
            name: Type.String({ maxLength: 64 }),
            actions: Type.Array(Type.String({ maxLength: 64 }), { maxItems: 32 }),
            description: Type.Optional(Type.String({ maxLength: 256 })),
          },
          { additionalProperties: false },
        ),
        response: { 200: RoleSchema, ...err },
      },
    },
    async (req) =>
      pipeline.run(op(req, { action: 'roles/manage', resource: '', data: { ...req.body } }), () =>
        access.createRole(req.body),
      ),
  );

  app.post(
    '/v1/access/assignments',
    {
      schema: {
        tags,
        summary: 'Assign a role to an identity or group at a scope inside one environment',
        body: Type.Object(
          {
            principal: Type.String({
              maxLength: 300,
              description: 'identity id, ENV/NAME, or group:ENV/NAME',
            }),
            role: Type.String({ maxLength: 64 }),
            scope: Type.String({
              maxLength: 300,
              description: 'ENV, ENV/secrets/PREFIX or ENV/engines/ENGINE[/ROLE]',
            }),
            reason: Type.String({ maxLength: 512 }),
            expires: Type.Optional(
              Type.Union([Type.String({ maxLength: 32 }), Type.Integer({ minimum: 0 })]),
            ),
            allow_management: Type.Optional(Type.Boolean()),
          },
          { additionalProperties: false },
        ),
        response: { 200: AssignmentSchema, ...err },
      },
    },
    async (req) => {
      const b = req.body;
      // The scope is the resource: `access/assign` must be held there (checked again, with the role's actions, by the service).
      const resource = formatScope(parseScope(b.scope));
      const a = await pipeline.run(op(req, { action: 'access/assign', resource, data: { ...b } }), (ctx) =>
        access.assign(ctx.caller!, {
          principal: b.principal,
          role: b.role,
          scope: b.scope,
          reason: b.reason,
          expiresInSeconds: b.expires === undefined ? undefined : parseDuration(b.expires, 'expiry'),
          allowManagement: b.allow_management,
        }),
      );
      return present(a);
    },
  );

  app.delete(
    '/v1/access/assignments/:id',
    {
      schema: {
        tags,
        summary: 'Revoke an assignment',
        params: Type.Object({ id: Type.String({ maxLength: 64 }) }),
        response: { 200: AssignmentSchema, ...err },
      },
    },
    async (req) => {
      // Authorized by the service against the assignment's own scope (unknown before it is read).
      const a = await pipeline.run(
        op(req, {
          action: 'access/revoke',
          resource: '',
          data: { id: req.params.id },
          authorizeInService: true,
        }),
        (ctx) => access.revoke(ctx.caller!, req.params.id),
      );
      return present(a);
    },
  );

  app.get(
    '/v1/access/assignments',
    {
      schema: {
        tags,
        summary: 'List assignments in an environment',
        querystring: Type.Object(
          { env: Type.String({ maxLength: 64 }), principal: Type.Optional(Type.String({ maxLength: 300 })) },
          { additionalProperties: false },
        ),
        response: { 200: Type.Object({ items: Type.Array(AssignmentSchema) }), ...err },
      },
    },
    async (req) => {
      const { env, principal } = req.query;
      const items = await pipeline.run(
        op(req, { action: 'access/assign', resource: env, data: { ...req.query } }),
        async () => {
          const principalId = principal ? (await services.identities.resolve(principal)).id : undefined;
          return access.listAssignments({ env, principalId });
        },
      );
      return { items: items.map(present) };
    },
  );

  app.post(
    '/v1/access/check',
    {
      schema: {
        tags,
        summary: 'Would IDENTITY be allowed ACTION on RESOURCE? Names the granting assignment',
        body: Type.Object(
          {
            identity: Type.String({ maxLength: 300 }),
            action: Type.String({ maxLength: 64 }),
            resource: Type.String({ maxLength: 600 }),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({
            allowed: Type.Boolean(),
            assignment: Type.Union([Type.String(), Type.Null()]),
            reason: Type.Union([Type.String(), Type.Null()]),
            identity: Type.String(),
          }),
          ...err,
        },
      },
    },
    async (req) => {
      const env = req.body.resource.split('/')[0];
      const d = await pipeline.run(
        op(req, { action: 'audit/read', resource: env, data: { ...req.body } }),
        () => access.check(req.body.identity, req.body.action, req.body.resource),
      );
      return { allowed: d.allowed, assignment: d.source, reason: d.reason ?? null, identity: d.identity };
    },
  );

  app.get(
    '/v1/access/effective',
    {
      schema: {
        tags,
        summary: 'Effective permissions of an identity, with the assignment behind each',
        querystring: Type.Object(
          { identity: Type.String({ maxLength: 300 }) },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({
            identity: Type.String(),
            items: Type.Array(
              Type.Object({
                action: Type.String(),
                scope: Type.String(),
                assignment: Type.String(),
                via: Type.String(),
                expires_at: Type.Union([Type.String(), Type.Null()]),
              }),
            ),
          }),
          ...err,
        },
      },
    },
    async (req) => {
      const identity = await services.identities.resolve(req.query.identity).catch(() => null);
      const env = identity?.env ?? req.query.identity.split('/')[0];
      const items = await pipeline.run(
        op(req, { action: 'audit/read', resource: env, data: { ...req.query } }),
        () => access.effective(req.query.identity),
      );
      return {
        identity: identity?.id ?? req.query.identity,
        items: items.map((p) => ({ ...p, expires_at: iso(p.expiresAt) })),
      };
    },
  );
};
