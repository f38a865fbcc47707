import type { FastifyReply, FastifyRequest } from 'fastify';
import { CustodyError } from '../../errors.js';
import type { SecretVersionMeta } from '../../kv/types.js';
import type { VaultDoor } from './door.js';
import {
  envelope,
  invalid,
  noContent,
  noHandler,
  notFoundEmpty,
  vaultOperation as op,
  rfc3339,
  unsupported,
  VaultReplyError,
  vaultError,
} from './wire.js';

/**
 * KV version 2 over Custody's versioned secrets. A Vault `data` object is stored as one JSON value
 * (content type application/json); Vault's version numbers are Custody's sequence numbers; Vault's
 * per-version soft delete is Custody's per-version `enabled` flag. Same actions and resources as the
 * native routes: a read is `secrets/get` on `ENV/NAME`, a write `secrets/set`, (un)deleting versions
 * `secrets/update`, metadata and listings `secrets/list`, deleting the whole secret `secrets/delete`.
 */

const JSON_TYPE = 'application/json';
const MOUNT_TYPE = 'kv';
const MAX_VERSIONS_PER_CALL = 100;
const LIST_PAGE = 1000;
const LIST_MAX_PAGES = 100;

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Back from the stored string: a JSON object written through this door, else `{"value": "…"}`. */
export function vaultData(value: string, contentType: string | null): Json {
  if (contentType?.split(';')[0].trim() === JSON_TYPE) {
    try {
      const parsed: unknown = JSON.parse(value);
      if (isObject(parsed)) return parsed;
    } catch {
      // stored by another door with a misleading content type: return it as a plain value
    }
  }
  return { value };
}

export const versionMetadata = (m: SecretVersionMeta) => ({
  created_time: rfc3339(m.createdAt),
  custom_metadata: Object.keys(m.tags).length > 0 ? m.tags : null,
  // A disabled version is Vault's soft-deleted version; its last change is when that happened.
  deletion_time: m.enabled ? '' : rfc3339(m.updatedAt),
  destroyed: false,
  version: m.seq,
});

/** `?version=N`: absent or 0 = latest. */
function versionParam(raw: unknown): string | undefined {
  if (raw === undefined || raw === '' || raw === '0') return undefined;
  if (typeof raw === 'string' && /^[0-9]{1,9}$/.test(raw)) return String(Number(raw));
  throw invalid('version must be a non-negative integer');
}

function casOption(body: Json): number | undefined {
  const options = body.options;
  if (options === undefined || options === null) return undefined;
  if (!isObject(options)) throw invalid('options must be an object');
  const cas = options.cas;
  if (cas === undefined || cas === null) return undefined;
  const n = typeof cas === 'string' && /^[0-9]{1,9}$/.test(cas) ? Number(cas) : cas;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0)
    throw invalid('options.cas must be a non-negative integer');
  return n;
}

function versionsBody(body: Json): number[] {
  const v = body.versions;
  const list = Array.isArray(v) ? v : typeof v === 'number' || typeof v === 'string' ? [v] : null;
  if (!list || list.length === 0) throw invalid('no version number provided');
  if (list.length > MAX_VERSIONS_PER_CALL)
    throw invalid(`at most ${MAX_VERSIONS_PER_CALL} versions per request`);
  return list.map((x) => {
    const n = typeof x === 'string' && /^[0-9]{1,9}$/.test(x) ? Number(x) : x;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1)
      throw invalid('versions must be positive integers');
    return n;
  });
}

/** RFC 7396 JSON merge patch: `null` removes a key, objects merge, anything else replaces. */
function mergePatch(target: Json, patch: Json): Json {
  const out: Json = { ...target };
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else if (isObject(v) && isObject(out[k])) out[k] = mergePatch(out[k] as Json, v);
    else out[k] = v;
  }
  return out;
}

/** Writing to a secret Custody holds as deleted: a 400 that says why, not a bare 404. */
function writeRefused(err: unknown): never {
  if (err instanceof CustodyError && err.code === 'SecretDeleted')
    throw vaultError(400, err.code, [
      `${err.message}: recover it (POST /v1/deleted-secrets/ENV/NAME) or purge it with the native API before writing again`,
    ]);
  throw err;
}

