import { parseDuration } from '../../duration.js';
import { badRequest } from '../../errors.js';
import { parseCidrs } from './cidr.js';
import { type DurationInput, tokenTtls } from './ttl.js';
import type { AppRoleRoleConfig } from './types.js';

export interface AppRoleRoleConfigInput {
  secret_id_ttl?: DurationInput;
  secret_id_num_uses?: number;
  secret_id_bound_cidrs?: string[];
  token_bound_cidrs?: string[];
  token_ttl?: DurationInput;
  token_max_ttl?: DurationInput;
}

export function normalizeAppRoleRoleConfig(input: AppRoleRoleConfigInput): AppRoleRoleConfig {
  const ttl =
    input.secret_id_ttl === undefined ? 86_400 : parseDuration(input.secret_id_ttl, 'secret_id_ttl');
  if (ttl > 10 * 365 * 86_400) {
    throw badRequest(
      'InvalidTtl',
      'secret_id_ttl is at most 10 years',
      'Use 0 for secret ids that never expire.',
    );
  }
  const uses = input.secret_id_num_uses ?? 0;
  if (!Number.isInteger(uses) || uses < 0 || uses > 1_000_000) {
    throw badRequest('InvalidConfig', 'secret_id_num_uses is a whole number from 0 (unlimited) to 1000000');
  }
  return {
    secret_id_ttl: ttl,
    secret_id_num_uses: uses,
    secret_id_bound_cidrs: parseCidrs(input.secret_id_bound_cidrs, 'secret_id_bound_cidrs'),
    token_bound_cidrs: parseCidrs(input.token_bound_cidrs, 'token_bound_cidrs'),
    ...tokenTtls(input),
  };
}
