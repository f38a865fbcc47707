/** Wire shapes of the native auth API (snake_case, as returned), its URLs and their table rows. */

export interface AuthMethod {
  env: string;
  name: string;
  type: string;
  config: Record<string, unknown>;
  created_at: string;
  updated_at: string;
}
export interface LoginRole {
  env: string;
  method: string;
  name: string;
  type: string;
  config: Record<string, unknown>;
  created_at: string;
  updated_at: string;
}

const METHOD_FIELDS = ['env', 'name', 'type', 'config', 'created_at', 'updated_at'];
const ROLE_FIELDS = ['env', 'method', 'name', 'type', 'config', 'created_at', 'updated_at'];

export const methodUrl = (env: string, method?: string) =>
  `/v1/auth/methods/${encodeURIComponent(env)}${method === undefined ? '' : `/${encodeURIComponent(method)}`}`;
export const roleUrl = ([env, method, role]: string[]) =>
  `${methodUrl(env, method)}/roles/${encodeURIComponent(role)}`;

/** A method's config for a table: key lists joined, the CA shown as a size, not its text. */
function configRows(config: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(config)) {
    if (k === 'public_keys' && Array.isArray(v)) out[k] = v.length ? `${v.length} PEM key(s)` : null;
    else if (k === 'ca_pem') out[k] = typeof v === 'string' && v ? `PEM (${v.length} bytes)` : null;
    else out[k] = v;
  }
  return out;
}

/** `{ ...fields, config.* }` as `key: value` lines, so nested settings read one per line. */
function flatten(obj: { config: Record<string, unknown> }, fields: string[]): Record<string, unknown> {
  const pick = (names: string[]) => Object.fromEntries(names.map((f) => [f, (obj as any)[f]]));
  const times = ['created_at', 'updated_at'];
  return {
    ...pick(fields.filter((f) => f !== 'config' && !times.includes(f))),
    ...configRows(obj.config),
    ...pick(times),
  };
}

export const methodRows = (m: AuthMethod) => flatten(m, METHOD_FIELDS);
export const roleRows = (r: LoginRole) => flatten(r, ROLE_FIELDS);
