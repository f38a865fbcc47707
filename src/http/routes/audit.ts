import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { nativeOperation as op } from '../operation.js';
import type { Services } from '../services.js';

const err = { '4xx': { $ref: 'Error#' } };

/**
 * `POST /v1/audit/notices`: a job records something about itself in the audit trail — `custody run`
 * warns here (as well as on stderr) before one of its credentials expires, so the trail shows that a
 * job was told. Any valid token may do it (a self action); the entry carries the caller's identity
 * like every other. The text is recorded as sent: it is for notices, never for secret values.
 */
export const auditRoutes: FastifyPluginAsyncTypebox<{ services: Services }> = async (app, { services }) => {
  const { pipeline } = services;
  app.post(
    '/v1/audit/notices',
    {
      schema: {
        tags: ['audit'],
        summary: 'Record a notice from the calling job in the audit trail',
        body: Type.Object(
          {
            code: Type.String({ pattern: '^[A-Z][A-Za-z0-9]{0,63}$', description: 'e.g. LeaseExpiresSoon' }),
            message: Type.String({ minLength: 1, maxLength: 1000 }),
            subject: Type.Optional(
              Type.String({ maxLength: 200, description: 'what it is about, e.g. a lease id' }),
            ),
          },
          { additionalProperties: false },
        ),
        response: { 200: Type.Object({ recorded: Type.Boolean() }), ...err },
      },
    },
    async (req) => {
      const { code, message, subject } = req.body;
      await pipeline.run(
        op(req, {
          action: 'audit/notice-self',
          resource: '',
          data: { code, message, ...(subject !== undefined ? { subject } : {}) },
        }),
        async () => undefined,
      );
      return { recorded: true };
    },
  );
};
