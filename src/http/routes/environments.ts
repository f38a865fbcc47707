import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { nativeOperation as op } from '../operation.js';
import * as P from '../present.js';
import * as S from '../schemas.js';
import type { Services } from '../services.js';

const tags = ['environments'];
const err = { '4xx': { $ref: 'Error#' } };

export const environmentRoutes: FastifyPluginAsyncTypebox<{ services: Services }> = async (
  app,
  { services },
) => {
  const { pipeline, kv } = services;

  app.post(
    '/v1/envs',
    {
      schema: {
        tags,
        summary: 'Create an environment',
        body: Type.Object(
          {
            name: Type.String({ maxLength: 64 }),
            retention_days: Type.Optional(Type.Integer({ minimum: 7, maximum: 90 })),
            purge_protection: Type.Optional(Type.Boolean()),
          },
          { additionalProperties: false },
        ),
        response: { 200: S.EnvironmentSchema, ...err },
      },
    },
    async (req) => {
      const b = req.body;
      const env = await pipeline.run(
        op(req, { action: 'env/manage', resource: b.name, data: { ...b } }),
        () =>
          kv.createEnvironment({
            name: b.name,
            retentionDays: b.retention_days,
            purgeProtection: b.purge_protection,
          }),
      );
      return P.environment(env);
    },
  );

  app.get(
    '/v1/envs',
    {
      schema: {
        tags,
        summary: 'List environments',
        response: { 200: Type.Object({ items: Type.Array(S.EnvironmentSchema) }), ...err },
      },
    },
    async (req) => ({
      items: (
        await pipeline.run(op(req, { action: 'env/read', resource: '' }), () => kv.listEnvironments())
      ).map(P.environment),
    }),
  );

  app.get(
    '/v1/envs/:env',
    {
      schema: {
        tags,
        summary: 'Show an environment',
        params: S.EnvPath,
        response: { 200: S.EnvironmentSchema, ...err },
      },
    },
    async (req) =>
      P.environment(
        await pipeline.run(op(req, { action: 'env/read', resource: req.params.env }), () =>
          kv.getEnvironment(req.params.env),
        ),
      ),
  );

  app.patch(
    '/v1/envs/:env',
    {
      schema: {
        tags,
        summary: 'Change an environment (turn purge protection on; it cannot be turned off)',
        params: S.EnvPath,
        body: Type.Object(
          { purge_protection: Type.Optional(Type.Boolean()) },
          { additionalProperties: false },
        ),
        response: { 200: S.EnvironmentSchema, ...err },
      },
    },
    async (req) =>
      P.environment(
        await pipeline.run(
          op(req, { action: 'env/manage', resource: req.params.env, data: { ...req.body } }),
          () => kv.updateEnvironment(req.params.env, { purgeProtection: req.body.purge_protection }),
        ),
      ),
  );
};
