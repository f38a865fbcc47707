import { badRequest } from '../../errors.js';
import type { SecretValue } from '../../kv/types.js';

/**
 * A Key Vault backup blob: base64url of `{"v":1,"name":…,"sealed":…}`. The name is readable (the
 * pipeline authorizes the restore on it before anything is decrypted); the versions are sealed
 * under the barrier with the environment and name as AAD, so a blob edited to carry another name,
 * or replayed into another vault, fails to open.
 */
export interface BackupVersion {
  value: string;
  contentType: string | null;
  tags: Record<string, string>;
  enabled: boolean;
  notBefore: number | null;
  expiresAt: number | null;
}

const MAX_BLOB_CHARS = 4 * 1024 * 1024;
const invalid = () =>
  badRequest(
    'InvalidBackup',
    'The value is not a Custody Key Vault backup blob',
    'Pass the value returned by backup, unchanged.',
  );

export const versionsPayload = (versions: SecretValue[]): string =>
  JSON.stringify({
    versions: versions.map(
      (v): BackupVersion => ({
        value: v.value,
        contentType: v.contentType,
        tags: v.tags,
        enabled: v.enabled,
        notBefore: v.notBefore,
        expiresAt: v.expiresAt,
      }),
    ),
  });

export const encodeBlob = (name: string, sealed: string): string =>
  Buffer.from(JSON.stringify({ v: 1, name, sealed }), 'utf8').toString('base64url');

/** Reads the envelope without opening it. */
export function decodeBlob(blob: unknown): { name: string; sealed: string } {
  if (typeof blob !== 'string' || blob.length === 0 || blob.length > MAX_BLOB_CHARS) throw invalid();
  let env: unknown;
  try {
    env = JSON.parse(Buffer.from(blob, 'base64url').toString('utf8'));
  } catch {
    throw invalid();
  }
  const e = env as { v?: unknown; name?: unknown; sealed?: unknown };
  if (e?.v !== 1 || typeof e.name !== 'string' || !e.name || typeof e.sealed !== 'string') throw invalid();
  return { name: e.name, sealed: e.sealed };
}

const isTime = (t: unknown) => t === null || (typeof t === 'number' && Number.isSafeInteger(t));

export function parsePayload(text: string): BackupVersion[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw invalid();
  }
  const versions = (parsed as { versions?: unknown })?.versions;
  if (!Array.isArray(versions) || versions.length === 0) throw invalid();
  for (const v of versions as BackupVersion[]) {
    const ok =
      typeof v?.value === 'string' &&
      (v.contentType === null || typeof v.contentType === 'string') &&
      typeof v.tags === 'object' &&
      v.tags !== null &&
      typeof v.enabled === 'boolean' &&
      isTime(v.notBefore) &&
      isTime(v.expiresAt);
    if (!ok) throw invalid();
  }
  return versions as BackupVersion[];
}
