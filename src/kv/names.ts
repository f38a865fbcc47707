import { badRequest } from '../errors.js';

const ENV_RE = /^[a-z][a-z0-9-]{0,31}$/;
// A segment starts with a letter, digit or underscore, so `.` and `..` can never be segments.
const SEGMENT_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;
export const MAX_NAME_LENGTH = 255;
const MAX_SEGMENTS = 16;

export function validateEnvName(env: string): string {
  if (!ENV_RE.test(env)) {
    throw badRequest(
      'InvalidEnvironmentName',
      'An environment name is 1-32 lower-case letters, digits or dashes, starting with a letter',
      'Examples: dev, test, prod, team-a-prod.',
    );
  }
  return env;
}

/** Secret names are `/`-separated segments, e.g. `db/password`; the environment is not part of the name. */
export function validateSecretName(name: string): string {
  const hint = 'Use letters, digits, `_`, `-`, `.` in `/`-separated segments, e.g. `db/password`.';
  if (name.length === 0) throw badRequest('InvalidSecretName', 'The secret name is empty', hint);
  if (name.length > MAX_NAME_LENGTH) {
    throw badRequest(
      'InvalidSecretName',
      `The secret name is longer than ${MAX_NAME_LENGTH} characters`,
      hint,
    );
  }
  const segments = name.split('/');
  if (segments.length > MAX_SEGMENTS) {
    throw badRequest('InvalidSecretName', `The secret name has more than ${MAX_SEGMENTS} segments`, hint);
  }
  for (const seg of segments) {
    if (seg === '' || seg === '.' || seg === '..') {
      throw badRequest('InvalidSecretName', 'The secret name has an empty, `.` or `..` segment', hint);
    }
    if (!SEGMENT_RE.test(seg)) {
      throw badRequest('InvalidSecretName', 'The secret name contains a character that is not allowed', hint);
    }
  }
  return name;
}

/** Splits `ENV/NAME` (as typed on the command line) into its parts, validating both. */
export function parseSecretRef(ref: string): { env: string; name: string } {
  const slash = ref.indexOf('/');
  if (slash <= 0) {
    throw badRequest('InvalidSecretRef', 'A secret reference is ENV/NAME', 'Example: prod/db/password.');
  }
  return { env: validateEnvName(ref.slice(0, slash)), name: validateSecretName(ref.slice(slash + 1)) };
}
