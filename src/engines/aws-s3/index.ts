import { badRequest } from '../../errors.js';
import type { EngineFactory } from '../engine.js';
import {
  type AwsS3Config,
  type AwsS3Role,
  parseAwsS3Config,
  parseAwsS3Role,
  redactAwsS3Config,
  STS_MAX_SECONDS,
  STS_MIN_SECONDS,
} from './config.js';
import { AwsS3Engine } from './engine.js';

export type { AwsS3Config, AwsS3Role } from './config.js';
export { type AwsRevocationData, AwsS3Engine } from './engine.js';
export { addRevokedSession, REVOKED_POLICY_NAME, sessionPolicy } from './policy.js';

/** `aws-s3`: STS AssumeRole sessions limited to a bucket, a prefix and some actions by a session policy. */
export const awsS3Engine: EngineFactory<AwsS3Config, AwsS3Role> = {
  type: 'aws-s3',
  parseConfig: parseAwsS3Config,
  parseRole: parseAwsS3Role,
  open: (config) => new AwsS3Engine(config),
  redactConfig: redactAwsS3Config,
  checkRoleTtl(_role, ttl, maxTtl) {
    // The engine's own max_session_duration is checked at issue (the role does not know it).
    if (maxTtl > STS_MAX_SECONDS || ttl < STS_MIN_SECONDS)
      throw badRequest(
        maxTtl > STS_MAX_SECONDS ? 'TtlAboveStsMaximum' : 'TtlBelowStsMinimum',
        `STS sessions last ${STS_MIN_SECONDS}s to ${STS_MAX_SECONDS}s: ttl ${ttl}s / max ttl ${maxTtl}s do not fit`,
        'Example: --ttl 1h --max-ttl 1h (and at most the IAM role’s MaxSessionDuration).',
      );
  },
};
