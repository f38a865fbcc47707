import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { parseTime } from '../../duration.js';
import { nativeOperation as op } from '../operation.js';
import * as P from '../present.js';
import * as S from '../schemas.js';
import type { Services } from '../services.js';

const tags = ['secrets'];
const err = { '4xx': { $ref: 'Error#' } };
const ref = (env: string, name: string) => `${env}/${name}`;
/** A prefixed listing is authorized at the prefix, so a prefix-scoped assignment can list its own subtree. */
const listResource = (env: string, prefix?: string) => {
  const p = prefix?.replace(/\/+$/, '');
  return p ? `${env}/${p}` : env;
};

/** Versioned secrets. Adapter only: validation by schema, decisions in the pipeline and KvService. */
export const secretRoutes: FastifyPluginAsyncTypebox<{ services: Services }> = async (app, { services }) => {
  const { pipeline, kv } = services;

  app.put(
    '/v1/secrets/:env/*',
    {
      schema: {
        tags,
        summary: 'Set a secret (creates a new version)',
        params: S.SecretPath,
        body: S.SetSecretBody,
        response: { 200: S.VersionMeta, ...err },
      },
    },
    async (req) => {
      const { env, '*': name } = req.params;
      const b = req.body;
      const meta = await pipeline.run(
        op(req, {
          action: 'secrets/set',
          resource: ref(env, name),
          data: { cas: b.cas, content_type: b.content_type },
          sensitive: { value: b.value },
        }),
        () =>
          kv.setSecret(env, name, {
            value: b.value,
            contentType: b.content_type,
            tags: b.tags,
            enabled: b.enabled,
            notBefore: parseTime(b.not_before, 'not_before'),
            expiresAt: parseTime(b.expires, 'expires'),
            cas: b.cas,
          }),
      );
      return P.versionMeta(meta);
    },
  );

  app.get(
    '/v1/secrets/:env/*',
    {
      schema: {
        tags,
        summary: 'Get a secret value (latest or a given version)',
        params: S.SecretPath,
        querystring: Type.Object({ version: Type.Optional(Type.String({ maxLength: 64 })) }),
        response: { 200: S.SecretValue, ...err },
      },
    },
    async (req) => {
      const { env, '*': name } = req.params;
      const secret = await pipeline.run(
        op(req, { action: 'secrets/get', resource: ref(env, name), data: { version: req.query.version } }),
        async (ctx) => {
          const s = await kv.getSecret(env, name, req.query.version);
          ctx.auditResponse({ data: { version: s.version, seq: s.seq }, sensitive: { value: s.value } });
          return s;
        },
      );
      return P.secretValue(secret);
    },
  );

  app.patch(
    '/v1/secrets/:env/*',
    {
      schema: {
        tags,
        summary: "Update a version's attributes (no new version)",
        params: S.SecretPath,
        querystring: Type.Object({ version: Type.Optional(Type.String({ maxLength: 64 })) }),
        body: S.UpdateSecretBody,
        response: { 200: S.VersionMeta, ...err },
      },
    },
    async (req) => {
      const { env, '*': name } = req.params;
      const b = req.body;
      const meta = await pipeline.run(
        op(req, {
          action: 'secrets/update',
          resource: ref(env, name),
          data: { version: req.query.version, ...b },
        }),
        () =>
          kv.updateVersion(env, name, req.query.version, {
            enabled: b.enabled,
            contentType: b.content_type,
            tags: b.tags,
            notBefore: parseTime(b.not_before, 'not_before'),
            expiresAt: parseTime(b.expires, 'expires'),
          }),
      );
      return P.versionMeta(meta);
    },
  );

  app.delete(
    '/v1/secrets/:env/*',
    {
      schema: {
        tags,
        summary: 'Soft-delete a secret',
        params: S.SecretPath,
        response: { 200: S.DeletedSecret, ...err },
      },
    },
    async (req) => {
      const { env, '*': name } = req.params;
      return P.deletedSecret(
        await pipeline.run(op(req, { action: 'secrets/delete', resource: ref(env, name) }), () =>
          kv.deleteSecret(env, name),
        ),
      );
    },
  );

  app.get(
    '/v1/secrets/:env',
    {
      schema: {
        tags,
        summary: 'List secrets (metadata only, never values)',
        params: S.EnvPath,
        querystring: Type.Object({
          prefix: Type.Optional(Type.String({ maxLength: 255 })),
          limit: Type.Optional(Type.String({ pattern: '^[0-9]{1,4}$' })),
          cursor: Type.Optional(Type.String({ maxLength: 1024 })),
        }),
        response: {
          200: Type.Object({
            items: Type.Array(S.SecretSummary),
            next_cursor: Type.Union([Type.String(), Type.Null()]),
          }),
          ...err,
        },
      },
    },
    async (req) => {
      const { env } = req.params;
      const page = await pipeline.run(
        op(req, {
          action: 'secrets/list',
          resource: listResource(env, req.query.prefix),
          data: { ...req.query },
        }),
        () =>
          kv.listSecrets(env, {
            ...req.query,
            limit: req.query.limit === undefined ? undefined : Number(req.query.limit),
          }),
      );
      return { items: page.items.map(P.secretSummary), next_cursor: page.nextCursor };
    },
  );

  app.get(
    '/v1/secret-versions/:env/*',
    {
      schema: {
        tags,
        summary: 'List the versions of a secret (metadata only)',
        params: S.SecretPath,
        response: { 200: Type.Object({ items: Type.Array(S.VersionMeta) }), ...err },
      },
    },
    async (req) => {
      const { env, '*': name } = req.params;
      const items = await pipeline.run(op(req, { action: 'secrets/list', resource: ref(env, name) }), () =>
        kv.listVersions(env, name),
      );
      return { items: items.map(P.versionMeta) };
    },
  );

  app.get(
    '/v1/deleted-secrets/:env',
    {
      schema: {
        tags,
        summary: 'List deleted secrets awaiting purge',
        params: S.EnvPath,
        response: { 200: Type.Object({ items: Type.Array(S.DeletedSecret) }), ...err },
      },
    },
    async (req) => {
      const { env } = req.params;
      const items = await pipeline.run(op(req, { action: 'secrets/list', resource: env }), () =>
        kv.listDeleted(env),
      );
      return { items: items.map(P.deletedSecret) };
    },
  );

  app.get(
    '/v1/deleted-secrets/:env/*',
    {
      schema: {
        tags,
        summary: 'Show a deleted secret',
        params: S.SecretPath,
        response: { 200: S.DeletedSecret, ...err },
      },
    },
    async (req) => {
      const { env, '*': name } = req.params;
      return P.deletedSecret(
        await pipeline.run(op(req, { action: 'secrets/list', resource: ref(env, name) }), () =>
          kv.getDeleted(env, name),
        ),
      );
    },
  );

  app.post(
    '/v1/deleted-secrets/:env/*',
    {
      schema: {
        tags,
        summary: 'Recover a deleted secret',
        params: S.SecretPath,
        response: { 200: S.SecretSummary, ...err },
      },
    },
    async (req) => {
      const { env, '*': name } = req.params;
      return P.secretSummary(
        await pipeline.run(op(req, { action: 'secrets/recover', resource: ref(env, name) }), () =>
          kv.recoverSecret(env, name),
        ),
      );
    },
  );

  app.delete(
    '/v1/deleted-secrets/:env/*',
    {
      schema: {
        tags,
        summary: 'Purge a deleted secret for good',
        params: S.SecretPath,
        response: { 204: Type.Null(), ...err },
      },
    },
    async (req, reply) => {
      const { env, '*': name } = req.params;
      await pipeline.run(op(req, { action: 'secrets/purge', resource: ref(env, name) }), () =>
        kv.purgeSecret(env, name),
      );
      return reply.status(204).send(null);
    },
  );
};
