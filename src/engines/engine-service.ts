import type { Selectable } from 'kysely';
import type { Barrier } from '../barrier/barrier.js';
import { badRequest, CustodyError, conflict, notFound } from '../errors.js';
import { validateEnvName } from '../kv/names.js';
import type { Storage } from '../storage/storage.js';
import type { EngineRoleTable } from '../storage/tables.js';
import type { Engine, EngineFactory } from './engine.js';
import { generatePassword } from './password.js';

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
  close(): Promise<void>;
}

const NAME_RE = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const DEFAULT_TTL = 3600;
const DEFAULT_MAX_TTL = 24 * 3600;
const configAad = (env: string, name: string) => `custody:engine:${env}/${name}`;
const staticAad = (env: string, engine: string, role: string) =>
  `custody:static-role:${env}/${engine}/${role}`;

export function validateEngineName(kind: 'engine' | 'role', name: string): string {
  if (!NAME_RE.test(name)) {
    throw badRequest(
      `Invalid${kind === 'engine' ? 'Engine' : 'Role'}Name`,
      `An ${kind} name is 1-63 lower-case letters, digits, _ or -`,
      'Example: warehouse, readonly.',
    );
  }
  return name;
}

export function createEngineService(
  storage: Storage,
  barrier: Barrier,
  factories: Record<string, EngineFactory<any, any>>,
): EngineService {
  const { db } = storage;
  const instances = new Map<string, { engine: Engine; updatedAt: number }>();

  function factoryFor(type: string): EngineFactory<any, any> {
    const f = factories[type];
    if (!f)
      throw badRequest(
        'UnknownEngineType',
        `No engine type ${type}`,
        `Types: ${Object.keys(factories).join(', ')}.`,
      );
    return f;
  }

  async function row(env: string, name: string) {
    validateEnvName(env);
    validateEngineName('engine', name);
    const r = await db
      .selectFrom('engines')
      .selectAll()
      .where('env', '=', env)
      .where('name', '=', name)
      .executeTakeFirst();
    if (!r)
      throw notFound(
        'EngineNotFound',
        `No engine ${env}/${name}`,
        `List engines with \`custody engine list ${env}\`.`,
      );
    return r;
  }

  async function decryptConfig(r: { env: string; name: string; config: string }) {
    return JSON.parse((await barrier.decrypt(r.config, configAad(r.env, r.name))).toString('utf8')) as Record<
      string,
      unknown
    >;
  }

  async function toInfo(r: Awaited<ReturnType<typeof row>>): Promise<EngineInfo> {
    const f = factoryFor(r.type);
    return {
      env: r.env,
      name: r.name,
      type: r.type,
      config: f.redactConfig(await decryptConfig(r)),
      createdAt: r.created_at,
      updatedAt: r.updated_at,
    };
  }

  const toRole = (r: Selectable<EngineRoleTable>): EngineRole => ({
    env: r.env,
    engine: r.engine,
    name: r.name,
    kind: r.kind,
    config: JSON.parse(r.config) as Record<string, unknown>,
    ttlSeconds: r.ttl_seconds,
    maxTtlSeconds: r.max_ttl_seconds,
    rotationPeriodSeconds: r.rotation_period_seconds,
    lastRotatedAt: r.last_rotated_at,
  });

  async function roleRow(env: string, engine: string, role: string) {
    validateEngineName('role', role);
    const r = await db
      .selectFrom('engine_roles')
      .selectAll()
      .where('env', '=', env)
      .where('engine', '=', engine)
      .where('name', '=', role)
      .executeTakeFirst();
    if (!r)
      throw notFound(
        'RoleNotFound',
        `No role ${env}/${engine}/${role}`,
        `List roles with \`custody engine role list ${env}/${engine}\`.`,
      );
    return r;
  }

  async function open(env: string, name: string): Promise<Engine> {
    const r = await row(env, name);
    const key = `${env}/${name}`;
    const cached = instances.get(key);
    // updated_at changes on reconfigure and rotate-root (also by another broker node).
    if (cached && cached.updatedAt === r.updated_at) return cached.engine;
    if (cached) await cached.engine.close().catch(() => {});
    const f = factoryFor(r.type);
    const engine = f.open(f.parseConfig(await decryptConfig(r)));
    instances.set(key, { engine, updatedAt: r.updated_at });
    return engine;
  }

  async function storeConfig(
    env: string,
    name: string,
    type: string,
    config: Record<string, unknown>,
    create: boolean,
  ) {
    const now = Date.now();
    const ct = barrier.encrypt(JSON.stringify(config), configAad(env, name));
    if (create) {
      await db
        .insertInto('engines')
        .values({ env, name, type, config: ct, created_at: now, updated_at: now })
        .onConflict((oc) => oc.columns(['env', 'name']).doUpdateSet({ type, config: ct, updated_at: now }))
        .execute();
    } else {
      await db
        .updateTable('engines')
        .set({ config: ct, updated_at: now })
        .where('env', '=', env)
        .where('name', '=', name)
        .execute();
    }
  }

  async function rotateStaticRow(r: Selectable<EngineRoleTable>): Promise<EngineRole> {
    const engine = await open(r.env, r.engine);
    const { username } = JSON.parse(r.config) as { username: string };
    const password = generatePassword();
    await engine.setPassword(username, password);
    const now = Date.now();
    await db
      .updateTable('engine_roles')
      .set({
        secret: barrier.encrypt(password, staticAad(r.env, r.engine, r.name)),
        last_rotated_at: now,
        updated_at: now,
      })
      .where('env', '=', r.env)
      .where('engine', '=', r.engine)
      .where('name', '=', r.name)
      .execute();
    return toRole({ ...r, last_rotated_at: now });
  }

  return {
    async configure(env, name, type, rawConfig) {
      validateEnvName(env);
      validateEngineName('engine', name);
      const envRow = await db
        .selectFrom('environments')
        .select('name')
        .where('name', '=', env)
        .executeTakeFirst();
      if (!envRow)
        throw notFound('EnvironmentNotFound', `Environment ${env} does not exist`, 'See `custody env list`.');
      const f = factoryFor(type);
      const config = f.parseConfig(rawConfig);
      const engine = f.open(config);
      try {
        await engine.verify();
      } finally {
        await engine.close().catch(() => {});
      }
      const existing = await db
        .selectFrom('engines')
        .select('type')
        .where('env', '=', env)
        .where('name', '=', name)
        .executeTakeFirst();
      if (existing && existing.type !== type) {
        throw conflict(
          'EngineTypeMismatch',
          `Engine ${env}/${name} is a ${existing.type} engine`,
          'Remove it first, or pick another name.',
        );
      }
      await storeConfig(env, name, type, config as Record<string, unknown>, true);
      return toInfo(await row(env, name));
    },

    async list(env) {
      validateEnvName(env);
      const rows = await db
        .selectFrom('engines')
        .selectAll()
        .where('env', '=', env)
        .orderBy('name')
        .execute();
      return Promise.all(rows.map(toInfo));
    },

    info: async (env, name) => toInfo(await row(env, name)),

    async remove(env, name) {
      await row(env, name);
      const live = await db
        .selectFrom('leases')
        .select('id')
        .where('env', '=', env)
        .where('engine', '=', name)
        .where('state', 'in', ['creating', 'active', 'revoking', 'revoke-failed'])
        .executeTakeFirst();
      if (live) {
        throw conflict(
          'EngineHasLeases',
          `Engine ${env}/${name} still has unrevoked leases`,
          `Revoke them first: \`custody lease revoke --prefix ${env}/${name}/\`.`,
        );
      }
      await db.deleteFrom('engine_roles').where('env', '=', env).where('engine', '=', name).execute();
      await db.deleteFrom('engines').where('env', '=', env).where('name', '=', name).execute();
      const cached = instances.get(`${env}/${name}`);
      instances.delete(`${env}/${name}`);
      await cached?.engine.close().catch(() => {});
    },

    open,

    async writeRole(env, engine, role, input) {
      const r = await row(env, engine);
      validateEngineName('role', role);
      const config = factoryFor(r.type).parseRole(input.config) as Record<string, unknown>;
      const ttl = input.ttlSeconds ?? DEFAULT_TTL;
      const maxTtl = input.maxTtlSeconds ?? Math.max(DEFAULT_MAX_TTL, ttl);
      if (ttl < 1 || maxTtl < ttl)
        throw badRequest(
          'InvalidTtl',
          'ttl must be at least 1s and no longer than max ttl',
          'Example: --ttl 1h --max-ttl 24h.',
        );
      const now = Date.now();
      const values = {
        kind: 'dynamic' as const,
        config: JSON.stringify(config),
        ttl_seconds: ttl,
        max_ttl_seconds: maxTtl,
        updated_at: now,
      };
      await db
        .insertInto('engine_roles')
        .values({
          env,
          engine,
          name: role,
          ...values,
          secret: null,
          rotation_period_seconds: null,
          last_rotated_at: null,
          created_at: now,
        })
        .onConflict((oc) => oc.columns(['env', 'engine', 'name']).doUpdateSet(values))
        .execute();
      return toRole(await roleRow(env, engine, role));
    },

    readRole: async (env, engine, role) => toRole(await roleRow(env, engine, role)),

    async listRoles(env, engine) {
      await row(env, engine);
      return (
        await db
          .selectFrom('engine_roles')
          .selectAll()
          .where('env', '=', env)
          .where('engine', '=', engine)
          .orderBy('name')
          .execute()
      ).map(toRole);
    },

    async deleteRole(env, engine, role) {
      await roleRow(env, engine, role);
      await db
        .deleteFrom('engine_roles')
        .where('env', '=', env)
        .where('engine', '=', engine)
        .where('name', '=', role)
        .execute();
    },

    async writeStaticRole(env, engine, role, { username, rotationPeriodSeconds }) {
      await row(env, engine);
      validateEngineName('role', role);
      if (!/^[A-Za-z0-9_.@-]{1,63}$/.test(username))
        throw badRequest(
          'InvalidUsername',
          'The static user name has characters that are not allowed',
          'Letters, digits, _ . @ - up to 63.',
        );
      if (!Number.isInteger(rotationPeriodSeconds) || rotationPeriodSeconds < 60) {
        throw badRequest(
          'InvalidDuration',
          'The rotation period is at least 60 seconds',
          'Example: --rotation-period 24h.',
        );
      }
      const now = Date.now();
      const values = {
        kind: 'static' as const,
        config: JSON.stringify({ username }),
        ttl_seconds: rotationPeriodSeconds,
        max_ttl_seconds: rotationPeriodSeconds,
        rotation_period_seconds: rotationPeriodSeconds,
        updated_at: now,
      };
      await db
        .insertInto('engine_roles')
        .values({ env, engine, name: role, ...values, secret: null, last_rotated_at: null, created_at: now })
        .onConflict((oc) => oc.columns(['env', 'engine', 'name']).doUpdateSet(values))
        .execute();
      // Take ownership at once: from now on only Custody knows the password.
      return rotateStaticRow(await roleRow(env, engine, role));
    },

    async staticCredentials(env, engine, role) {
      const r = await roleRow(env, engine, role);
      if (r.kind !== 'static' || !r.secret)
        throw badRequest(
          'NotStaticRole',
          `${env}/${engine}/${role} is not a static role`,
          'Issue dynamic credentials with `custody creds issue`.',
        );
      const password = (await barrier.decrypt(r.secret, staticAad(env, engine, role))).toString('utf8');
      return { role: toRole(r), username: (JSON.parse(r.config) as { username: string }).username, password };
    },

    async rotateStatic(env, engine, role) {
      const r = await roleRow(env, engine, role);
      if (r.kind !== 'static')
        throw badRequest(
          'NotStaticRole',
          `${env}/${engine}/${role} is not a static role`,
          'Only static roles rotate.',
        );
      return rotateStaticRow(r);
    },

    async dueStaticRoles(now = Date.now()) {
      const rows = await db.selectFrom('engine_roles').selectAll().where('kind', '=', 'static').execute();
      return rows
        .filter((r) => (r.last_rotated_at ?? 0) + (r.rotation_period_seconds ?? 0) * 1000 <= now)
        .map(toRole);
    },

    async rotateRoot(env, name) {
      const engine = await open(env, name);
      const r = await row(env, name);
      const config = await engine.rotateRoot();
      await storeConfig(env, name, r.type, config, false);
      return toInfo(await row(env, name));
    },

    async close() {
      await Promise.all([...instances.values()].map((i) => i.engine.close().catch(() => {})));
      instances.clear();
    },
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
