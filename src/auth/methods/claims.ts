import { badRequest } from '../../errors.js';

/**
 * Claim paths address nested claims JSON-pointer style: segments are separated by `/`, and dots
 * are ordinary characters. `kubernetes.io/namespace` is `claims["kubernetes.io"]["namespace"]`.
 * A `/` inside a claim name is written `~1` and a `~` is written `~0` (RFC 6901); a leading `/`
 * is optional, so `/sub` and `sub` are the same path.
 */
export function parseClaimPath(path: string, what = 'claim path'): string[] {
  const text = path.startsWith('/') ? path.slice(1) : path;
  const segments = text.split('/');
  if (
    text.length === 0 ||
    path.length > 256 ||
    segments.length > 8 ||
    segments.some((s) => s === '' || /~[^01]|~$/.test(s))
  ) {
    throw badRequest(
      'InvalidClaimPath',
      `A ${what} is 1-8 non-empty \`/\`-separated claim names (max 256 characters)`,
      'Examples: sub, groups, kubernetes.io/namespace; write a `/` inside a name as ~1 and a `~` as ~0.',
    );
  }
  return segments.map((s) => s.replaceAll('~1', '/').replaceAll('~0', '~'));
}

export function claimAt(claims: Record<string, unknown>, path: string[]): unknown {
  let cur: unknown = claims;
  for (const seg of path) {
    if (cur === null || typeof cur !== 'object' || Array.isArray(cur) || !Object.hasOwn(cur, seg)) {
      return undefined;
    }
    cur = (cur as Record<string, unknown>)[seg];
  }
  return cur;
}

/**
 * `*` matches any run of characters (also none, also `/`); every other character is literal.
 * Iterative with single backtracking point, so matching is linear-ish and cannot blow up.
 */
export function globMatch(pattern: string, value: string): boolean {
  let p = 0;
  let v = 0;
  let star = -1;
  let mark = 0;
  while (v < value.length) {
    if (p < pattern.length && pattern[p] !== '*' && pattern[p] === value[v]) {
      p++;
      v++;
    } else if (p < pattern.length && pattern[p] === '*') {
      star = p++;
      mark = v;
    } else if (star >= 0) {
      p = star + 1;
      v = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.length && pattern[p] === '*') p++;
  return p === pattern.length;
}

const scalar = (v: unknown): string | null =>
  typeof v === 'string'
    ? v
    : (typeof v === 'number' && Number.isFinite(v)) || typeof v === 'boolean'
      ? String(v)
      : null;

/** Whether the claim at `path` (a scalar or an array of scalars) matches any accepted pattern. */
export function claimMatches(claims: Record<string, unknown>, path: string, accepted: string[]): boolean {
  const value = claimAt(claims, parseClaimPath(path));
  const candidates = (Array.isArray(value) ? value : [value]).map(scalar).filter((s) => s !== null);
  return candidates.some((c) => accepted.some((pattern) => globMatch(pattern, c)));
}

/** The first bound claim the claims fail, or null when all match. */
export function failedBoundClaim(
  claims: Record<string, unknown>,
  bound: Record<string, string[]>,
): string | null {
  for (const [path, accepted] of Object.entries(bound)) {
    if (!claimMatches(claims, path, accepted)) return path;
  }
  return null;
}

export const MAX_METADATA_VALUE = 256;

/** Identity metadata from claim mappings: string claims only, truncated. */
export function mappedMetadata(
  claims: Record<string, unknown>,
  mappings: Record<string, string>,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [path, key] of Object.entries(mappings)) {
    const v = claimAt(claims, parseClaimPath(path));
    if (typeof v === 'string') out[key] = v.slice(0, MAX_METADATA_VALUE);
  }
  return out;
}

/** Group names from the groups claim: the string members of an array (or a lone string). */
export function claimGroups(claims: Record<string, unknown>, path: string): string[] {
  const v = claimAt(claims, parseClaimPath(path));
  const list = Array.isArray(v) ? v : typeof v === 'string' ? [v] : [];
  return list.filter((g): g is string => typeof g === 'string').slice(0, 256);
}

/** The identity name from the user claim: a non-empty string or a number, at most 256 characters. */
export function userClaimValue(claims: Record<string, unknown>, path: string): string | null {
  const v = claimAt(claims, parseClaimPath(path));
  const text = typeof v === 'string' ? v : typeof v === 'number' && Number.isFinite(v) ? String(v) : null;
  return text && text.length <= 256 ? text : null;
}
