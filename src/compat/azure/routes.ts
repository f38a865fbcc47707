import type { FastifyError, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { Action } from '../../access/actions.js';
import { badRequest, CustodyError, notFound } from '../../errors.js';
import type { Services } from '../../http/services.js';
import type { Page, SecretValue, SecretVersionMeta } from '../../kv/types.js';
import type { Operation, OperationContext } from '../../pipeline/pipeline.js';
import { decodeBlob, encodeBlob, parsePayload, versionsPayload } from './backup.js';
import { createAzureDoor } from './door.js';
import { fromFastifyError, notKeyVault, toAzureError } from './errors.js';
import * as P from './present.js';
import { parseVaultHost, type VaultHost } from './vault-host.js';

/** One Key Vault request, recognised from its method and path (body not needed yet). */
type Spec =
  | { kind: 'list' | 'listDeleted' | 'restore' }
  | { kind: 'set' | 'delete' | 'versions' | 'backup' | 'getDeleted' | 'purge' | 'recover'; name: string }
  | { kind: 'get' | 'update'; name: string; version: string };

/**
 * The Custody action each Key Vault operation is authorized as: the same actions (and resources)
 * as the native routes in `http/routes/secrets.ts`, so both doors decide alike.
 */
const ACTION: Record<Spec['kind'], Action> = {
  list: 'secrets/list',
  versions: 'secrets/list',
  listDeleted: 'secrets/list',
  getDeleted: 'secrets/list',
  get: 'secrets/get',
  backup: 'secrets/get',
  set: 'secrets/set',
  restore: 'secrets/set',
  update: 'secrets/update',
  delete: 'secrets/delete',
  recover: 'secrets/recover',
  purge: 'secrets/purge',
};

/** Key Vault pages hold at most 25 items. */
const MAX_RESULTS = 25;

interface Parsed {
  vault: VaultHost;
  spec: Spec;
  query: URLSearchParams;
}

const methodNotAllowed = (method: string) =>
  new CustodyError('MethodNotAllowed', 405, `${method} is not allowed on this Key Vault path`);

/** `/secrets/{name}/{version}` and friends → Spec. Segments arrive percent-decoded. */
function parseSpec(method: string, segments: string[]): Spec {
  const [collection, name, third, ...rest] = segments;
  const noRoute = () =>
    notFound('RouteNotFound', `No Key Vault operation at /${segments.map(encodeURIComponent).join('/')}`);
  if (rest.length > 0) throw noRoute();
  const allow = <T extends Spec>(methods: Record<string, T>): T => {
    const s = methods[method];
    if (!s) throw methodNotAllowed(method);
    return s;
  };
  if (name !== undefined && name !== '' && name.includes('/')) {
    throw badRequest('InvalidSecretName', 'A Key Vault secret name cannot contain "/"');
  }
  if (collection === 'secrets') {
    if (name === undefined) return allow({ GET: { kind: 'list' } as Spec });
    if (name === '') throw noRoute();
    if (third === undefined) {
      if (name === 'restore' && method === 'POST') return { kind: 'restore' };
      return allow<Spec>({
        PUT: { kind: 'set', name },
        DELETE: { kind: 'delete', name },
        GET: { kind: 'get', name, version: '' },
        PATCH: { kind: 'update', name, version: '' },
      });
    }
    if (third === 'versions' && method === 'GET') return { kind: 'versions', name };
    if (third === 'backup' && method === 'POST') return { kind: 'backup', name };
    return allow<Spec>({
      GET: { kind: 'get', name, version: third },
      PATCH: { kind: 'update', name, version: third },
    });
  }
  if (collection === 'deletedsecrets') {
    if (name === undefined) return allow({ GET: { kind: 'listDeleted' } as Spec });
    if (name === '') throw noRoute();
    if (third === undefined)
      return allow<Spec>({ GET: { kind: 'getDeleted', name }, DELETE: { kind: 'purge', name } });
    if (third === 'recover') return allow<Spec>({ POST: { kind: 'recover', name } });
  }
  throw noRoute();
}

function parseRequest(req: FastifyRequest, vault: VaultHost): Parsed {
  const q = req.url.indexOf('?');
  const rawPath = q < 0 ? req.url : req.url.slice(0, q);
  let segments: string[];
  try {
    segments = rawPath.split('/').slice(1).map(decodeURIComponent);
  } catch {
    throw badRequest('InvalidPath', 'The path is not validly percent-encoded');
  }
  // URLSearchParams decodes keys too: the JS SDK sends `api%2Dversion`.
  const query = new URLSearchParams(q < 0 ? '' : req.url.slice(q + 1));
  return { vault, spec: parseSpec(req.method, segments), query };
}

/** The bearer token as presented (a Custody token); the pipeline decides whether it is any good. */
function bearer(req: FastifyRequest): string | undefined {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
  return m ? m[1] : undefined;
}

export const challengeHeader = (tenant: string, vault: VaultHost) =>
  `Bearer authorization="https://login.microsoftonline.com/${tenant}", resource="${vault.resource}"`;

// ---- request bodies ---------------------------------------------------------------------------

type Body = Record<string, unknown>;

const asObject = (v: unknown, what: string): Body | undefined => {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v))
    throw badRequest('InvalidRequest', `${what} is not an object`);
  return v as Body;
};

