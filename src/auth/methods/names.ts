import { badRequest } from '../../errors.js';

export const METHOD_NAME_PATTERN = '^[a-z][a-z0-9_-]{0,63}$';
export const ROLE_NAME_PATTERN = '^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$';
const METHOD_RE = new RegExp(METHOD_NAME_PATTERN);
const ROLE_RE = new RegExp(ROLE_NAME_PATTERN);

export function validateMethodName(name: string): string {
  if (!METHOD_RE.test(name)) {
    throw badRequest(
      'InvalidAuthMethodName',
      'An auth method name is 1-64 lower-case letters, digits, `_` or `-`, starting with a letter',
      'Examples: jwt, github, k8s-prod, approle.',
    );
  }
  return name;
}

export function validateRoleName(name: string): string {
  if (!ROLE_RE.test(name)) {
    throw badRequest(
      'InvalidLoginRoleName',
      'A login role name is 1-128 letters, digits, `_`, `.` or `-`',
      'Examples: training-job, ci.deploy.',
    );
  }
  return name;
}
