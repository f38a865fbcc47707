import { parseDuration } from '../duration.js';
import { CustodyError } from '../errors.js';
import { parseSecretRef, validateEnvName } from '../kv/names.js';
import { usageError } from './errors.js';

/** Runs a shared validator; its 400 errors are usage errors here (exit 2). */
function asUsage<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof CustodyError && err.status === 400) throw usageError(err.message, err.hint, err.code);
    throw err;
  }
}

export const secretRef = (ref: string) => asUsage(() => parseSecretRef(ref));
export const envName = (env: string) => asUsage(() => validateEnvName(env));

/** Checks a duration (`90s`, `15m`, `8h`, `7d`, `1h30m`) and returns it unchanged for the broker. */
export function duration(value: string, flag: string): string {
  asUsage(() => parseDuration(value, flag));
  return value;
}

/** `key=value` → [key, value]. The value may contain `=`; the key may not be empty. */
export function pair(text: string, what: string): [string, string] {
  const eq = text.indexOf('=');
  if (eq <= 0) {
    throw usageError(
      `${what} must be key=value`,
      `Example: ${what === '--tag' || what === '--meta' ? `${what} team=ml` : 'user=app'}.`,
      'InvalidKeyValue',
    );
  }
  return [text.slice(0, eq), text.slice(eq + 1)];
}

/** Repeated `--tag k=v` / `--meta k=v` → an object; undefined when none were given. */
export function pairs(list: string[] | undefined, what: string): Record<string, string> | undefined {
  if (!list || list.length === 0) return undefined;
  const out: Record<string, string> = {};
  for (const item of list) {
    const [k, v] = pair(item, what);
    out[k] = v;
  }
  return out;
}

export function integer(value: string, flag: string, min = 0): number {
  if (!/^\d+$/.test(value) || Number(value) < min || !Number.isSafeInteger(Number(value))) {
    throw usageError(
      `${flag} must be a whole number${min > 0 ? ` ≥ ${min}` : ''}`,
      undefined,
      'InvalidNumber',
    );
  }
  return Number(value);
}

export function boolean(value: string, flag: string): boolean {
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw usageError(`${flag} must be true or false`, `Example: ${flag} false.`, 'InvalidBoolean');
}

/**
 * A time for --expires / --not-before: RFC 3339 (`2026-12-31T23:59:59Z`), a duration from now
 * (`30d`, `12h`), or `none` to clear it (when allowed).
 */
export function time(value: string, flag: string, allowNone = false): string | null {
  if (allowNone && value === 'none') return null;
  if (/^(\d+[smhd])+$/.test(value)) return new Date(Date.now() + parseDuration(value) * 1000).toISOString();
  if (/^\d{4}-\d{2}-\d{2}T/.test(value) && !Number.isNaN(Date.parse(value))) return value;
  throw usageError(
    `${flag} is not a time`,
    `Use RFC 3339 (2026-12-31T23:59:59Z) or a duration from now (30d, 12h)${allowNone ? ', or none to clear it' : ''}.`,
    'InvalidTime',
  );
}

/**
 * `ENV/NAME…` references with a fixed number of `/`-separated parts, e.g. `prod/approle/trainer`
 * for ENV/METHOD/ROLE. The environment is checked here; the other names by the broker.
 */
export function ref(text: string, shape: string, example: string): string[] {
  const want = shape.split('/').length;
  const parts = text.split('/');
  if (parts.length !== want || parts.some((p) => p === '')) {
    throw usageError(`${text} is not ${shape}`, `Example: ${example}.`, 'InvalidReference');
  }
  envName(parts[0]);
  return parts;
}

/** A duration in whole seconds, for API fields that take a number (leeway_seconds). */
export function seconds(value: string, flag: string): number {
  return asUsage(() => parseDuration(value, flag));
}

/** One of a fixed set of words (case-insensitive); returned as listed. */
export function oneOf<T extends string>(value: string, allowed: readonly T[], flag: string): T {
  const hit = allowed.find((a) => a.toLowerCase() === value.toLowerCase());
  if (hit === undefined) {
    throw usageError(`${flag} must be one of ${allowed.join(', ')}`, undefined, 'InvalidChoice');
  }
  return hit;
}