/** Key Vault times are epoch seconds; Custody's are milliseconds. null clears, undefined keeps. */
function seconds(v: unknown, what: string): number | null | undefined {
  if (v === undefined || v === null) return v;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0)
    throw badRequest('InvalidAttribute', `${what} is not a time in epoch seconds`);
  return Math.floor(v) * 1000;
}

function optionalString(v: unknown, what: string): string | null | undefined {
  if (v === undefined || v === null || typeof v === 'string') return v;
  throw badRequest('InvalidRequest', `${what} is not a string`);
}

function tags(v: unknown): Record<string, string> | undefined {
  const t = asObject(v, 'tags');
  return t as Record<string, string> | undefined; // values are checked by KvService
}

function attributesOf(body: Body | undefined) {
  const a = asObject(body?.attributes, 'attributes');
  const enabled = a?.enabled;
  if (enabled !== undefined && enabled !== null && typeof enabled !== 'boolean')
    throw badRequest('InvalidAttribute', 'attributes.enabled is not a boolean');
  return {
    enabled: (enabled ?? undefined) as boolean | undefined,
    notBefore: seconds(a?.nbf, 'attributes.nbf'),
    expiresAt: seconds(a?.exp, 'attributes.exp'),
  };
}

// ---- paging -----------------------------------------------------------------------------------

function maxResults(query: URLSearchParams): number {
  const raw = query.get('maxresults');
  if (raw === null || raw === '') return MAX_RESULTS;
  if (!/^[0-9]{1,4}$/.test(raw) || Number(raw) < 1 || Number(raw) > MAX_RESULTS)
    throw badRequest('InvalidMaxResults', `maxresults is from 1 to ${MAX_RESULTS}`);
  return Number(raw);
}

/** `$skiptoken` carries Custody's own cursor (`c.`) or, for lists paged here, an offset (`o.`). */
function skipToken(query: URLSearchParams, kind: 'c' | 'o'): string | undefined {
  const raw = query.get('$skiptoken');
  if (raw === null || raw === '') return undefined;
  const ok = kind === 'c' ? /^c\.[A-Za-z0-9_-]{1,1024}$/ : /^o\.[0-9]{1,9}$/;
  if (!ok.test(raw))
    throw badRequest('InvalidSkipToken', 'The $skiptoken is not one this vault returned', 'Start again.');
  return raw.slice(2);
}

function nextLink(origin: string, path: string, query: URLSearchParams, max: number, token: string | null) {
  if (token === null) return null;
  const apiVersion = query.get('api-version') ?? '7.6';
  return `${origin}${path}?api-version=${encodeURIComponent(apiVersion)}&maxresults=${max}&$skiptoken=${encodeURIComponent(token)}`;
}

function offsetPage<T>(all: T[], query: URLSearchParams): { items: T[]; next: string | null; max: number } {
  const max = maxResults(query);
  const start = Number(skipToken(query, 'o') ?? 0);
  const items = all.slice(start, start + max);
  return { items, max, next: start + max < all.length ? `o.${start + max}` : null };
}

/** Names with `/` (Custody's nested names) cannot be written in a Key Vault id: this door skips them. */
const representable = (m: { name: string }) => !m.name.includes('/');

// ---- the plugin -------------------------------------------------------------------------------

/**
 * Azure Key Vault secrets REST, served on vault hosts (`<vault>.vault.azure.net`, …, see README).
 * Adapter only: it translates each request into the operation the native route would run (same
 * action, same resource, door `azure`) and KvService's answers into Key Vault's shapes.
 */