const notDisabled = (err: unknown) => !(err instanceof CustodyError && err.code === 'SecretDisabled');

export async function kvRoute(
  door: VaultDoor,
  req: FastifyRequest,
  reply: FastifyReply,
  route: { mount: string; env: string; op: string; path: string },
  list: boolean,
): Promise<unknown> {
  const { pipeline, kv } = door.services;
  const { env, op: sub } = route;
  const name = route.path.replace(/\/+$/, '');
  const resource = `${env}/${name}`;
  const body = isObject(req.body) ? req.body : {};
  const method = req.method;
  const needName = () => {
    if (name === '') throw invalid('missing secret path');
  };

  /** The metadata of one version (latest when undefined), read under an already authorized operation. */
  const metaOf = async (version: string | undefined) => {
    const all = await kv.listVersions(env, name);
    const m = version === undefined ? all[all.length - 1] : all.find((v) => v.seq === Number(version));
    if (!m) throw notFoundEmpty('VersionNotFound');
    return m;
  };

  if (sub === 'data') {
    needName();
    if (method === 'GET') {
      const version = versionParam((req.query as Json).version);
      const s = await pipeline.run(
        op(req, { action: 'secrets/get', resource, data: { version } }),
        async (ctx) => {
          try {
            const got = await kv.getSecret(env, name, version);
            ctx.auditResponse({
              data: { version: got.version, seq: got.seq },
              sensitive: { value: got.value },
            });
            return got;
          } catch (err) {
            if (notDisabled(err)) throw err;
            // A disabled version reads like Vault's soft-deleted one: 404 with its metadata.
            const m = await metaOf(version);
            throw new VaultReplyError(404, 'SecretVersionDeleted', `Version ${m.seq} is deleted`, {
              ...envelope(req, {
                data: { data: null, metadata: versionMetadata(m) },
                mount_type: MOUNT_TYPE,
              }),
            });
          }
        },
      );
      return envelope(req, {
        data: { data: vaultData(s.value, s.contentType), metadata: versionMetadata(s) },
        mount_type: MOUNT_TYPE,
      });
    }
    if (method === 'POST' || method === 'PUT') {
      if (!isObject(body.data)) throw invalid('no data provided');
      const cas = casOption(body);
      const value = JSON.stringify(body.data);
      const meta = await pipeline.run(
        op(req, {
          action: 'secrets/set',
          resource,
          data: { cas, content_type: JSON_TYPE },
          sensitive: { value },
        }),
        () => kv.setSecret(env, name, { value, contentType: JSON_TYPE, cas }).catch(writeRefused),
      );
      return envelope(req, { data: versionMetadata(meta), mount_type: MOUNT_TYPE });
    }
    if (method === 'PATCH') {
      if (!isObject(body.data)) throw invalid('no data provided');
      const cas = casOption(body);
      // Two operations, like its native twin would be: a read, then a check-and-set write.
      const current = await pipeline.run(
        op(req, { action: 'secrets/get', resource, data: { patch: true } }),
        async (ctx) => {
          const got = await kv.getSecret(env, name).catch((err: unknown) => {
            throw notDisabled(err) ? err : notFoundEmpty('SecretVersionDeleted');
          });
          ctx.auditResponse({
            data: { version: got.version, seq: got.seq },
            sensitive: { value: got.value },
          });
          return got;
        },
      );
      if (cas !== undefined && cas !== current.seq)
        throw invalid('check-and-set parameter did not match the current version');
      const value = JSON.stringify(mergePatch(vaultData(current.value, current.contentType), body.data));
      const meta = await pipeline.run(
        op(req, {
          action: 'secrets/set',
          resource,
          data: { cas: current.seq, content_type: JSON_TYPE, patch: true },
          sensitive: { value },
        }),
        () =>
          kv.setSecret(env, name, { value, contentType: JSON_TYPE, cas: current.seq }).catch(writeRefused),
      );
      return envelope(req, { data: versionMetadata(meta), mount_type: MOUNT_TYPE });
    }
    if (method === 'DELETE') {
      // Soft-delete the latest version: Custody disables it; undelete enables it again.
      await pipeline.run(
        op(req, { action: 'secrets/update', resource, data: { version: 'latest', enabled: false } }),
        () => kv.updateVersion(env, name, undefined, { enabled: false }),
      );
      return noContent(reply);
    }
  }

  if ((sub === 'delete' || sub === 'undelete') && (method === 'POST' || method === 'PUT')) {
    needName();
    const versions = versionsBody(body);
    const enabled = sub === 'undelete';
    await pipeline.run(
      op(req, { action: 'secrets/update', resource, data: { versions, enabled } }),
      async () => {
        for (const v of versions) {
          // Like Vault, versions that do not exist are skipped.
          await kv.updateVersion(env, name, String(v), { enabled }).catch((err: unknown) => {
            if (!(err instanceof CustodyError && err.code === 'VersionNotFound')) throw err;
          });
        }
      },
    );
    return noContent(reply);
  }

  if (sub === 'metadata') {
    if (method === 'GET' && list) return listKeys(door, req, env, name);
    if (method === 'GET') {
      needName();
      const versions = await pipeline.run(op(req, { action: 'secrets/list', resource }), () =>
        kv.listVersions(env, name),
      );
      const first = versions[0];
      const last = versions[versions.length - 1];
      return envelope(req, {
        data: {
          cas_required: false,
          created_time: rfc3339(first.createdAt),
          current_version: last.seq,
          custom_metadata: Object.keys(last.tags).length > 0 ? last.tags : null,
          delete_version_after: '0s',
          max_versions: 0,
          oldest_version: first.seq,
          updated_time: rfc3339(last.createdAt),
          versions: Object.fromEntries(
            versions.map((v) => {
              const { created_time, deletion_time, destroyed } = versionMetadata(v);
              return [String(v.seq), { created_time, deletion_time, destroyed }];
            }),
          ),
        },
        mount_type: MOUNT_TYPE,
      });
    }
    if (method === 'DELETE') {
      needName();
      // Vault deletes every version and the metadata; Custody soft-deletes the secret, which stays
      // recoverable (native API) until its environment's retention ends.
      await pipeline.run(op(req, { action: 'secrets/delete', resource }), () => kv.deleteSecret(env, name));
      return noContent(reply);
    }
    if (method === 'POST' || method === 'PUT' || method === 'PATCH') {
      throw unsupported(
        'Writing KV metadata (max_versions, cas_required, custom_metadata)',
        'Custody keeps every version; set tags per version with the native API (PATCH /v1/secrets/ENV/NAME).',
      );
    }
  }

  if (sub === 'destroy') {
    throw unsupported(
      'Destroying individual versions',
      'Custody cannot purge single versions. Delete the versions (POST <mount>/delete/<path>) or the whole secret (DELETE <mount>/metadata/<path>), then purge it with the native API.',
    );
  }
  if (sub === 'config' || sub === 'subkeys') {
    throw unsupported(`The KV ${sub} endpoint`, 'see src/compat/vault/README.md for the supported subset.');
  }
  throw noHandler(method, `${route.mount}/${sub}/${route.path}`);
}

