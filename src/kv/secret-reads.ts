import { badRequest } from '../errors.js';
import { aadFor, type KvContext, toMeta } from './kv-context.js';
import * as E from './kv-errors.js';
import type { KvService } from './kv-service.js';
import { validateSecretName } from './names.js';

type SecretReads = Pick<KvService, 'getSecret' | 'listSecrets' | 'listVersions'>;

/** Reading values and metadata of live (not soft-deleted) secrets. */
export function createSecretReads({
  db,
  barrier,
  requireEnv,
  liveSecret,
  findVersion,
}: KvContext): SecretReads {
  return {
    async getSecret(env, name, version) {
      const { secret: s } = await liveSecret(env, name);
      const v = await findVersion(s, version);
      const now = Date.now();
      const label = `Version ${v.seq} of ${env}/${name}`;
      if (v.enabled !== 1) throw E.versionUnusable('SecretDisabled', `${label} is disabled`);
      if (v.not_before !== null && v.not_before > now)
        throw E.versionUnusable('SecretNotYetValid', `${label} is not valid yet`);
      if (v.expires_at !== null && v.expires_at <= now)
        throw E.versionUnusable('SecretExpired', `${label} has expired`);
      const value = (await barrier.decrypt(v.ciphertext, aadFor(s.id, v.seq))).toString('utf8');
      return { ...toMeta(s, v), value };
    },

    async listSecrets(env, { prefix, limit = 100, cursor } = {}) {
      await requireEnv(env);
      if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
        throw badRequest('InvalidLimit', 'limit is from 1 to 1000', 'Page with the returned cursor.');
      }
      let q = db
        .selectFrom('secrets as s')
        .innerJoin('secret_versions as v', (j) =>
          j.onRef('v.secret_id', '=', 's.id').onRef('v.seq', '=', 's.current_seq'),
        )
        .selectAll('v')
        .select([
          's.id',
          's.env',
          's.name',
          's.current_seq',
          's.created_at as s_created',
          's.updated_at as s_updated',
        ])
        .where('s.env', '=', env)
        .where('s.deleted_at', 'is', null)
        .orderBy('s.name')
        .limit(limit + 1);
      // Prefixes match whole segments (`db` lists `db` and `db/…`, not `db-admin`), like scopes do.
      const p = prefix?.replace(/\/+$/, '');
      if (p) {
        validateSecretName(p);
        q = q.where((eb) =>
          eb.or([
            eb('s.name', '=', p),
            eb.and([eb('s.name', '>', `${p}/`), eb('s.name', '<', `${p}/\uffff`)]),
          ]),
        );
      }
      if (cursor) q = q.where('s.name', '>', decodeCursor(cursor));
      const rows = await q.execute();
      const page = rows.slice(0, limit);
      return {
        // Versions are never removed one by one, so the current sequence number is the count.
        items: page.map((r) => ({ ...toMeta(r, r), versions: r.current_seq })),
        nextCursor:
          rows.length > limit ? Buffer.from(page[page.length - 1].name).toString('base64url') : null,
      };
    },

    async listVersions(env, name) {
      const { secret: s } = await liveSecret(env, name);
      const rows = await db
        .selectFrom('secret_versions')
        .selectAll()
        .where('secret_id', '=', s.id)
        .orderBy('seq')
        .execute();
      return rows.map((v) => toMeta(s, v));
    },
  };
}

// The cursor is the last name of the previous page, so paging survives inserts and deletes.
function decodeCursor(cursor: string): string {
  const name = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!name)
    throw badRequest(
      'InvalidCursor',
      'The cursor is not one this server returned',
      'Start from the first page.',
    );
  return name;
}