export const azureKeyVaultRoutes: FastifyPluginAsync<{ services: Services }> = async (app, { services }) => {
  const { pipeline, kv } = services;
  const door = services.azure ?? createAzureDoor(undefined, null);
  const { config } = door;
  const parsed = new WeakMap<FastifyRequest, Parsed>();

  const operation = (
    req: FastifyRequest,
    p: Parsed,
    resource: string,
    extra: Pick<Operation, 'data' | 'sensitive'> = {},
  ): Operation => ({
    action: ACTION[p.spec.kind],
    resource,
    door: 'azure',
    requestId: req.id,
    remoteAddr: req.ip,
    token: bearer(req),
    data: { vault: p.vault.vault, ...extra.data },
    sensitive: extra.sensitive,
  });

  const resourceOf = (p: Parsed, name?: string) =>
    name === undefined ? p.vault.env : `${p.vault.env}/${name}`;

  app.setErrorHandler((err: FastifyError, req: FastifyRequest, reply: FastifyReply) => {
    let known = err instanceof CustodyError ? err : fromFastifyError(err);
    const kind = parsed.get(req)?.spec.kind;
    // Key Vault keeps deleted secrets out of the live collection: reading, updating or deleting a
    // deleted name is "not found"; only creating it again (set, restore) is a conflict.
    if (known?.code === 'SecretDeleted' && kind !== 'set' && kind !== 'restore')
      known = new CustodyError('SecretNotFound', 404, known.message, known.hint);
    if (!known)
      req.log.error({ err: { type: err.name, message: err.message, stack: err.stack } }, 'unhandled error');
    const e =
      known ??
      new CustodyError('InternalError', 500, `The broker hit an internal error (request id ${req.id})`);
    const { status, body } = toAzureError(e);
    const vault = parsed.get(req)?.vault ?? parseVaultHost(config, req.headers.host);
    if (status === 401 && vault) reply.header('www-authenticate', challengeHeader(config.tenant, vault));
    return reply.status(status).send(body);
  });

  // Key Vault clients send `Content-Type: application/json` on body-less requests too.
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, text, done) => {
    if (text === '') return done(null, undefined);
    try {
      done(null, JSON.parse(text as string));
    } catch {
      done(new CustodyError('MalformedJson', 400, 'The request body is not valid JSON'), undefined);
    }
  });

  app.addHook('onRequest', async (req, reply) => {
    const vault = parseVaultHost(config, req.headers.host);
    if (!vault) {
      const { status, body } = notKeyVault(req.method, req.url.split('?')[0]);
      return reply.status(status).send(body);
    }
    const p = parseRequest(req, vault);
    parsed.set(req, p);
    // Challenge authentication: Key Vault clients first send a request without credentials (and
    // with its body removed). The pipeline authenticates it like any other, which fails (401,
    // audited); the error handler adds the challenge naming the tenant and the vault's resource.
    if (!req.headers.authorization) {
      const name = 'name' in p.spec ? p.spec.name : undefined;
      await pipeline.run(operation(req, p, resourceOf(p, name)), async () => {
        throw new CustodyError('MissingToken', 401, 'This request needs a token');
      });
    }
  });

  const place = async (req: FastifyRequest, p: Parsed): Promise<P.Place> => ({
    origin: `${req.protocol}://${p.vault.authority}`,
    env: await kv.getEnvironment(p.vault.env),
  });

  async function handle(req: FastifyRequest, reply: FastifyReply) {
    const p = parsed.get(req)!;
    const { spec, query, vault } = p;
    const env = vault.env;
    const body = asObject(req.body, 'The request body');
    const run = <T>(resource: string, fn: (ctx: OperationContext) => Promise<T>, extra = {}) =>
      pipeline.run(operation(req, p, resource, extra), fn);

    switch (spec.kind) {
      case 'set': {
        const value = body?.value;
        if (typeof value !== 'string') throw badRequest('InvalidValue', 'value is required and is a string');
        const contentType = optionalString(body?.contentType, 'contentType');
        return run(
          resourceOf(p, spec.name),
          async () => {
            const a = attributesOf(body);
            const meta = await kv.setSecret(env, spec.name, {
              value,
              contentType,
              tags: tags(body?.tags),
              enabled: a.enabled,
              notBefore: a.notBefore,
              expiresAt: a.expiresAt,
            });
            return P.bundle(await place(req, p), meta, value);
          },
          { data: { content_type: contentType }, sensitive: { value } },
        );
      }
      case 'get':
        return run(
          resourceOf(p, spec.name),
          async (ctx) => {
            const s = await kv.getSecret(env, spec.name, spec.version || undefined);
            ctx.auditResponse({ data: { version: s.version, seq: s.seq }, sensitive: { value: s.value } });
            return P.bundle(await place(req, p), s, s.value);
          },
          { data: { version: spec.version || undefined } },
        );
      case 'update': {
        const contentType = optionalString(body?.contentType, 'contentType');
        const t = tags(body?.tags);
        return run(
          resourceOf(p, spec.name),
          async () => {
            const a = attributesOf(body);
            const meta = await kv.updateVersion(env, spec.name, spec.version || undefined, {
              enabled: a.enabled,
              notBefore: a.notBefore,
              expiresAt: a.expiresAt,
              contentType,
              tags: t,
            });
            return P.bundle(await place(req, p), meta);
          },
          { data: { version: spec.version || undefined, content_type: contentType } },
        );
      }
      case 'list':
        return run(
          resourceOf(p),
          async () => {
            const max = maxResults(query);
            const cursor = skipToken(query, 'c');
            const page: Page<SecretVersionMeta> = await kv.listSecrets(env, { limit: max, cursor });
            const pl = await place(req, p);
            const next = page.nextCursor === null ? null : `c.${page.nextCursor}`;
            return {
              value: page.items.filter(representable).map((m) => P.item(pl, m, false)),
              nextLink: nextLink(pl.origin, '/secrets', query, max, next),
            };
          },
          { data: { maxresults: query.get('maxresults') ?? undefined } },
        );
      case 'versions':
        return run(resourceOf(p, spec.name), async () => {
          const versions = await kv.listVersions(env, spec.name);
          const { items, next, max } = offsetPage(versions, query);
          const pl = await place(req, p);
          return {
            value: items.map((m) => P.item(pl, m, true)),
            nextLink: nextLink(
              pl.origin,
              `/secrets/${encodeURIComponent(spec.name)}/versions`,
              query,
              max,
              next,
            ),
          };
        });
      case 'delete':
        return run(resourceOf(p, spec.name), async () =>
          P.deletedBundle(await place(req, p), await kv.deleteSecret(env, spec.name)),
        );
      case 'getDeleted':
        return run(resourceOf(p, spec.name), async () =>
          P.deletedBundle(await place(req, p), await kv.getDeleted(env, spec.name)),
        );
      case 'listDeleted':
        return run(resourceOf(p), async () => {
          const deleted = (await kv.listDeleted(env)).filter(representable);
          const { items, next, max } = offsetPage(deleted, query);
          const pl = await place(req, p);
          return {
            value: items.map((d) => P.deletedItem(pl, d)),
            nextLink: nextLink(pl.origin, '/deletedsecrets', query, max, next),
          };
        });
      case 'recover':
        return run(resourceOf(p, spec.name), async () =>
          P.bundle(await place(req, p), await kv.recoverSecret(env, spec.name)),
        );
      case 'purge':
        await run(resourceOf(p, spec.name), () => kv.purgeSecret(env, spec.name));
        return reply.status(204).send();
      case 'backup':
        return run(resourceOf(p, spec.name), async (ctx) => {
          const backups = door.backups;
          if (!backups) throw notSupported('backup');
          // Every version, oldest first; a version that cannot be read (disabled, expired) fails the backup.
          const versions: SecretValue[] = [];
          for (const v of await kv.listVersions(env, spec.name))
            versions.push(await kv.getSecret(env, spec.name, v.version));
          ctx.auditResponse({ data: { versions: versions.length } });
          return { value: encodeBlob(spec.name, backups.seal(env, spec.name, versionsPayload(versions))) };
        });
      case 'restore': {
        // The envelope names the secret in clear, so the restore is authorized on that name before
        // anything is decrypted; the sealed part only opens for that environment and name.
        const blob = decodeBlob(body?.value);
        return run(
          resourceOf(p, blob.name),
          async (ctx) => {
            const backups = door.backups;
            if (!backups) throw notSupported('restore');
            const versions = parsePayload(await backups.open(env, blob.name, blob.sealed));
            let meta: SecretVersionMeta | undefined;
            for (const [i, v] of versions.entries()) {
              // cas 0 first: restoring over an existing (or deleted) secret is a conflict, as in Key Vault.
              meta = await kv.setSecret(env, blob.name, { ...v, cas: i });
            }
            ctx.auditResponse({ data: { versions: versions.length } });
            return P.bundle(await place(req, p), meta!);
          },
          { data: { restore: true } },
        );
      }
    }
  }

  for (const url of ['/secrets', '/secrets/*', '/deletedsecrets', '/deletedsecrets/*']) {
    app.route({
      method: ['GET', 'PUT', 'PATCH', 'DELETE', 'POST'],
      url,
      schema: { hide: true },
      handler: handle,
    });
  }
};

const notSupported = (what: string) =>
  new CustodyError('NotSupported', 501, `Key Vault ${what} is not supported by this Custody`);
