/** Wire shapes of the native engines API (snake_case, as returned), its URLs and their table rows. */

export interface Engine {
  env: string;
  name: string;
  type: string;
  config: Record<string, unknown>;
  created_at: string;
  updated_at: string;
}
export interface EngineRole {
  env: string;
  engine: string;
  name: string;
  kind: string;
  config: Record<string, unknown>;
  ttl: number;
  max_ttl: number;
  rotation_period: number | null;
  last_rotated_at: string | null;
}

const ROLE_FIELDS = ['env', 'engine', 'name', 'kind', 'ttl', 'max_ttl', 'rotation_period', 'last_rotated_at'];

const enc = encodeURIComponent;
export const engineUrl = (env: string, engine?: string) =>
  `/v1/engines/${enc(env)}${engine === undefined ? '' : `/${enc(engine)}`}`;
export const roleUrl = ([env, engine, role]: string[], kind: 'roles' | 'static-roles' = 'roles') =>
  `${engineUrl(env, engine)}/${kind}/${enc(role)}`;

/** An engine with its (password-free) config spread out, one setting per line. */
export const engineRows = (e: Engine) => ({
  env: e.env,
  name: e.name,
  type: e.type,
  ...e.config,
  created_at: e.created_at,
  updated_at: e.updated_at,
});
export const roleRows = (r: EngineRole) => ({
  ...Object.fromEntries(ROLE_FIELDS.map((f) => [f, (r as any)[f]])),
  ...Object.fromEntries(
    Object.entries(r.config).map(([k, v]) => [k, Array.isArray(v) ? v.map(grantCell) : v]),
  ),
});
const grantCell = (g: unknown) =>
  g && typeof g === 'object' ? Object.values(g as Record<string, unknown>).join('=') : g;
