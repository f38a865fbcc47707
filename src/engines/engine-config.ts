import type { Selectable } from 'kysely';
import type { Barrier } from '../barrier/barrier.js';
import { badRequest, CustodyError, conflict, notFound } from '../errors.js';
import { validateEnvName } from '../kv/names.js';
import type { Storage } from '../storage/storage.js';
import type { EngineTable } from '../storage/tables.js';
import type { Engine, EngineFactory } from './engine.js';
import type { EngineInfo, EngineService } from './engine-service.js';
import { generatePassword } from './password.js';

/**
 * Mounted engines: their stored (encrypted) connection config, and the live instances opened
 * from it. Roles and static roles build on `row` and `open`.
 */

const NAME_RE = /^[a-z0-9][a-z0-9_-]{0,62}$/;
/** The admin password a rotate-root is setting, kept (sealed) in the stored config until it is done. */
const PENDING = 'pending_root_password';
const configAad = (env: string, name: string) => `custody:engine:${env}/${name}`;

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

/** The engine service's part for mounted engines, and what roles need of it. */
export interface EngineMounts
  extends Pick<
    EngineService,
    'configure' | 'list' | 'info' | 'remove' | 'open' | 'rotateRoot' | 'guardRemoval' | 'close'
  > {
  factoryFor(type: string): EngineFactory<any, any>;
  /** The engine's row; 404 EngineNotFound when it is not mounted. */
  row(env: string, name: string): Promise<Selectable<EngineTable>>;
}

export function createEngineMounts(
  storage: Storage,
  barrier: Barrier,
  factories: Record<string, EngineFactory<any, any>>,
): EngineMounts {
  const { db } = storage;
  const instances = new Map<string, { engine: Engine; updatedAt: number }>();
  const removalGuards: ((env: string, engine: string) => Promise<boolean>)[] = [];

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

  async function toInfo(r: Selectable<EngineTable>): Promise<EngineInfo> {
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

  async function open(env: string, name: string): Promise<Engine> {
    let r = await row(env, name);
    const key = `${env}/${name}`;
    const cached = instances.get(key);
    // updated_at changes on reconfigure and rotate-root (also by another broker node).
    if (cached && cached.updatedAt === r.updated_at) return cached.engine;
    if (cached) await cached.engine.close().catch(() => {});
    instances.delete(key);
    const f = factoryFor(r.type);
    let raw = await decryptConfig(r);
    if (typeof raw[PENDING] === 'string') {
      // A rotate-root did not finish (a crash, or it is running on another node): settle first.
      await settleRotation(r);
      r = await row(env, name);
      raw = await decryptConfig(r);
    }
    const engine = f.open(f.parseConfig(raw));
    instances.set(key, { engine, updatedAt: r.updated_at });
    return engine;
  }

  /**
   * After an unfinished rotate-root: the admin password that logs in — the stored one or the pending
   * one — becomes the stored config. Written only if the row is still as read (another node may just
   * have finished the rotation). When neither logs in, the pending password stays for a later try.
   */
  async function settleRotation(r: Selectable<EngineTable>): Promise<void> {
    const f = factoryFor(r.type);
    const { [PENDING]: pending, ...current } = await decryptConfig(r);
    for (const candidate of [current, { ...current, password: pending }]) {
      const engine = f.open(f.parseConfig(candidate));
      try {
        await engine.verify();
      } catch {
        continue;
      } finally {
        await engine.close().catch(() => {});
      }
      await db
        .updateTable('engines')
        .set({
          config: barrier.encrypt(JSON.stringify(candidate), configAad(r.env, r.name)),
          updated_at: Date.now(),
        })
        .where('env', '=', r.env)
        .where('name', '=', r.name)
        .where('config', '=', r.config)
        .execute();
      return;
    }
    throw new CustodyError(
      'EngineUnreachable',
      502,
      `Engine ${r.env}/${r.name}: a rotate-root did not finish and neither admin password logs in now`,
      'Check that the server is up; the next request tries both passwords again.',
    );
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

  return {
    factoryFor,
    row,
    open,

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
      let inUse = false;
      for (const guard of removalGuards) inUse ||= await guard(env, name);
      if (inUse) {
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

    guardRemoval(inUse) {
      removalGuards.push(inUse);
    },

    async rotateRoot(env, name) {
      const engine = await open(env, name);
      const r = await row(env, name);
      const current = await decryptConfig(r);
      const next = generatePassword(32);
      // Crash safety: the new password is stored (sealed) before the server changes, so a broker that
      // dies before the final store can still find out which password is in force (settleRotation).
      const pending = barrier.encrypt(JSON.stringify({ ...current, [PENDING]: next }), configAad(env, name));
      await db
        .updateTable('engines')
        .set({ config: pending })
        .where('env', '=', env)
        .where('name', '=', name)
        .where('config', '=', r.config)
        .execute();
      let config: Record<string, unknown>;
      try {
        config = await engine.rotateRoot(next);
      } catch (err) {
        // The change may or may not have happened (a lost answer): settle on what logs in.
        instances.delete(`${env}/${name}`);
        await engine.close().catch(() => {});
        await settleRotation(await row(env, name)).catch(() => {});
        throw err;
      }
      await storeConfig(env, name, r.type, config, false);
      return toInfo(await row(env, name));
    },

    async close() {
      await Promise.all([...instances.values()].map((i) => i.engine.close().catch(() => {})));
      instances.clear();
    },
  };
}
