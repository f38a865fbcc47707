import { createHash } from 'node:crypto';

/** prev_hash of the first entry of a chain. */
export const GENESIS_HASH = '0'.repeat(64);

export const sha256Hex = (text: string): string => createHash('sha256').update(text, 'utf8').digest('hex');

/**
 * JSON with object keys sorted recursively, so the hash does not depend on key order. Follows
 * JSON.stringify for everything else (toJSON, undefined members dropped, non-finite numbers → null).
 */
export function canonicalJson(value: unknown): string {
  if (value !== null && typeof value === 'object' && typeof (value as any).toJSON === 'function') {
    value = (value as { toJSON(): unknown }).toJSON();
  }
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) {
    const items = value.map((v) => (v === undefined || typeof v === 'function' ? 'null' : canonicalJson(v)));
    return `[${items.join(',')}]`;
  }
  const obj = value as Record<string, unknown>;
  const parts: string[] = [];
  for (const key of Object.keys(obj).sort()) {
    const v = obj[key];
    if (v === undefined || typeof v === 'function' || typeof v === 'symbol') continue;
    parts.push(`${JSON.stringify(key)}:${canonicalJson(v)}`);
  }
  return `{${parts.join(',')}}`;
}

/** hash = sha256hex(prev_hash + '\n' + canonicalJson(entry without its hash)). */
export function entryHash(entryWithoutHash: Record<string, unknown>): string {
  return sha256Hex(`${String(entryWithoutHash.prev_hash)}\n${canonicalJson(entryWithoutHash)}`);
}

export const isHash = (v: unknown): v is string => typeof v === 'string' && /^[0-9a-f]{64}$/.test(v);
