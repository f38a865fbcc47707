/**
 * The proxy's secret-leak guard: MLflow requests that log params, metrics, tags, batches or traces
 * are refused (or redacted) when a string in their JSON body contains a known secret value or one of
 * its encodings (base64 in all three alignments, base64url, URL-encoded, JSON-escaped) — the forms
 * come from the one masking engine that `custody run` uses for a job's output.
 */

import { encodedForms, MIN_MASK_LENGTH, maskValuesOf } from '../masking.js';

export type LeakGuardMode = 'refuse' | 'redact' | 'off';

/** Values shorter than this are not guarded (they would match everywhere): the masking minimum. */
export const MIN_SECRET_LENGTH = MIN_MASK_LENGTH;

const GUARDED =
  /^\/(?:api|ajax-api)\/[23]\.0\/mlflow\/(?:runs\/(?:log-parameter|log-metric|set-tag|log-batch)|traces(?:\/.*)?)$/;

/** Whether a request to `pathname` with `method` is inspected. */
export function isGuarded(method: string, pathname: string): boolean {
  const m = method.toUpperCase();
  return (m === 'POST' || m === 'PATCH' || m === 'PUT') && GUARDED.test(pathname.replace(/\/+$/, ''));
}

/**
 * Every form of `value` the guard looks for: the same forms `custody run` masks in a job's output
 * (src/client/masking.ts), as JavaScript strings because the guard walks parsed JSON.
 */
export function secretForms(value: string): string[] {
  return encodedForms(value).map((f) => Buffer.from(f, 'latin1').toString('utf8'));
}

/** The secret values in `raw`: itself and the fields of a JSON object secret, as the masking takes them. */
export function secretValuesOf(raw: string): string[] {
  return maskValuesOf('secret', raw.trim())
    .map((v) => v.value)
    .filter((v) => v.length >= MIN_SECRET_LENGTH);
}

export interface Leak {
  /** The field's name, e.g. `value` or `params[0].value`. */
  field: string;
}

const fieldName = (path: (string | number)[]) =>
  path.reduce<string>((acc, p) => (typeof p === 'number' ? `${acc}[${p}]` : acc ? `${acc}.${p}` : p), '');

/** The first field of `body` whose string (or key) contains one of `forms`. */
export function findLeak(body: unknown, forms: readonly string[]): Leak | undefined {
  if (forms.length === 0) return undefined;
  const hit = (s: string) => forms.some((f) => s.includes(f));
  const walk = (v: unknown, path: (string | number)[]): Leak | undefined => {
    if (typeof v === 'string') return hit(v) ? { field: fieldName(path) || 'body' } : undefined;
    if (typeof v === 'number' || typeof v === 'boolean')
      return hit(String(v)) ? { field: fieldName(path) } : undefined;
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        const l = walk(v[i], [...path, i]);
        if (l) return l;
      }
      return undefined;
    }
    if (v && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) {
        if (hit(k)) return { field: fieldName([...path, k]) };
        const l = walk(x, [...path, k]);
        if (l) return l;
      }
    }
    return undefined;
  };
  return walk(body, []);
}

/** `body` with every occurrence of `forms` replaced by `<redacted>`; and whether anything changed. */
export function redactLeaks(body: unknown, forms: readonly string[]): { body: unknown; changed: boolean } {
  const sorted = [...forms].sort((a, b) => b.length - a.length);
  let changed = false;
  const fix = (s: string) => {
    let out = s;
    for (const f of sorted) if (out.includes(f)) out = out.split(f).join('<redacted>');
    if (out !== s) changed = true;
    return out;
  };
  const walk = (v: unknown): unknown => {
    if (typeof v === 'string') return fix(v);
    if (Array.isArray(v)) return v.map(walk);
    if (v && typeof v === 'object')
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [fix(k), walk(x)]));
    return v;
  };
  const out = walk(body);
  return { body: out, changed };
}

/** MLflow's error body for a refused request. */
export function refusal(leak: Leak): { error_code: string; message: string } {
  return {
    error_code: 'INVALID_PARAMETER_VALUE',
    message: `Custody refused: field ${leak.field} contains a secret value`,
  };
}
