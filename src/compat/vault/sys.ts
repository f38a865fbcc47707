import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Environment } from '../../kv/types.js';
import type { VaultDoor } from './door.js';
import { DEFAULT_KV_MOUNT, kvMountEnv } from './mounts.js';
import { envelope, noHandler, vaultOperation as op } from './wire.js';

type Json = Record<string, unknown>;

/** `?activecode=…&sealedcode=…&uninitcode=…` overrides, as Vault allows. */
function statusCode(query: Json, name: string, fallback: number): number {
  const raw = query[name];
  if (typeof raw !== 'string' || !/^[0-9]{3}$/.test(raw)) return fallback;
  const n = Number(raw);
  return n >= 200 && n <= 599 ? n : fallback;
}

/**
 * `GET|HEAD sys/health`. Like the native health route it is unauthenticated and not audited (probes
 * poll it every few seconds) and reads only the seal state; it answers while sealed.
 */
export function health(door: VaultDoor, req: FastifyRequest, reply: FastifyReply) {
  const s = door.services.operator.status();
  const q = (req.query ?? {}) as Json;
  const status = !s.initialized
    ? statusCode(q, 'uninitcode', 501)
    : s.sealed
      ? statusCode(q, 'sealedcode', 503)
      : statusCode(q, 'activecode', 200);
  return reply.status(status).send({
    initialized: s.initialized,
    sealed: s.sealed,
    standby: false,
    performance_standby: false,
    replication_performance_mode: 'disabled',
    replication_dr_mode: 'disabled',
    server_time_utc: Math.floor(Date.now() / 1000),
    version: door.services.version,
    cluster_name: 'custody',
    cluster_id: '',
  });
}

/** `GET sys/seal-status` (node-vault's `status()`); unauthenticated like the native one. */
export function sealStatus(door: VaultDoor) {
  const s = door.services.operator.status();
  return {
    type: s.mode === 'shamir' ? 'shamir' : 'custody-file',
    initialized: s.initialized,
    sealed: s.sealed,
    t: s.threshold,
    n: s.shares,
    progress: s.progress,
    nonce: '',
    version: door.services.version,
    build_date: '',
    migration: false,
    recovery_seal: false,
    storage_type: door.services.storage.kind,
    cluster_name: 'custody',
    cluster_id: '',
  };
}

const kvMount = (env: string, description: string) => ({
  type: 'kv',
  description,
  accessor: `kv_${env}`,
  config: { default_lease_ttl: 0, max_lease_ttl: 0, force_no_cache: false },
  options: { version: '2' },
  local: false,
  seal_wrap: false,
  external_entropy_access: false,
  plugin_version: '',
  running_plugin_version: '',
  uuid: '',
});

function mountTable(envs: Environment[], defaultEnv: string): Json {
  const table: Json = {};
  if (envs.some((e) => e.name === defaultEnv)) {
    table[`${DEFAULT_KV_MOUNT}/`] = kvMount(defaultEnv, `Custody environment ${defaultEnv} (the default)`);
  }
  for (const e of envs) {
    if (kvMountEnv(e.name, defaultEnv) === e.name && e.name !== DEFAULT_KV_MOUNT)
      table[`${e.name}/`] = kvMount(e.name, `Custody environment ${e.name}`);
  }
  table['sys/'] = {
    type: 'system',
    description: 'system endpoints',
    accessor: 'system',
    config: { default_lease_ttl: 0, max_lease_ttl: 0, force_no_cache: false },
    options: null,
    local: false,
    seal_wrap: true,
    external_entropy_access: false,
    uuid: '',
  };
  return table;
}

/**
 * `GET sys/mounts`: one KV v2 mount per environment, plus `secret/` for the default one. Needs what
 * listing environments natively needs (`env/read` broker-wide: the root token).
 */
export async function mounts(door: VaultDoor, req: FastifyRequest) {
  const { pipeline, kv } = door.services;
  const envs = await pipeline.run(op(req, { action: 'env/read', resource: '' }), () => kv.listEnvironments());
  const table = mountTable(envs, door.defaultEnv);
  // hvac reads data["secret/"]; older clients read the top level.
  return { ...table, ...envelope(req, { data: table, mount_type: 'system' }) };
}

/**
 * `GET sys/internal/ui/mounts/<path>`: which mount a path is in (clients use it to tell KV v1 from
 * v2). Needs `env/read` on that environment, which any token of the environment has.
 */
export async function uiMount(door: VaultDoor, req: FastifyRequest, path: string) {
  const mount = path.split('/')[0];
  const env = kvMountEnv(mount, door.defaultEnv);
  if (!env) throw noHandler(req.method, `sys/internal/ui/mounts/${path}`);
  const { pipeline, kv } = door.services;
  await pipeline.run(op(req, { action: 'env/read', resource: env }), () => kv.getEnvironment(env));
  return envelope(req, {
    data: { ...kvMount(env, `Custody environment ${env}`), path: `${mount}/` },
    mount_type: 'system',
  });
}
