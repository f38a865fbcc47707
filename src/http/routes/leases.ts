import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { iso, parseDuration } from '../../duration.js';
import { badRequest } from '../../errors.js';
import type { Lease } from '../../leases/lease-service.js';
import { nativeOperation as op } from '../operation.js';
import type { Services } from '../services.js';

const tags = ['leases'];
const err = { '4xx': { $ref: 'Error#' }, '5xx': { $ref: 'Error#' } };
const Name = Type.String({ maxLength: 64 });
const Duration = Type.Union([Type.String({ maxLength: 32 }), Type.Integer({ minimum: 0 })]);
const LeaseId = Type.String({ maxLength: 256 });
const STATES = ['creating', 'active', 'revoking', 'revoked', 'revoke-failed'] as const;

const LeaseSchema = Type.Object({
  lease_id: Type.String(),
  env: Type.String(),
  engine: Type.String(),
  role: Type.String(),
  identity_id: Type.Union([Type.String(), Type.Null()]),
  username: Type.String(),
  issued_at: Type.String(),
  expires_at: Type.String(),
  max_expires_at: Type.String(),
  last_renewed_at: Type.Union([Type.String(), Type.Null()]),
  renewable: Type.Boolean(),
  revocable: Type.Boolean(),
  ttl: Type.Integer(),
  state: Type.String(),
  attempts: Type.Integer(),
  last_error: Type.Union([Type.String(), Type.Null()]),
  next_attempt_at: Type.Union([Type.String(), Type.Null()]),
  revoked_at: Type.Union([Type.String(), Type.Null()]),
});

export const presentLease = (l: Lease) => ({
  lease_id: l.id,
  env: l.env,
  engine: l.engine,
  role: l.role,
  identity_id: l.identityId,
  username: l.username,
  issued_at: iso(l.issuedAt)!,
  expires_at: iso(l.expiresAt)!,
  max_expires_at: iso(l.maxExpiresAt)!,
  last_renewed_at: iso(l.lastRenewedAt),
  renewable: l.renewable,
  revocable: l.revocable,
  ttl: l.state === 'active' ? Math.max(0, Math.round((l.expiresAt - Date.now()) / 1000)) : 0,
  state: l.state,
  attempts: l.attempts,
  last_error: l.lastError,
  next_attempt_at: l.state === 'revoke-failed' ? iso(l.nextAttemptAt) : null,
  revoked_at: iso(l.revokedAt),
});

