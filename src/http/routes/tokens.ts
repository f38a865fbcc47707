import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { TokenInfo } from '../../auth/token-service.js';
import { parseDuration } from '../../duration.js';
import { badRequest } from '../../errors.js';
import { nativeOperation as op } from '../operation.js';
import * as P from '../present.js';
import * as S from '../schemas.js';
import type { Services } from '../services.js';

const tags = ['tokens'];
const err = { '4xx': { $ref: 'Error#' } };

export const tokenRoutes: FastifyPluginAsyncTypebox<{ services: Services }> = async (app, { services }) => {
  const { pipeline, tokens } = services;

  /** Accepts either an accessor or the token itself; the token never reaches the audit log in clear. */
  async function accessorOf(ref: { accessor?: string; token?: string }): Promise<string> {
    if (ref.accessor) return ref.accessor;
    if (ref.token) {
      const info = await tokens.resolve(ref.token);
      if (!info)
        throw badRequest(
          'TokenNotFound',
          'That token is unknown, expired or revoked',
          'Check the token, or use its accessor.',
        );
      return info.accessor;
    }
    throw badRequest(
      'MissingTokenRef',
      "Give the token's accessor or the token",
      'Body: {"accessor": "acc_…"}.',
    );
  }

  app.post(
    '/v1/auth/token/create',
    {
      schema: {
        tags,
        summary: 'Create a child token',
        body: Type.Object(
          {
            policies: Type.Optional(
              Type.Array(Type.String({ pattern: '^[a-z][a-z0-9_-]{0,63}$' }), { maxItems: 32 }),
            ),
            ttl: Type.Optional(S.Duration),
            max_ttl: Type.Optional(S.Duration),
            renewable: Type.Optional(Type.Boolean()),
            display_name: Type.Optional(Type.String({ maxLength: 128 })),
            meta: Type.Optional(
              Type.Record(Type.String({ maxLength: 128 }), Type.String({ maxLength: 512 }), {
                maxProperties: 32,
              }),
            ),
          },
          { additionalProperties: false },
        ),
        response: { 200: Type.Intersect([S.TokenInfoSchema, Type.Object({ token: Type.String() })]), ...err },
      },
    },
    async (req) => {
      const b = req.body ?? {};
      const created = await pipeline.run(
        op(req, {
          action: 'token/create',
          resource: '',
          data: { policies: b.policies, ttl: b.ttl, max_ttl: b.max_ttl, display_name: b.display_name },
        }),
        async (ctx) => {
          const res = await tokens.create({
            policies: b.policies ?? [],
            ttlSeconds: b.ttl === undefined ? undefined : parseDuration(b.ttl, 'ttl'),
            maxTtlSeconds: b.max_ttl === undefined ? undefined : parseDuration(b.max_ttl, 'max ttl'),
            renewable: b.renewable,
            displayName: b.display_name,
            meta: b.meta,
            parent: ctx.caller!,
          });
          ctx.auditResponse({ data: { accessor: res.info.accessor }, sensitive: { token: res.token } });
          return res;
        },
      );
      return { ...P.tokenInfo(created.info), token: created.token };
    },
  );

  app.get(
    '/v1/auth/token/lookup-self',
    { schema: { tags, summary: 'Look up the calling token', response: { 200: S.TokenInfoSchema, ...err } } },
    async (req) =>
      P.tokenInfo(
        await pipeline.run(
          op(req, { action: 'token/lookup-self', resource: '' }),
          async (ctx) => ctx.caller!,
        ),
      ),
  );

  app.post(
    '/v1/auth/token/renew-self',
    {
      schema: {
        tags,
        summary: 'Renew the calling token',
        body: Type.Optional(Type.Object({ increment: Type.Optional(S.Duration) })),
        response: { 200: S.TokenInfoSchema, ...err },
      },
    },
    async (req) => {
      const inc = req.body?.increment;
      return P.tokenInfo(
        await pipeline.run(op(req, { action: 'token/renew-self', resource: '' }), (ctx) =>
          tokens.renew(ctx.caller!.accessor, inc === undefined ? undefined : parseDuration(inc, 'increment')),
        ),
      );
    },
  );

  app.post(
    '/v1/auth/token/revoke-self',
    {
      schema: {
        tags,
        summary: 'Revoke the calling token and its children',
        response: { 200: Type.Object({ revoked: Type.Integer() }), ...err },
      },
    },
    async (req) => ({
      revoked: await pipeline.run(op(req, { action: 'token/revoke-self', resource: '' }), (ctx) =>
        tokens.revoke(ctx.caller!.accessor),
      ),
    }),
  );

  const byRef =
    (
      action: string,
      run: (accessor: string, body: { increment?: string | number }) => Promise<TokenInfo | number>,
    ) =>
    async (
      req: { body: { accessor?: string; token?: string; increment?: string | number } } & Parameters<
        typeof op
      >[0],
    ) => {
      const body = req.body ?? {};
      return pipeline.run(
        op(req, {
          action,
          resource: body.accessor ?? '',
          data: { accessor: body.accessor },
          sensitive: { token: body.token },
        }),
        async () => run(await accessorOf(body), body),
      );
    };

  app.post(
    '/v1/auth/token/lookup',
    {
      schema: {
        tags,
        summary: 'Look up a token by accessor (or by the token)',
        body: S.TokenRef,
        response: { 200: S.TokenInfoSchema, ...err },
      },
    },
    async (req) =>
      P.tokenInfo((await byRef('token/lookup', (a) => tokens.lookupAccessor(a))(req)) as TokenInfo),
  );

  app.post(
    '/v1/auth/token/renew',
    {
      schema: {
        tags,
        summary: 'Renew a token by accessor (or by the token)',
        body: Type.Object(
          { ...S.TokenRef.properties, increment: Type.Optional(S.Duration) },
          { additionalProperties: false },
        ),
        response: { 200: S.TokenInfoSchema, ...err },
      },
    },
    async (req) =>
      P.tokenInfo(
        (await byRef('token/renew', (a, b) =>
          tokens.renew(a, b.increment === undefined ? undefined : parseDuration(b.increment, 'increment')),
        )(req)) as TokenInfo,
      ),
  );

  app.post(
    '/v1/auth/token/revoke',
    {
      schema: {
        tags,
        summary: 'Revoke a token and its children',
        body: S.TokenRef,
        response: { 200: Type.Object({ revoked: Type.Integer() }), ...err },
      },
    },
    async (req) => ({ revoked: (await byRef('token/revoke', (a) => tokens.revoke(a))(req)) as number }),
  );
};
