import { badRequest } from './errors.js';

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/** Parses `90`, `90s`, `15m`, `8h`, `7d` or `1h30m` into whole seconds. */
export function parseDuration(input: string | number, what = 'duration'): number {
  if (typeof input === 'number') {
    if (Number.isInteger(input) && input >= 0) return input;
  } else if (/^\d+$/.test(input)) {
    return Number(input);
  } else if (/^(\d+[smhd])+$/.test(input)) {
    let total = 0;
    for (const [, n, u] of input.matchAll(/(\d+)([smhd])/g)) total += Number(n) * UNITS[u];
    return total;
  }
  throw badRequest(
    'InvalidDuration',
    `The ${what} is not a duration`,
    'Use seconds or a unit: 90s, 15m, 8h, 7d, 1h30m.',
  );
}

/** Parses an RFC 3339 time (or null to clear) into epoch milliseconds. */
export function parseTime(input: string | null | undefined, what: string): number | null | undefined {
  if (input === undefined || input === null) return input;
  const t = Date.parse(input);
  if (!/^\d{4}-\d{2}-\d{2}T/.test(input) || Number.isNaN(t)) {
    throw badRequest('InvalidTime', `${what} is not an RFC 3339 time`, 'Example: 2026-12-31T23:59:59Z.');
  }
  return t;
}

export const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