/** Issuing dynamic credentials and managing their leases. */
export const leaseRoutes: FastifyPluginAsyncTypebox<{ services: Services }> = async (app, { services }) => {
  const { pipeline, leases, identities } = services;

  app.post(
    '/v1/creds/:env/:engine/:role',
    {
      schema: {
        tags,
        summary: 'Issue dynamic credentials (a new lease)',
        params: Type.Object({ env: Name, engine: Name, role: Name }),
        body: Type.Optional(Type.Object({ ttl: Type.Optional(Duration) }, { additionalProperties: false })),
        response: {
          200: Type.Object({
            lease_id: Type.String(),
            username: Type.String(),
            password: Type.String(),
            expires_at: Type.String(),
            max_expires_at: Type.String(),
            lease_duration: Type.Integer(),
            renewable: Type.Boolean(),
            revocable: Type.Boolean(),
            data: Type.Record(Type.String(), Type.String()),
          }),
          ...err,
        },
      },
    },
    async (req) => {
      const { env, engine, role } = req.params;
      const ttl = req.body?.ttl;
      const issued = await pipeline.run(
        op(req, { action: 'leases/issue', resource: `${env}/${engine}/${role}`, data: { ttl } }),
        async (ctx) => {
          const caller = ctx.caller!;
          const identityName = caller.identityId
            ? (await identities.get(caller.identityId)).name
            : caller.displayName;
          const res = await leases.issue(
            { ...caller, identityName },
            env,
            engine,
            role,
            ttl === undefined ? undefined : parseDuration(ttl, 'ttl'),
          );
          ctx.auditResponse({
            data: { lease_id: res.lease.id, username: res.username },
            sensitive: { password: res.password },
          });
          return res;
        },
      );
      const l = issued.lease;
      return {
        lease_id: l.id,
        username: issued.username,
        password: issued.password,
        expires_at: iso(l.expiresAt)!,
        max_expires_at: iso(l.maxExpiresAt)!,
        lease_duration: Math.round((l.expiresAt - Date.now()) / 1000),
        renewable: l.renewable,
        revocable: l.revocable,
        data: issued.data,
      };
    },
  );

  app.post(
    '/v1/leases/lookup',
    {
      schema: {
        tags,
        summary: 'Look up a lease',
        body: Type.Object({ lease_id: LeaseId }, { additionalProperties: false }),
        response: { 200: LeaseSchema, ...err },
      },
    },
    async (req) =>
      presentLease(
        await pipeline.run(
          op(req, { action: 'leases/lookup', resource: req.body.lease_id, authorizeInService: true }),
          (ctx) => leases.lookup(ctx.caller!, req.body.lease_id),
        ),
      ),
  );

  app.post(
    '/v1/leases/renew',
    {
      schema: {
        tags,
        summary: "Renew a lease (capped at the role's max TTL; `capped` says when the cap cut it)",
        body: Type.Object(
          { lease_id: LeaseId, increment: Type.Optional(Type.Union([Duration, Type.Null()])) },
          { additionalProperties: false },
        ),
        response: { 200: Type.Intersect([LeaseSchema, Type.Object({ capped: Type.Boolean() })]), ...err },
      },
    },
    async (req) => {
      const { lease_id, increment } = req.body;
      const res = await pipeline.run(
        op(req, {
          action: 'leases/renew',
          resource: lease_id,
          data: { increment },
          authorizeInService: true,
        }),
        (ctx) =>
          leases.renew(
            ctx.caller!,
            lease_id,
            increment === undefined || increment === null ? undefined : parseDuration(increment, 'increment'),
          ),
      );
      return { ...presentLease(res.lease), capped: res.capped };
    },
  );

  app.post(
    '/v1/leases/revoke',
    {
      schema: {
        tags,
        summary: 'Revoke a lease now (force: mark revoked even if the backend cannot be reached)',
        body: Type.Object(
          { lease_id: LeaseId, force: Type.Optional(Type.Boolean()) },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Intersect([
            LeaseSchema,
            Type.Object({ left_behind: Type.Union([Type.String(), Type.Null()]) }),
          ]),
          ...err,
        },
      },
    },
    async (req) => {
      const { lease_id, force } = req.body;
      const res = await pipeline.run(
        op(req, { action: 'leases/revoke', resource: lease_id, data: { force }, authorizeInService: true }),
        (ctx) => leases.revoke(ctx.caller!, lease_id, { force }),
      );
      return { ...presentLease(res.lease), left_behind: res.leftBehind };
    },
  );

  app.post(
    '/v1/leases/revoke-prefix',
    {
      schema: {
        tags,
        summary: 'Revoke every lease under a prefix (ENV/ENGINE[/ROLE]/) or of an identity',
        body: Type.Object(
          {
            prefix: Type.Optional(Type.String({ maxLength: 256 })),
            identity: Type.Optional(Type.String({ maxLength: 300 })),
            force: Type.Optional(Type.Boolean()),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({
            leases: Type.Array(Type.String()),
            states: Type.Record(Type.String(), Type.Integer()),
            left_behind: Type.Array(Type.String()),
          }),
          ...err,
        },
      },
    },
    async (req) => {
      const { prefix, identity, force } = req.body;
      const who = identity ? await identities.resolve(identity).catch(() => null) : null;
      if (identity && !who)
        throw badRequest('IdentityNotFound', `No identity ${identity}`, 'See `custody identity list ENV`.');
      const resource = prefix ? prefix.replace(/\/+$/, '') : (who?.env ?? '');
      const res = await pipeline.run(
        op(req, { action: 'leases/revoke', resource, data: { prefix, identity, force } }),
        () => leases.revokeMany({ prefix, identityId: who?.id }, { force }),
      );
      const states: Record<string, number> = {};
      for (const l of await leases.list({ prefix, identityId: who?.id, limit: 10_000 })) {
        if (res.leases.includes(l.id)) states[l.state] = (states[l.state] ?? 0) + 1;
      }
      return { leases: res.leases, states, left_behind: res.leftBehind };
    },
  );

  app.get(
    '/v1/leases',
    {
      schema: {
        tags,
        summary: 'List leases (by prefix ENV[/ENGINE[/ROLE]], state, identity)',
        querystring: Type.Object(
          {
            prefix: Type.String({ maxLength: 256 }),
            state: Type.Optional(Type.Union(STATES.map((s) => Type.Literal(s)))),
            identity: Type.Optional(Type.String({ maxLength: 300 })),
            limit: Type.Optional(Type.String({ pattern: '^[0-9]{1,5}$' })),
          },
          { additionalProperties: false },
        ),
        response: { 200: Type.Object({ items: Type.Array(LeaseSchema) }), ...err },
      },
    },
    async (req) => {
      const { prefix, state, identity, limit } = req.query;
      const items = await pipeline.run(
        op(req, { action: 'leases/read', resource: prefix.replace(/\/+$/, ''), data: { ...req.query } }),
        async () => {
          const identityId = identity ? (await identities.resolve(identity)).id : undefined;
          return leases.list({
            prefix,
            state,
            identityId,
            limit: limit === undefined ? undefined : Number(limit),
          });
        },
      );
      return { items: items.map(presentLease) };
    },
  );
};
