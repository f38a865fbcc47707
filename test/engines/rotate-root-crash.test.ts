import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { Barrier } from '../../src/barrier/barrier.js';
import type { Engine } from '../../src/engines/engine.js';
import { metaStore } from '../../src/storage/meta-store.js';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { type PostgresCluster, startPostgres } from '../support/postgres.js';

/**
 * Rotate-root that does not finish: the new admin password is stored (sealed, pending) before the
 * server changes, so whether the broker loses the answer or dies before the final store, the engine
 * settles on the password that logs in, and never locks itself out.
 */
describe('engine rotate-root: crash safety (real PostgreSQL)', () => {
  let pgc: PostgresCluster;
  let b: TestBroker;
  let adminPassword: string;
  const AAD = 'custody:engine:prod/warehouse';

  const adminLogin = async (password: string) => {
    const c = new pg.Client({
      host: pgc.host,
      port: pgc.port,
      user: 'custody_admin',
      password,
      database: 'app',
    });
    c.on('error', () => {});
    try {
      await c.connect();
      await c.end();
      return true;
    } catch {
      return false;
    }
  };
  const issue = async () => {
    const r = await b.call('POST', '/v1/creds/prod/warehouse/reader', { body: { ttl: '5m' } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    await b.call('POST', '/v1/leases/revoke', { body: { lease_id: r.body.lease_id } });
  };
  const liveEngine = () => b.broker.services.engines.open('prod', 'warehouse');
  /** The stored config, read the way an operator's tooling would: through the unsealed barrier. */
  const storedConfig = async () => {
    const row = await b.broker.services.storage.db
      .selectFrom('engines')
      .select('config')
      .where('env', '=', 'prod')
      .where('name', '=', 'warehouse')
      .executeTakeFirstOrThrow();
    const barrier = new Barrier(metaStore(b.broker.services.storage));
    await barrier.load();
    await barrier.unsealWithRootKey(
      Buffer.from((await readFile(path.join(b.dataDir, 'unseal.key'), 'utf8')).trim(), 'base64'),
    );
    return {
      barrier,
      config: JSON.parse((await barrier.decrypt(row.config, AAD)).toString('utf8')) as Record<
        string,
        unknown
      >,
    };
  };

  before(async () => {
    pgc = await startPostgres();
    const appUrl = await pgc.createDatabase('app');
    adminPassword = `adm-${Date.now()}-${Math.random().toString(36).slice(2)}`;
    const c = new pg.Client({ connectionString: appUrl });
    await c.connect();
    await c.query(
      `create table t (v text);
       create role custody_admin login createrole password ${pg.escapeLiteral(adminPassword)};
       grant select on t to custody_admin with grant option;`,
    );
    await c.end();
    b = await startTestBroker();
    await b.call('POST', '/v1/envs', { body: { name: 'prod' } });
    const conf = await b.call('PUT', '/v1/engines/prod/warehouse', {
      body: {
        type: 'postgresql',
        config: {
          connection_url: `postgres://${pgc.host}:${pgc.port}/app`,
          username: 'custody_admin',
          password: adminPassword,
        },
      },
    });
    assert.equal(conf.status, 200, JSON.stringify(conf.body));
    const role = await b.call('PUT', '/v1/engines/prod/warehouse/roles/reader', {
      body: { ttl: '1h', config: { grants: ['SELECT ON t'] } },
    });
    assert.equal(role.status, 200, JSON.stringify(role.body));
  });

  after(async () => {
    await b?.stop();
    await pgc?.stop();
  });

  it('the answer is lost after the server changed: the engine settles on the new password', async () => {
    const engine: Engine = await liveEngine();
    const real = engine.rotateRoot.bind(engine);
    engine.rotateRoot = async (next) => {
      await real(next);
      throw new Error('simulated: the answer was lost');
    };
    const r = await b.call('POST', '/v1/engines/prod/warehouse/rotate-root');
    assert.ok(r.status >= 500, JSON.stringify(r.body));
    assert.equal(await adminLogin(adminPassword), false, 'the server has the new password');
    const { config } = await storedConfig();
    assert.equal(config.pending_root_password, undefined, 'settled: nothing pending');
    assert.notEqual(config.password, adminPassword);
    assert.equal(await adminLogin(String(config.password)), true, 'the stored password is the one in force');
    adminPassword = String(config.password);
    await issue();
  });

  it('it fails before the server changed: the old password stays', async () => {
    const engine: Engine = await liveEngine();
    engine.rotateRoot = async () => {
      throw new Error('simulated: refused before any change');
    };
    const r = await b.call('POST', '/v1/engines/prod/warehouse/rotate-root');
    assert.ok(r.status >= 500);
    const { config } = await storedConfig();
    assert.equal(config.pending_root_password, undefined);
    assert.equal(config.password, adminPassword);
    assert.equal(await adminLogin(adminPassword), true);
    await issue();
  });

  it('the broker died with the rotation pending: the next open finds the password in force', async () => {
    // The state a kill -9 leaves between "server changed" and "config stored".
    const next = `pending-${Date.now()}-abcdefghijklmnop`;
    const { barrier, config } = await storedConfig();
    const c = new pg.Client({
      host: pgc.host,
      port: pgc.port,
      user: 'custody_admin',
      password: adminPassword,
      database: 'app',
    });
    await c.connect();
    await c.query(`alter role current_user with password ${pg.escapeLiteral(next)}`);
    await c.end();
    await b.broker.services.storage.db
      .updateTable('engines')
      .set({ config: barrier.encrypt(JSON.stringify({ ...config, pending_root_password: next }), AAD) })
      .where('env', '=', 'prod')
      .where('name', '=', 'warehouse')
      .execute();
    await b.broker.services.engines.close(); // a restarted broker has no open engines
    await issue();
    const settled = await storedConfig();
    assert.equal(settled.config.password, next);
    assert.equal(settled.config.pending_root_password, undefined);
    // And a normal rotation still works afterwards.
    const r = await b.call('POST', '/v1/engines/prod/warehouse/rotate-root');
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(await adminLogin(next), false);
    await issue();
  });
});
