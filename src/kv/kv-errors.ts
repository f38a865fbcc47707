import { badRequest, CustodyError, conflict, notFound } from '../errors.js';

export const envNotFound = (env: string) =>
  notFound('EnvironmentNotFound', `Environment ${env} does not exist`, 'List them with `custody env list`.');
export const secretNotFound = (env: string, name: string) =>
  notFound(
    'SecretNotFound',
    `Secret ${env}/${name} does not exist`,
    `List secrets with \`custody kv list ${env}\`.`,
  );
export const versionNotFound = (env: string, name: string, version: string) =>
  notFound(
    'VersionNotFound',
    `Secret ${env}/${name} has no version ${version}`,
    `List versions with \`custody kv versions ${env}/${name}\`.`,
  );
export const secretDeleted = (env: string, name: string) =>
  conflict(
    'SecretDeleted',
    `Secret ${env}/${name} is deleted and awaiting purge`,
    `Recover it with \`custody kv recover ${env}/${name}\` or purge it with \`custody kv purge ${env}/${name}\`.`,
  );
export const deletedNotFound = (env: string, name: string) =>
  notFound(
    'DeletedSecretNotFound',
    `No deleted secret ${env}/${name}`,
    `See \`custody kv list-deleted ${env}\`.`,
  );
export const casMismatch = (expected: number, actual: number) =>
  new CustodyError(
    'CasMismatch',
    409,
    `Check-and-set failed: expected current version ${expected}, found ${actual}`,
    'Someone else wrote first; read the latest version and retry.',
  );
export const versionUnusable = (
  code: 'SecretDisabled' | 'SecretExpired' | 'SecretNotYetValid',
  what: string,
) =>
  new CustodyError(
    code,
    403,
    `${what}`,
    code === 'SecretDisabled'
      ? 'Enable the version with `custody kv update --enabled true`, or read another version.'
      : "Adjust the version's --not-before/--expires with `custody kv update`, or read another version.",
  );
export const invalidAttribute = (message: string, hint: string) =>
  badRequest('InvalidAttribute', message, hint);
