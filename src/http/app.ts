import { randomUUID } from 'node:crypto';
import swagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyInstance, type FastifyServerOptions, LogController } from 'fastify';
import type { Logger } from 'pino';
import { azureKeyVaultRoutes } from '../compat/azure/routes.js';
import { VAULT_PREFIX, vaultDoor } from '../compat/vault/door.js';
import { registerErrorHandling } from './error-handler.js';
import { accessRoutes } from './routes/access.js';
import { auditRoutes } from './routes/audit.js';
import { authRoutes } from './routes/auth.js';
import { engineRoutes } from './routes/engines.js';
import { environmentRoutes } from './routes/environments.js';
import { identityRoutes } from './routes/identities.js';
import { leaseRoutes } from './routes/leases.js';
import { secretRoutes } from './routes/secrets.js';
import { sysRoutes } from './routes/sys.js';
import { tokenRoutes } from './routes/tokens.js';
import { ErrorSchema } from './schemas.js';
import type { Services } from './services.js';

export const BODY_LIMIT = 1024 * 1024;

export interface AppOptions {
  services: Services;
  logger: Logger;
  https?: { key: string; cert: string } | null;
}

/** Builds the Fastify app: native /v1 routes, error mapping, OpenAPI. Listening is the caller's job. */
export async function buildApp({ services, logger, https }: AppOptions): Promise<FastifyInstance> {
  const opts: FastifyServerOptions = {
    loggerInstance: logger,
    bodyLimit: BODY_LIMIT,
    genReqId: () => randomUUID(),
    requestIdHeader: false,
    // Our own onResponse line replaces Fastify's request logs (which would log full URLs twice).
    logController: new LogController({ disableRequestLogging: true }),
    // No type coercion: a number where a string belongs is a client bug, not something to guess about.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
    // Bound slow or stuck clients so they cannot tie up the broker.
    requestTimeout: 60_000,
    connectionTimeout: 120_000,
  };
  // The https variant has the same request/reply types at runtime; Fastify's typings just split them.
  const app = Fastify(
    https ? ({ ...opts, https } as FastifyServerOptions) : opts,
  ).withTypeProvider<TypeBoxTypeProvider>();
  // JSON only: a text/plain body is refused with 415 instead of reaching a route as a string.
  app.removeContentTypeParser('text/plain');
  app.addSchema(ErrorSchema);
  registerErrorHandling(app);
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'Custody broker API',
        version: services.version,
        description: 'Native Custody API (v1).',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  });
  // A POST with no body validates as an empty object, so a missing field is named in the error.
  app.addHook('preValidation', async (req) => {
    if (req.body === undefined || req.body === null) req.body = {};
  });
  app.addHook('onResponse', async (req, reply) => {
    // One log line per request: method, route, status, time. Never headers, bodies or query values.
    req.log.info(
      {
        method: req.method,
        route: req.routeOptions.url,
        status: reply.statusCode,
        ms: Math.round(reply.elapsedTime),
      },
      'request',
    );
  });
  await app.register(sysRoutes, { services });
  await app.register(tokenRoutes, { services });
  await app.register(environmentRoutes, { services });
  await app.register(secretRoutes, { services });
  await app.register(authRoutes, { services });
  await app.register(accessRoutes, { services });
  await app.register(identityRoutes, { services });
  await app.register(engineRoutes, { services });
  await app.register(leaseRoutes, { services });
  await app.register(auditRoutes, { services });
  await app.register(vaultDoor, { services, prefix: VAULT_PREFIX });
  await app.register(azureKeyVaultRoutes, { services });
  app.get('/v1/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  return app;
}
