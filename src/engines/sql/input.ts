import { badRequest } from '../../errors.js';

/**
 * Strict parsing of engine config and role input from the API, shared by the SQL engines: every
 * rejection is a 400 with the caller's error code and a hint, and never echoes a long or secret value.
 */

export type Raw = Record<string, unknown>;

export function rejectUnknownKeys(raw: Raw, allowed: readonly string[], what: string, code: string): void {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw badRequest(code, `The ${what} must be a JSON object`, `Fields: ${allowed.join(', ')}.`);
  }
  const unknown = Object.keys(raw).filter((k) => !allowed.includes(k));
  if (unknown.length > 0) {
    throw badRequest(
      code,
      `Unknown ${what} field${unknown.length > 1 ? 's' : ''}: ${unknown.map((k) => JSON.stringify(k.slice(0, 64))).join(', ')}`,
      `Fields: ${allowed.join(', ')}.`,
    );
  }
}

export function requireString(raw: Raw, key: string, code: string, hint: string, maxLength = 1024): string {
  const v = raw[key];
  if (typeof v !== 'string' || v.length === 0)
    throw badRequest(code, `${key} is required (a non-empty string)`, hint);
  if (v.length > maxLength) throw badRequest(code, `${key} is longer than ${maxLength} characters`, hint);
  // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
  if (/[\u0000-\u001f\u007f]/.test(v)) throw badRequest(code, `${key} contains control characters`, hint);
  return v;
}

export function optionalBoolean(raw: Raw, key: string, code: string, fallback: boolean): boolean {
  const v = raw[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'boolean')
    throw badRequest(code, `${key} must be true or false`, `Example: "${key}": ${fallback}`);
  return v;
}

export function optionalInteger(
  raw: Raw,
  key: string,
  code: string,
  fallback: number,
  min: number,
  max: number,
): number {
  const v = raw[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw badRequest(
      code,
      `${key} must be an integer from ${min} to ${max}`,
      `Example: "${key}": ${fallback}`,
    );
  }
  return v;
}

export function optionalStringArray(raw: Raw, key: string, code: string, hint: string): string[] | undefined {
  const v = raw[key];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || v.length === 0 || v.length > 64) {
    throw badRequest(
      code,
      `${key} must be a non-empty list of at most 64 strings (omit it for the default)`,
      hint,
    );
  }
  for (const s of v) {
    if (typeof s !== 'string' || s.trim().length === 0 || s.length > 8192) {
      throw badRequest(code, `${key} entries must be non-empty strings of at most 8192 characters`, hint);
    }
  }
  return [...v];
}
