/**
 * How Vault mount paths map onto Custody environments and engines (see README.md):
 *
 * - KV v2 mount `secret/` → the default environment; KV v2 mount `<env>/` → environment `<env>`.
 * - Database mount `<engine>/creds/<role>` → engine `<engine>` of the default environment;
 *   `<env>/<engine>/creds/<role>` → engine `<engine>` of `<env>`; `database/creds/<role>` when the
 *   default environment has no engine called `database` → the one database engine that has `<role>`.
 * - Auth mount `auth/<method>/login` → method `<method>` of the default environment;
 *   `auth/<env>/<method>/login` → method `<method>` of `<env>`.
 */

export const DEFAULT_KV_MOUNT = 'secret';
export const DATABASE_ALIAS = 'database';
/** Engine types the `database/` alias considers. */
export const DATABASE_TYPES: ReadonlySet<string> = new Set(['postgresql', 'mysql']);
/** The KV v2 sub-paths after the mount name. */
export const KV_V2_PATHS: ReadonlySet<string> = new Set([
  'data',
  'metadata',
  'delete',
  'undelete',
  'destroy',
  'config',
  'subkeys',
]);
/** Vault's own top-level paths: no environment can be reached under these names. */
export const RESERVED_MOUNTS: ReadonlySet<string> = new Set(['sys', 'auth', 'identity', 'cubbyhole']);

const ENV_RE = /^[a-z][a-z0-9-]{0,31}$/;
const ENGINE_RE = /^[a-z0-9][a-z0-9_-]{0,62}$/;

export const isEnvName = (s: string) => ENV_RE.test(s) && !RESERVED_MOUNTS.has(s);
export const isEngineName = (s: string) => ENGINE_RE.test(s);

/** The environment a KV mount stands for, or null when the name cannot be one. */
export function kvMountEnv(mount: string, defaultEnv: string): string | null {
  if (mount === DEFAULT_KV_MOUNT) return defaultEnv;
  return isEnvName(mount) ? mount : null;
}

export type VaultRoute =
  | { kind: 'kv'; mount: string; env: string; op: string; path: string }
  | { kind: 'creds'; mount: string; env: string; engine: string; role: string; explicitEnv: boolean };

/** Classifies a path below `/v1/` that is not under `sys/` or `auth/`; null = no such route. */
export function classify(path: string, defaultEnv: string): VaultRoute | null {
  const parts = path.split('/');
  if (parts.length >= 2 && KV_V2_PATHS.has(parts[1])) {
    const env = kvMountEnv(parts[0], defaultEnv);
    if (env === null) return null;
    return { kind: 'kv', mount: parts[0], env, op: parts[1], path: parts.slice(2).join('/') };
  }
  if (parts.length === 3 && parts[1] === 'creds' && isEngineName(parts[0]) && parts[2] !== '') {
    return {
      kind: 'creds',
      mount: parts[0],
      env: defaultEnv,
      engine: parts[0],
      role: parts[2],
      explicitEnv: false,
    };
  }
  if (
    parts.length === 4 &&
    parts[2] === 'creds' &&
    isEnvName(parts[0]) &&
    isEngineName(parts[1]) &&
    parts[3] !== ''
  ) {
    return {
      kind: 'creds',
      mount: `${parts[0]}/${parts[1]}`,
      env: parts[0],
      engine: parts[1],
      role: parts[3],
      explicitEnv: true,
    };
  }
  return null;
}

/** `auth/<method>/login` or `auth/<env>/<method>/login` (the part after `auth/`, without `/login`). */
export function authMount(mount: string, defaultEnv: string): { env: string; method: string } | null {
  const parts = mount.split('/');
  if (parts.length === 1 && parts[0] !== '') return { env: defaultEnv, method: parts[0] };
  if (parts.length === 2 && isEnvName(parts[0]) && parts[1] !== '')
    return { env: parts[0], method: parts[1] };
  return null;
}
