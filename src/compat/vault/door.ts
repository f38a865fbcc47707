import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { Services } from '../../http/services.js';
import { loginRoute, tokenRoute } from './auth.js';
import { kvRoute } from './kv.js';
import { credsRoute, leaseRoute } from './leases.js';
import { installListVerb } from './list-verb.js';
import { classify, isEnvName } from './mounts.js';
import { health, mounts, sealStatus, uiMount } from './sys.js';
import { invalid, noHandler, notFoundEmpty, toVaultError, vaultError } from './wire.js';

/** Where the Vault API is served: `VAULT_ADDR=https://HOST:PORT/vault`. */
export const VAULT_PREFIX = '/vault';
export const DEFAULT_VAULT_ENV = 'dev';

/** What every Vault-door handler gets: the services and the environment behind `secret/`. */
export interface VaultDoor {
  services: Services;
  defaultEnv: string;
}

export interface VaultDoorOptions {
  services: Services;
  /** The environment behind `secret/`, `auth/<method>` and `<engine>/creds`; default CUSTODY_VAULT_DEFAULT_ENV or `dev`. */
  defaultEnv?: string;
}

const JSON_TYPE = 'application/json';
const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH'] as const;

/** A true `?list=` (Vault takes `true` or `1`); the LIST verb arrives here as `GET ?list=true`. */
function isList(req: FastifyRequest): boolean {
  const v = (req.query as Record<string, unknown> | undefined)?.list;
  return req.method === 'GET' && (v === 'true' || v === '1');
}

/** Requests Vault would serve differently in ways Custody does not follow are refused, not guessed at. */
function refuseUnsupportedHeaders(req: FastifyRequest): void {
  const ns = req.headers['x-vault-namespace'];
  if (typeof ns === 'string' && ns !== '' && ns.replace(/\/+$/, '') !== 'root') {
    throw invalid('namespaces are not supported by Custody: environments are mounts (secret/, <env>/)');
  }
  if (req.headers['x-vault-wrap-ttl'] !== undefined) {
    throw vaultError(400, 'UnsupportedOperation', ['response wrapping is not supported by Custody']);
  }
}

async function dispatch(door: VaultDoor, req: FastifyRequest, reply: FastifyReply): Promise<unknown> {
  refuseUnsupportedHeaders(req);
  const path = ((req.params as Record<string, string>)['*'] ?? '').replace(/^\/+/, '');
  const method = req.method;
  const list = isList(req);
  const get = method === 'GET' || method === 'HEAD';

  if (path.startsWith('sys/')) {
    const sys = path.slice(4);
    if (sys === 'health' && get) return health(door, req, reply);
    if (sys === 'seal-status' && get) return sealStatus(door);
    if (sys === 'mounts' && get) return mounts(door, req);
    if (sys.startsWith('internal/ui/mounts/') && get)
      return uiMount(door, req, sys.slice('internal/ui/mounts/'.length));
    const lease = /^leases\/([a-z-]+)(?:\/(.*))?$/.exec(sys);
    if (lease) return leaseRoute(door, req, reply, lease[1], lease[2] ?? '', list);
    // The pre-1.0 paths node-vault still uses.
    const legacy = /^(renew|revoke|revoke-prefix)(?:\/(.*))?$/.exec(sys);
    if (legacy) return leaseRoute(door, req, reply, legacy[1], legacy[2] ?? '', list);
    throw noHandler(method, path);
  }
  if (path.startsWith('auth/token/')) return tokenRoute(door, req, reply, path.slice('auth/token/'.length));
  const login = /^auth\/(.+)\/login$/.exec(path);
  if (login && (method === 'POST' || method === 'PUT')) return loginRoute(door, req, login[1]);
  if (path.startsWith('auth/')) throw noHandler(method, path);

  const route = classify(path, door.defaultEnv);
  if (route?.kind === 'kv') return kvRoute(door, req, reply, route, list);
  if (route?.kind === 'creds' && !list) return credsRoute(door, req, route);
  throw noHandler(method, path);
}

/**
 * The HashiCorp Vault-compatible front door (a subset of Vault's HTTP API, see README.md), served
 * under `/vault/v1/…`. It only translates: every request becomes an operation that walks the same
 * pipeline as its native twin (door `vault` in the audit trail).
 */
export const vaultDoor: FastifyPluginAsync<VaultDoorOptions> = async (app, opts) => {
  const defaultEnv = opts.defaultEnv ?? process.env.CUSTODY_VAULT_DEFAULT_ENV ?? DEFAULT_VAULT_ENV;
  if (!isEnvName(defaultEnv)) {
    throw new Error(
      `CUSTODY_VAULT_DEFAULT_ENV=${defaultEnv} is not an environment name (lower-case letters, digits, dashes; not sys, auth, identity or cubbyhole)`,
    );
  }
  const door: VaultDoor = { services: opts.services, defaultEnv };

  // Vault clients send JSON, sometimes without a Content-Type: parse any body as JSON, in this scope only.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text.trim() === '') return done(null, {});
    try {
      done(null, JSON.parse(text));
    } catch {
      done(invalid('failed to parse JSON input: the request body is not valid JSON'), undefined);
    }
  });

  // hvac ignores a JSON body whose Content-Type carries `; charset=utf-8`: Vault sends exactly this.
  app.addHook('onSend', async (_req, reply, payload) => {
    const type = reply.getHeader('content-type');
    if (typeof type === 'string' && type.startsWith(JSON_TYPE)) reply.header('content-type', JSON_TYPE);
    return payload;
  });

  app.setErrorHandler((err, req, reply) => {
    const { status, body } = toVaultError(err);
    if (status >= 500 && status !== 503)
      req.log.error(
        { err: { type: (err as Error).name, message: (err as Error).message } },
        'vault door error',
      );
    return reply.status(status).type(JSON_TYPE).send(body);
  });

  app.setNotFoundHandler((req, reply) => {
    const { status, body } = toVaultError(
      req.url.startsWith(`${app.prefix}/v1/`)
        ? noHandler(req.method, req.url.split('?')[0])
        : notFoundEmpty(),
    );
    return reply.status(status).type(JSON_TYPE).send(body);
  });

  app.route({
    method: [...METHODS],
    url: '/v1/*',
    schema: { hide: true },
    handler: (req, reply) => dispatch(door, req, reply),
  });

  // Node's HTTP parser refuses Vault's LIST verb before Fastify sees it; answer it as GET ?list=true.
  installListVerb(app, `${app.prefix}/v1/`);
};
