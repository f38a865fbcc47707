import { randomBytes, randomUUID } from 'node:crypto';
import { badRequest } from '../errors.js';
import { aadFor, type KvContext, toMeta, type VersionRow } from './kv-context.js';
import * as E from './kv-errors.js';
import type { KvService } from './kv-service.js';
import { validateSecretName } from './names.js';
import type { UpdateVersionInput } from './types.js';

export const MAX_VALUE_BYTES = 256 * 1024;

type SecretWrites = Pick<KvService, 'setSecret' | 'updateVersion'>;

/** New versions (with check-and-set) and attribute updates of existing versions. */
export function createSecretWrites({
  storage,
  db,
  barrier,
  requireEnv,
  liveSecret,
  findVersion,
}: KvContext): SecretWrites {
  return {
    async setSecret(env, name, input) {
      await requireEnv(env);
      validateSecretName(name);
      checkValue(input.value);
      const attrs = checkAttributes(input);
      return storage.transaction(async (trx) => {
        const now = Date.now();
        // Create-if-absent, then lock the row: concurrent writers of one name queue here (SQLite
        // serializes transactions anyway), so each gets the next version number.
        await trx
          .insertInto('secrets')
          .values({
            id: randomUUID(),
            env,
            name,
            current_seq: 0,
            created_at: now,
            updated_at: now,
            deleted_at: null,
            purge_at: null,
          })
          .onConflict((oc) => oc.columns(['env', 'name']).doNothing())
          .execute();
        let q = trx.selectFrom('secrets').selectAll().where('env', '=', env).where('name', '=', name);
        if (storage.kind === 'postgres') q = q.forUpdate();
        const s = await q.executeTakeFirstOrThrow();
        if (s.deleted_at !== null) throw E.secretDeleted(env, name);
        if (input.cas !== undefined && input.cas !== s.current_seq)
          throw E.casMismatch(input.cas, s.current_seq);
        const seq = s.current_seq + 1;
        await trx
          .updateTable('secrets')
          .set({ current_seq: seq, updated_at: now })
          .where('id', '=', s.id)
          .execute();
        const v: VersionRow = {
          secret_id: s.id,
          seq,
          version_id: randomBytes(16).toString('hex'),
          ciphertext: barrier.encrypt(input.value, aadFor(s.id, seq)),
          content_type: attrs.contentType ?? null,
          tags: JSON.stringify(attrs.tags ?? {}),
          enabled: attrs.enabled === false ? 0 : 1,
          not_before: attrs.notBefore ?? null,
          expires_at: attrs.expiresAt ?? null,
          created_at: now,
          updated_at: now,
        };
        await trx.insertInto('secret_versions').values(v).execute();
        return toMeta(s, v);
      });
    },

    async updateVersion(env, name, version, input) {
      const { secret: s } = await liveSecret(env, name);
      const v = await findVersion(s, version);
      const attrs = checkAttributes(input);
      // Only the attributes given change; the value of a version never does.
      const patch: Partial<VersionRow> = { updated_at: Date.now() };
      if (attrs.enabled !== undefined) patch.enabled = attrs.enabled ? 1 : 0;
      if (attrs.notBefore !== undefined) patch.not_before = attrs.notBefore;
      if (attrs.expiresAt !== undefined) patch.expires_at = attrs.expiresAt;
      if (attrs.contentType !== undefined) patch.content_type = attrs.contentType;
      if (attrs.tags !== undefined) patch.tags = JSON.stringify(attrs.tags);
      await db
        .updateTable('secret_versions')
        .set(patch)
        .where('secret_id', '=', s.id)
        .where('seq', '=', v.seq)
        .execute();
      return toMeta(s, { ...v, ...patch } as VersionRow);
    },
  };
}

function checkValue(value: unknown): void {
  if (typeof value !== 'string')
    throw badRequest('InvalidValue', 'A secret value is a string', 'Encode binary data as base64.');
  if (Buffer.byteLength(value, 'utf8') > MAX_VALUE_BYTES) {
    throw badRequest(
      'ValueTooLarge',
      `A secret value is at most ${MAX_VALUE_BYTES / 1024} KiB`,
      'Store large files elsewhere and keep their key here.',
    );
  }
}

// Attributes arrive through every front door (REST, Key Vault, Vault), so they are checked here, once.
function checkAttributes<T extends UpdateVersionInput>(a: T): T {
  for (const [field, t] of [
    ['notBefore', a.notBefore],
    ['expiresAt', a.expiresAt],
  ] as const) {
    if (t !== undefined && t !== null && (!Number.isSafeInteger(t) || t < 0)) {
      throw E.invalidAttribute(
        `${field} is not a valid time`,
        'Give an RFC 3339 time or epoch milliseconds.',
      );
    }
  }
  if (a.notBefore && a.expiresAt && a.notBefore >= a.expiresAt) {
    throw E.invalidAttribute('not-before must be earlier than expires', 'Check the two times.');
  }
  if (a.contentType !== undefined && a.contentType !== null && a.contentType.length > 255) {
    throw E.invalidAttribute(
      'content type is longer than 255 characters',
      'Use a MIME type such as application/json.',
    );
  }
  if (a.tags !== undefined) {
    const entries = Object.entries(a.tags ?? {});
    if (entries.length > 15)
      throw E.invalidAttribute('at most 15 tags per version', 'Azure Key Vault has the same limit.');
    for (const [k, v] of entries) {
      if (k.length === 0 || k.length > 256 || typeof v !== 'string' || v.length > 256) {
        throw E.invalidAttribute(
          'a tag name or value is empty, too long or not a string',
          'Tags are string pairs of up to 256 characters.',
        );
      }
    }
  }
  return a;
}
