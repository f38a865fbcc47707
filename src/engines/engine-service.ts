import type { Barrier } from '../barrier/barrier.js';
import { CustodyError } from '../errors.js';
import type { Storage } from '../storage/storage.js';
import type { Engine, EngineFactory } from './engine.js';
import { createEngineMounts } from './engine-config.js';
import { createEngineRoles } from './engine-roles.js';
import { createEngineStaticRoles } from './engine-static-roles.js';

export { validateEngineName } from './engine-config.js';

export interface EngineInfo {
  env: string;
  name: string;
  type: string;
  config: Record<string, unknown>;
  createdAt: number;
  updatedAt: number;
}

export interface EngineRole {
  env: string;
  engine: string;
  name: string;
  kind: 'dynamic' | 'static';
  /** Parsed by the engine's factory (dynamic) or `{username}` (static). */
  config: Record<string, unknown>;
  ttlSeconds: number;
  maxTtlSeconds: number;
  rotationPeriodSeconds: number | null;
  lastRotatedAt: number | null;
}

export interface RoleInput {
  ttlSeconds?: number;
  maxTtlSeconds?: number;
  config: Record<string, unknown>;
}

/** Mounted engines per environment, their roles and static roles. Knows nothing of lease timing. */
export interface EngineService {
  configure(env: string, name: string, type: string, rawConfig: Record<string, unknown>): Promise<EngineInfo>;
  list(env: string): Promise<EngineInfo[]>;
  info(env: string, name: string): Promise<EngineInfo>;
  remove(env: string, name: string): Promise<void>;
  /** The live engine instance (opened lazily from its stored, encrypted config). */
  open(env: string, name: string): Promise<Engine>;
  writeRole(env: string, engine: string, role: string, input: RoleInput): Promise<EngineRole>;
  readRole(env: string, engine: string, role: string): Promise<EngineRole>;
  listRoles(env: string, engine: string): Promise<EngineRole[]>;
  deleteRole(env: string, engine: string, role: string): Promise<void>;
  writeStaticRole(
    env: string,
    engine: string,
    role: string,
    input: { username: string; rotationPeriodSeconds: number },
  ): Promise<EngineRole>;
  /** The current password of a static role's user. */
  staticCredentials(
    env: string,
    engine: string,
    role: string,
  ): Promise<{ role: EngineRole; username: string; password: string }>;
  rotateStatic(env: string, engine: string, role: string): Promise<EngineRole>;
  /** Static roles whose rotation period has passed. */
  dueStaticRoles(now?: number): Promise<EngineRole[]>;
  rotateRoot(env: string, engine: string): Promise<EngineInfo>;
  /**
   * `inUse` is asked before an engine is removed (the lease service: unfinished leases); the engine
   * domain does not read other domains' tables.
   */
  guardRemoval(inUse: (env: string, engine: string) => Promise<boolean>): void;
  close(): Promise<void>;
}

/**
 * One service over three parts: mounted engines and their live instances (engine-config.ts),
 * dynamic roles (engine-roles.ts), and static roles with their rotation (engine-static-roles.ts).
 */
export function createEngineService(
  storage: Storage,
  barrier: Barrier,
  factories: Record<string, EngineFactory<any, any>>,
): EngineService {
  const mounts = createEngineMounts(storage, barrier, factories);
  const roles = createEngineRoles(storage, mounts);
  const statics = createEngineStaticRoles(storage, barrier, mounts, roles);
  return {
    configure: mounts.configure,
    list: mounts.list,
    info: mounts.info,
    remove: mounts.remove,
    open: mounts.open,
    writeRole: roles.writeRole,
    readRole: roles.readRole,
    listRoles: roles.listRoles,
    deleteRole: roles.deleteRole,
    writeStaticRole: statics.writeStaticRole,
    staticCredentials: statics.staticCredentials,
    rotateStatic: statics.rotateStatic,
    dueStaticRoles: statics.dueStaticRoles,
    rotateRoot: mounts.rotateRoot,
    guardRemoval: mounts.guardRemoval,
    close: mounts.close,
  };
}

export function engineError(what: string, err: unknown): CustodyError {
  if (err instanceof CustodyError) return err;
  return new CustodyError(
    'EngineError',
    502,
    `${what} failed on the engine's backend`,
    'Check the engine with `custody engine show`; the broker log has the backend error.',
  );
}
