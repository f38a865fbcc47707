import { createHmac } from 'node:crypto';

export type AuditEntryType = 'request' | 'response';
export type AuditOutcome = 'allowed' | 'denied' | 'error' | 'ok';

export interface AuditAuth {
  accessor?: string;
  identity?: string;
  policies?: string[];
  root?: boolean;
  method?: string;
  /** which role/assignment granted the action */
  granted_by?: string | null;
  /** kind of the identity (workload or user) */
  kind?: string;
  /** on-behalf-of: the workload identity acting for `identity` */
  actor?: string | null;
  env?: string | null;
}

/** One audit entry as it is handed to the sinks: everything except the per-sink chain fields. */
export interface AuditRecord {
  time: string;
  type: AuditEntryType;
  request_id: string;
  door: string;
  remote_addr: string;
  auth: AuditAuth | null;
  action: string;
  resource: string;
  outcome: AuditOutcome;
  status?: number;
  error_code?: string;
  data?: Record<string, unknown>;
}

/** One line of an audit file: the record stamped with its sink's chain position. */
export interface AuditEntry extends AuditRecord {
  seq: number;
  prev_hash: string;
  hash: string;
}

/** What callers pass to `AuditService.log`. */
export interface AuditInput {
  type: AuditEntryType;
  requestId: string;
  door: string;
  remoteAddr: string;
  auth: AuditAuth | null;
  action: string;
  resource: string;
  outcome: AuditOutcome;
  status?: number;
  errorCode?: string;
  data?: Record<string, unknown>;
  /** Secret values, tokens, passwords, shares: only their HMAC digests reach the audit trail. */
  sensitive?: Record<string, unknown>;
}

export const HMAC_PREFIX = 'hmac-sha256:';
/** Written instead of a sensitive value while there is no audit key (broker still sealed). */
export const OMITTED_SEALED = '[omitted: sealed]';

const MAX_DEPTH = 32;

/** Digest of a value as it appears in the audit trail; lets an operator search for a known value. */
export function hmacValue(key: Buffer, value: unknown): string {
  const text = typeof value === 'string' ? value : (JSON.stringify(value) ?? String(value));
  return HMAC_PREFIX + createHmac('sha256', key).update(text, 'utf8').digest('hex');
}

// Exact names (after lower-casing and dropping '_' / '-') and name endings that mark a value as
// secret. This is a safety net for callers that forget to use `sensitive`, so it errs on the wide side.
const SENSITIVE_NAMES = new Set([
  'value',
  'password',
  'token',
  'secret',
  'secretid',
  'clienttoken',
  'key',
  'keys',
  'privatekey',
  'share',
  'shares',
]);
const SENSITIVE_ENDINGS = ['password', 'passphrase', 'token', 'secret', 'privatekey', 'apikey', 'secretkey'];

export function isSensitiveKey(name: string): boolean {
  const n = name.toLowerCase().replace(/[_-]/g, '');
  return SENSITIVE_NAMES.has(n) || SENSITIVE_ENDINGS.some((end) => n.endsWith(end));
}

type Digest = (value: unknown) => string;

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && !ArrayBuffer.isView(v);

/**
 * Turns arbitrary caller data into plain JSON (so the hash computed at write time matches the one
 * recomputed from the parsed line) and digests every value found under a sensitive-looking key.
 */
function scrub(value: unknown, digest: Digest, secret: boolean, depth: number): unknown {
  if (value === null || value === undefined) return value;
  if (depth > MAX_DEPTH) return '[too deep]';
  if (typeof value === 'object' && typeof (value as { toJSON?: unknown }).toJSON === 'function') {
    if (!ArrayBuffer.isView(value)) value = (value as { toJSON(): unknown }).toJSON();
  }
  if (ArrayBuffer.isView(value)) {
    // Raw bytes are almost always key material; never copy them into the trail.
    return digest(Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64'));
  }
  if (Array.isArray(value)) return value.map((v) => scrub(v, digest, secret, depth + 1));
  if (isPlainObject(value)) {
    // fromEntries creates own properties, so a '__proto__' key stays data instead of a prototype.
    return Object.fromEntries(
      Object.entries(value)
        .filter(([, v]) => v !== undefined && typeof v !== 'function' && typeof v !== 'symbol')
        .map(([k, v]) => [k, scrub(v, digest, secret || isSensitiveKey(k), depth + 1)]),
    );
  }
  if (typeof value === 'bigint') return secret ? digest(value.toString()) : value.toString();
  if (typeof value === 'number' && !Number.isFinite(value)) return null;
  return secret ? digest(value) : value;
}

/**
 * Builds the record for one audit entry. With no key (sealed broker) sensitive values are left
 * out altogether rather than written in clear.
 */
export function buildRecord(input: AuditInput, key: Buffer | undefined, now: Date = new Date()): AuditRecord {
  const digest: Digest = key ? (v) => hmacValue(key, v) : () => OMITTED_SEALED;
  const record: AuditRecord = {
    time: now.toISOString(),
    type: input.type,
    request_id: input.requestId,
    door: input.door,
    remote_addr: input.remoteAddr,
    // Scrubbed like data: a token passed along with the auth context ends up as a digest.
    auth: input.auth ? (scrub(input.auth, digest, false, 0) as AuditAuth) : null,
    action: input.action,
    resource: input.resource,
    outcome: input.outcome,
  };
  if (input.status !== undefined) record.status = input.status;
  if (input.errorCode !== undefined) record.error_code = input.errorCode;
  let data = input.data ? (scrub(input.data, digest, false, 0) as Record<string, unknown>) : undefined;
  if (input.sensitive && Object.keys(input.sensitive).length > 0) {
    // Each sensitive field is one digest of the whole value (non-strings JSON-stringified).
    const digests = Object.entries(input.sensitive)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => [k, digest(v)] as const);
    data = { ...data, ...Object.fromEntries(digests) };
  }
  if (data !== undefined) record.data = data;
  return record;
}