/** `LIST <mount>/metadata/<prefix>`: the next level below the prefix; folders end in `/`. */
async function listKeys(door: VaultDoor, req: FastifyRequest, env: string, prefix: string): Promise<unknown> {
  const { pipeline, kv } = door.services;
  const keys = await pipeline.run(
    op(req, {
      action: 'secrets/list',
      resource: prefix ? `${env}/${prefix}` : env,
      data: { prefix: prefix || undefined },
    }),
    async () => {
      const found = new Set<string>();
      let cursor: string | undefined;
      for (let page = 0; page < LIST_MAX_PAGES; page++) {
        const res = await kv.listSecrets(env, { prefix: prefix || undefined, limit: LIST_PAGE, cursor });
        for (const item of res.items) {
          if (prefix && item.name === prefix) continue;
          const rest = prefix ? item.name.slice(prefix.length + 1) : item.name;
          const slash = rest.indexOf('/');
          found.add(slash === -1 ? rest : `${rest.slice(0, slash)}/`);
        }
        if (!res.nextCursor) break;
        cursor = res.nextCursor;
      }
      return [...found].sort();
    },
  );
  if (keys.length === 0) throw notFoundEmpty('NoKeys');
  return envelope(req, { data: { keys }, mount_type: MOUNT_TYPE });
}
