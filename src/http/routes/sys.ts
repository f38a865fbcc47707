import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { nativeOperation as op } from '../operation.js';
import * as P from '../present.js';
import * as S from '../schemas.js';
import type { Services } from '../services.js';

const tags = ['sys'];
const err = { '4xx': { $ref: 'Error#' }, '5xx': { $ref: 'Error#' } };

export const sysRoutes: FastifyPluginAsyncTypebox<{ services: Services }> = async (app, { services }) => {
  const { pipeline, operator, storage, metrics, version } = services;

  // Health and seal status are unauthenticated and not audited: probes poll them every few seconds.
  app.get(
    '/v1/sys/health',
    {
      schema: {
        tags,
        summary: 'Health: 200 unsealed, 503 sealed, 501 not initialized',
        response: {
          '2xx': Type.Object({
            initialized: Type.Boolean(),
            sealed: Type.Boolean(),
            version: Type.String(),
            storage: Type.String(),
            unseal_mode: Type.Union([Type.String(), Type.Null()]),
            server_time: Type.String(),
          }),
          '5xx': Type.Object({
            initialized: Type.Boolean(),
            sealed: Type.Boolean(),
            version: Type.String(),
            storage: Type.String(),
            unseal_mode: Type.Union([Type.String(), Type.Null()]),
            server_time: Type.String(),
          }),
        },
      },
    },
    async (_req, reply) => {
      const s = operator.status();
      const body = {
        initialized: s.initialized,
        sealed: s.sealed,
        version,
        storage: storage.kind,
        unseal_mode: s.mode,
        server_time: new Date().toISOString(),
      };
      return reply.status(!s.initialized ? 501 : s.sealed ? 503 : 200).send(body);
    },
  );

  app.get(
    '/v1/sys/seal-status',
    { schema: { tags, summary: 'Seal status', response: { 200: S.SealStatusSchema } } },
    async () => P.sealStatus(operator.status()),
  );

  app.post(
    '/v1/sys/init',
    {
      schema: {
        tags,
        summary: 'Initialize (shamir mode): returns the unseal shares and root token once',
        body: Type.Object(
          {
            key_shares: Type.Integer({ minimum: 2, maximum: 255 }),
            key_threshold: Type.Integer({ minimum: 2, maximum: 255 }),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({
            root_token: Type.String(),
            keys: Type.Array(Type.String()),
            key_shares: Type.Integer(),
            key_threshold: Type.Integer(),
          }),
          ...err,
        },
      },
    },
    async (req) => {
      const { key_shares, key_threshold } = req.body;
      const res = await pipeline.run(
        op(req, {
          action: 'sys/init',
          resource: '',
          anonymous: true,
          whileSealed: true,
          data: { key_shares, key_threshold },
        }),
        async (ctx) => {
          const r = await operator.init(key_shares, key_threshold);
          ctx.auditResponse({ sensitive: { root_token: r.rootToken, keys: r.keys } });
          return r;
        },
      );
      return {
        root_token: res.rootToken,
        keys: res.keys,
        key_shares: res.shares,
        key_threshold: res.threshold,
      };
    },
  );

  app.post(
    '/v1/sys/unseal',
    {
      schema: {
        tags,
        summary: 'Submit one unseal share (or reset progress)',
        body: Type.Object(
          { key: Type.Optional(Type.String({ maxLength: 1024 })), reset: Type.Optional(Type.Boolean()) },
          { additionalProperties: false },
        ),
        response: { 200: S.SealStatusSchema, ...err },
      },
    },
    async (req) => {
      const { key, reset } = req.body;
      const status = await pipeline.run(
        op(req, {
          action: 'sys/unseal',
          resource: '',
          anonymous: true,
          whileSealed: true,
          data: { reset },
          sensitive: { key },
        }),
        async () => {
          if (reset || !key) {
            operator.resetUnsealProgress();
            return operator.status();
          }
          return operator.submitShare(key);
        },
      );
      metrics.sealed.set(status.sealed ? 1 : 0);
      return P.sealStatus(status);
    },
  );

  app.post(
    '/v1/sys/seal',
    {
      schema: {
        tags,
        summary: 'Seal: drop every key from memory',
        response: { 200: S.SealStatusSchema, ...err },
      },
    },
    async (req) => {
      await pipeline.run(op(req, { action: 'sys/seal', resource: '' }), async () => operator.seal());
      metrics.sealed.set(1);
      return P.sealStatus(operator.status());
    },
  );

  app.post(
    '/v1/sys/rotate',
    {
      schema: {
        tags,
        summary: 'Add a new data key; old data stays readable',
        response: { 200: Type.Object({ key_term: Type.Integer() }), ...err },
      },
    },
    async (req) => ({
      key_term: await pipeline.run(op(req, { action: 'sys/rotate', resource: '' }), () => operator.rotate()),
    }),
  );

  const RootGenStatus = Type.Object({
    started: Type.Boolean(),
    nonce: Type.Union([Type.String(), Type.Null()]),
    progress: Type.Integer(),
    required: Type.Integer(),
    root_token: Type.Optional(Type.String()),
  });
  // Like unseal, root generation is authorized by the unseal quorum, not by a token.
  app.post(
    '/v1/sys/generate-root/attempt',
    {
      schema: {
        tags,
        summary: 'Start generating a root token (needs the unseal quorum)',
        response: { 200: RootGenStatus, ...err },
      },
    },
    async (req) =>
      pipeline.run(op(req, { action: 'sys/generate-root', resource: '', anonymous: true }), async () =>
        operator.startRootGeneration(),
      ),
  );
  app.get(
    '/v1/sys/generate-root/attempt',
    { schema: { tags, summary: 'Root generation progress', response: { 200: RootGenStatus } } },
    async () => operator.rootGenerationStatus(),
  );
  app.delete(
    '/v1/sys/generate-root/attempt',
    { schema: { tags, summary: 'Cancel root generation', response: { 200: RootGenStatus, ...err } } },
    async (req) =>
      pipeline.run(op(req, { action: 'sys/generate-root', resource: '', anonymous: true }), async () => {
        operator.cancelRootGeneration();
        return operator.rootGenerationStatus();
      }),
  );
  app.post(
    '/v1/sys/generate-root/update',
    {
      schema: {
        tags,
        summary: 'Submit one unseal share towards a new root token',
        body: Type.Object(
          { nonce: Type.String({ maxLength: 64 }), key: Type.String({ maxLength: 1024 }) },
          { additionalProperties: false },
        ),
        response: { 200: RootGenStatus, ...err },
      },
    },
    async (req) => {
      const { nonce, key } = req.body;
      const res = await pipeline.run(
        op(req, {
          action: 'sys/generate-root',
          resource: '',
          anonymous: true,
          data: { nonce },
          sensitive: { key },
        }),
        async (ctx) => {
          const r = await operator.submitRootGenerationKey(nonce, key);
          if (r.rootToken)
            ctx.auditResponse({ data: { complete: true }, sensitive: { root_token: r.rootToken } });
          return r;
        },
      );
      const { rootToken, ...status } = res;
      return rootToken ? { ...status, root_token: rootToken } : status;
    },
  );

  app.get('/metrics', { schema: { hide: true } }, async (_req, reply) => {
    metrics.sealed.set(operator.status().sealed ? 1 : 0);
    return reply.header('content-type', metrics.registry.contentType).send(await metrics.registry.metrics());
  });
};
