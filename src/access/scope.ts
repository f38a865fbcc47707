import { badRequest } from '../errors.js';
import { validateEnvName, validateSecretName } from '../kv/names.js';
import { ACTION_KIND, type Action } from './actions.js';

/** Where an assignment applies, always inside exactly one environment. */
export interface Scope {
  env: string;
  kind: 'env' | 'secrets' | 'engine';
  /** Secret-name prefix or `ENGINE[/ROLE]`; empty for an env scope. */
  path: string;
}

const SEGMENT = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

/**
 * Parses `ENV`, `ENV/secrets/PREFIX` or `ENV/engines/ENGINE[/ROLE]`. Prefixes match whole
 * segments: `prod/secrets/db` covers `db` and `db/…`, never `db-admin`.
 */
export function parseScope(text: string): Scope {
  const hint = 'Scopes: ENV, ENV/secrets/PREFIX or ENV/engines/ENGINE[/ROLE], e.g. prod/secrets/db.';
  const parts = text.split('/');
  const env = validateEnvName(parts[0]);
  if (parts.length === 1) return { env, kind: 'env', path: '' };
  const rest = parts.slice(2).join('/');
  if (parts[1] === 'secrets' && parts.length > 2)
    return { env, kind: 'secrets', path: validateSecretName(rest) };
  if (
    parts[1] === 'engines' &&
    (parts.length === 3 || parts.length === 4) &&
    parts.slice(2).every((p) => SEGMENT.test(p))
  ) {
    return { env, kind: 'engine', path: rest };
  }
  throw badRequest('InvalidScope', `${text} is not a scope`, hint);
}

export const formatScope = (s: Scope) =>
  s.kind === 'env' ? s.env : `${s.env}/${s.kind === 'secrets' ? 'secrets' : 'engines'}/${s.path}`;

/** The scope an operation's resource string denotes, given its action. */
export function resourceScope(action: string, resource: string): Scope | null {
  const slash = resource.indexOf('/');
  const env = slash < 0 ? resource : resource.slice(0, slash);
  if (!env) return null;
  const path = slash < 0 ? '' : resource.slice(slash + 1);
  const kind = ACTION_KIND[action as Action] ?? 'env';
  if (!path) return { env, kind: 'env', path: '' };
  return { env, kind: kind === 'env' ? 'env' : kind, path };
}

const within = (path: string, prefix: string) => path === prefix || path.startsWith(`${prefix}/`);

/** Whether an assignment at `scope` covers `target` for `action`. */
export function covers(scope: Scope, action: string, target: Scope): boolean {
  if (scope.env !== target.env) return false;
  if (scope.kind === 'env') return true;
  if (ACTION_KIND[action as Action] !== scope.kind) return false;
  if (target.kind === 'env') return false;
  return target.kind === scope.kind && within(target.path, scope.path);
}
