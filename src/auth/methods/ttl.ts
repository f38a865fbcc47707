import { parseDuration } from '../../duration.js';
import { badRequest } from '../../errors.js';

export type DurationInput = string | number;

const MAX_TTL_S = 10 * 365 * 86_400;

/** A login token's ttl and max ttl (seconds) from a role's settings, with defaults and bounds. */
export function tokenTtls(
  input: { token_ttl?: DurationInput; token_max_ttl?: DurationInput },
  defaults = { ttl: 3600, max: 8 * 3600 },
): { token_ttl: number; token_max_ttl: number } {
  const ttl = input.token_ttl === undefined ? defaults.ttl : parseDuration(input.token_ttl, 'token_ttl');
  let max =
    input.token_max_ttl === undefined ? defaults.max : parseDuration(input.token_max_ttl, 'token_max_ttl');
  if (input.token_max_ttl === undefined && ttl > max) max = ttl;
  for (const [what, v] of [
    ['token_ttl', ttl],
    ['token_max_ttl', max],
  ] as const) {
    if (v < 1 || v > MAX_TTL_S) {
      throw badRequest('InvalidTtl', `${what} must be from 1 second to 10 years`, 'Examples: 15m, 1h, 8h.');
    }
  }
  if (ttl > max) {
    throw badRequest(
      'InvalidTtl',
      'token_ttl is longer than token_max_ttl',
      'Lower token_ttl or raise token_max_ttl.',
    );
  }
  return { token_ttl: ttl, token_max_ttl: max };
}
