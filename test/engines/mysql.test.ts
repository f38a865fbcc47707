import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import mysql from 'mysql2/promise';
import type { IssueContext } from '../../src/engines/engine.js';
import { type MysqlConfig, mysqlEngine } from '../../src/engines/mysql/index.js';
import { generatePassword } from '../../src/engines/password.js';
import { CustodyError } from '../../src/errors.js';
import { type MariadbServer, startMariadb } from '../support/mariadb.js';

const timings = (label: string, ms: number) => {
  if (process.env.CUSTODY_TEST_TIMINGS) console.log(`${label}: ${Math.round(ms)} ms`);
};

const HOSTILE_NAMES = [
  "x'; DROP TABLE appdb.canary; --",
  'x"; DROP TABLE canary; --',
  "o'brien",
  'ünïcødé',
  'a\\b',
  '`backtick`@%',
  'z'.repeat(200),
  '',
];

function ctx(over: Partial<IssueContext> = {}): IssueContext {
  return {
    env: 'dev',
    engine: 'mysql',
    role: 'reader',
    identityName: 'job-42',
    expiresAt: new Date(Date.now() + 3600_000),
    ...over,
  };
}

async function rejectsWith(fn: Promise<unknown>, code: string, secrets: string[], status?: number) {
  let caught: unknown;
  try {
    await fn;
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof CustodyError, `expected a CustodyError, got ${String(caught)}`);
  assert.equal(caught.code, code, `${caught.code}: ${caught.message}`);
  if (status !== undefined) assert.equal(caught.status, status);
  const text = `${caught.message} ${caught.hint ?? ''} ${JSON.stringify(caught)} ${caught.stack ?? ''}`;
  for (const s of secrets) assert.ok(!text.includes(s), `secret leaked in: ${caught.message}`);
  return caught;
}

describe('MySQL/MariaDB engine', () => {
  let db: MariadbServer;
  let config: MysqlConfig;
  const engines: { close(): Promise<void> }[] = [];
  const open = (c: MysqlConfig = config) => {
    const e = mysqlEngine.open(c);
    engines.push(e);
    return e;
  };
  const as = (user: string, password: string, database = 'appdb'): mysql.ConnectionOptions => ({
    host: db.host,
    port: db.port,
    user,
    password,
    database,
    connectTimeout: 5000,
  });
  async function query<T = any>(opts: mysql.ConnectionOptions, sql: string): Promise<T[]> {
    const conn = await mysql.createConnection(opts);
    try {
      const [rows] = await conn.query(sql);
      return rows as T[];
    } finally {
      await conn.end().catch(() => {});
    }
  }
  // Hex, not a quoted value: mysql2's client-side escaping is wrong under NO_BACKSLASH_ESCAPES.
  const userRows = (username: string) =>
    db.query(
      `SELECT Host FROM mysql.user WHERE HEX(User) = '${Buffer.from(username).toString('hex').toUpperCase()}'`,
    );
  const canaryAlive = async () =>
    assert.deepEqual(await db.query('SELECT v FROM appdb.canary'), [{ v: 'alive' }]);

  before(async () => {
    const t0 = performance.now();
    db = await startMariadb();
    timings('startMariadb', performance.now() - t0);
    await db.query(`
      CREATE DATABASE appdb; CREATE DATABASE otherdb;
      CREATE TABLE appdb.t (v VARCHAR(20)); INSERT INTO appdb.t VALUES ('row');
      CREATE TABLE appdb.canary (v VARCHAR(20)); INSERT INTO appdb.canary VALUES ('alive');
      CREATE TABLE otherdb.secret (v VARCHAR(20)); INSERT INTO otherdb.secret VALUES ('s');
      CREATE USER static_app@'%' IDENTIFIED BY 'initial-static-pw';
      CREATE USER weak_admin@'%' IDENTIFIED BY 'weak-admin-password'; GRANT SELECT ON appdb.* TO weak_admin@'%';`);
    config = mysqlEngine.parseConfig({
      connection_url: `mysql://${db.host}:${db.port}/appdb`,
      username: db.adminUser,
      password: db.adminPassword,
    });
  });

  after(async () => {
    await Promise.all(engines.map((e) => e.close()));
    await db?.stop();
  });

  describe('config and role parsing', () => {
    it('fills defaults, redacts the password, and re-parses its own output', () => {
      assert.equal(config.max_connections, 4);
      assert.equal(config.verify_tls, true);
      assert.ok(!JSON.stringify(mysqlEngine.redactConfig(config)).includes(db.adminPassword));
      assert.deepEqual(mysqlEngine.parseConfig({ ...config }), config);
      assert.equal(
        mysqlEngine.parseConfig({ ...config, connection_url: 'mariadb://db:3307' }).connection_url,
        'mariadb://db:3307',
      );
    });

    it('rejects a URL with credentials without echoing them, and other bad config', () => {
      assert.throws(
        () =>
          mysqlEngine.parseConfig({
            connection_url: 'mysql://admin:s3cr3t-pw@db/app',
            username: 'a',
            password: 'b',
          }),
        (err: CustodyError) => {
          assert.equal(err.code, 'InvalidEngineConfig');
          assert.equal(err.status, 400);
          assert.ok(!`${err.message} ${err.hint}`.includes('s3cr3t-pw'));
          return true;
        },
      );
      const ok = { connection_url: 'mysql://db/app', username: 'a', password: 'b' };
      for (const raw of [
        { ...ok, connection_url: 'postgres://db/app' },
        { ...ok, connection_url: 'mysql://db/app?ssl-mode=maybe' },
        { ...ok, connection_url: 'mysql://db/app?user=root' },
        { ...ok, username: 42 },
        { ...ok, max_connections: 1000 },
        { ...ok, extra: true },
      ] as Record<string, unknown>[]) {
        assert.throws(() => mysqlEngine.parseConfig(raw), { code: 'InvalidEngineConfig', status: 400 });
      }
    });

    it('validates roles', () => {
      assert.deepEqual(mysqlEngine.parseRole({ grants: ['SELECT ON appdb.*'] }), {
        grants: ['SELECT ON appdb.*'],
      });
      for (const raw of [
        { grants: ['SELECT ON appdb.*; DROP TABLE appdb.canary'] },
        { grants: ["SELECT ON appdb.* TO 'x'@'%'"] },
        { grants: ['readers'] },
        { grants: ['SELECT ON "appdb".*'] },
        { grants: ['SELECT ON appdb.* # comment'] },
        { creation_statements: ["CREATE USER {{name}}@'%'"] },
        { revocation_statements: ['DROP USER {{password}}'] },
        { username_template: `${'x'.repeat(25)}{{random}}` },
        { renew: [] },
      ] as Record<string, unknown>[]) {
        assert.throws(
          () => mysqlEngine.parseRole(raw),
          { code: 'InvalidRoleConfig', status: 400 },
          JSON.stringify(raw),
        );
      }
    });
  });

  describe('verify', () => {
    it('accepts a working admin', async () => {
      await open().verify();
    });

    it('refuses a wrong admin password with a clear error and no password in it', async () => {
      const wrong = 'Wr0ngPassw0rd-do-not-leak';
      const err = await rejectsWith(
        open({ ...config, password: wrong }).verify(),
        'EngineAuthenticationFailed',
        [wrong, db.adminPassword],
        400,
      );
      assert.match(err.message, /custody_admin/);
    });

    it('refuses an admin that may not create users', async () => {
      const err = await rejectsWith(
        open({ ...config, username: 'weak_admin', password: 'weak-admin-password' }).verify(),
        'EngineInsufficientPrivilege',
        ['weak-admin-password'],
        400,
      );
      assert.match(err.message, /CREATE USER and PROCESS/);
    });

    it('reports an unreachable server, a hung one within the connect timeout, a missing database', async () => {
      const closed = await new Promise<number>((resolve) => {
        const s = createServer().listen(0, '127.0.0.1', () => {
          const { port } = s.address() as { port: number };
          s.close(() => resolve(port));
        });
      });
      await rejectsWith(
        open({ ...config, connection_url: `mysql://127.0.0.1:${closed}/appdb` }).verify(),
        'EngineUnreachable',
        [db.adminPassword],
        400,
      );
      const sockets: Socket[] = [];
      const hung: Server = createServer((s) => sockets.push(s));
      await new Promise<void>((r) => hung.listen(0, '127.0.0.1', r));
      const { port } = hung.address() as { port: number };
      const t0 = performance.now();
      try {
        await rejectsWith(
          open({ ...config, connection_url: `mysql://127.0.0.1:${port}/appdb` }).verify(),
          'EngineUnreachable',
          [db.adminPassword],
          400,
        );
      } finally {
        for (const s of sockets) s.destroy();
        hung.close();
      }
      const ms = performance.now() - t0;
      timings('hung server verify', ms);
      assert.ok(ms < 10_000, `took ${ms} ms`);
      await rejectsWith(
        open({ ...config, connection_url: `mysql://${db.host}:${db.port}/nope` }).verify(),
        'EngineUnreachable',
        [db.adminPassword],
        400,
      );
    });
  });

  describe('lifecycle', () => {
    const role = () => mysqlEngine.parseRole({ grants: ['SELECT ON appdb.*'] });

    it('creates a login that can do what the grants allow and nothing more; renew; revoke (idempotent)', async () => {
      const engine = open();
      const r = role();
      const prepared = engine.prepare(r, ctx());
      assert.match(prepared.username, /^v_dev_reader_job_42_[a-z0-9]{10}$/);
      assert.ok(prepared.password.length >= 32);
      assert.deepEqual(await userRows(prepared.username), []); // prepare has no side effects
      const t0 = performance.now();
      const issued = await engine.create(r, prepared, ctx());
      timings('mysql create', performance.now() - t0);
      assert.deepEqual(issued.data, {
        connection_url: `mysql://${prepared.username}@${db.host}:${db.port}/appdb`,
        database: 'appdb',
        host: db.host,
        port: String(db.port),
      });
      const creds = as(issued.username, issued.password);
      assert.deepEqual(await query(creds, 'SELECT v FROM t'), [{ v: 'row' }]);
      await assert.rejects(query(creds, `INSERT INTO t VALUES ('nope')`), {
        code: 'ER_TABLEACCESS_DENIED_ERROR',
      });
      await assert.rejects(query(creds, 'SELECT v FROM otherdb.secret'), {
        code: 'ER_TABLEACCESS_DENIED_ERROR',
      });
      await assert.rejects(query(as(issued.username, issued.password, 'otherdb'), 'SELECT 1'), {
        code: 'ER_DBACCESS_DENIED_ERROR',
      });
      await assert.rejects(query(as(issued.username, 'wrong'), 'SELECT 1'), {
        code: 'ER_ACCESS_DENIED_ERROR',
      });

      // No VALID UNTIL in MySQL: renew succeeds and changes nothing.
      await engine.renew(r, prepared.revocation, new Date(Date.now() + 7200_000));
      assert.deepEqual(await query(creds, 'SELECT v FROM t'), [{ v: 'row' }]);

      const t1 = performance.now();
      await engine.revoke(r, prepared.revocation);
      timings('mysql revoke', performance.now() - t1);
      await assert.rejects(query(creds, 'SELECT 1'), { code: 'ER_ACCESS_DENIED_ERROR' });
      assert.deepEqual(await userRows(issued.username), []);
      await engine.revoke(r, prepared.revocation);
      await engine.revoke(null, prepared.revocation);
    });

    it('works with a least-privilege admin (CREATE USER, PROCESS, CONNECTION ADMIN, grant option on the data)', async () => {
      await db.query(`CREATE USER lp_admin@'%' IDENTIFIED BY 'least-privilege-pw';
        GRANT CREATE USER, PROCESS, CONNECTION ADMIN ON *.* TO lp_admin@'%';
        GRANT SELECT ON appdb.* TO lp_admin@'%' WITH GRANT OPTION;`);
      const engine = open(
        mysqlEngine.parseConfig({ ...config, username: 'lp_admin', password: 'least-privilege-pw' }),
      );
      await engine.verify();
      const r = role();
      const prepared = engine.prepare(r, ctx());
      await engine.create(r, prepared, ctx());
      const session = await mysql.createConnection(as(prepared.username, prepared.password));
      session.on('error', () => {});
      try {
        assert.deepEqual((await session.query('SELECT v FROM t'))[0], [{ v: 'row' }]);
        await engine.revoke(r, prepared.revocation);
        await assert.rejects(session.query('SELECT 1'));
      } finally {
        session.destroy();
      }
      assert.deepEqual(await userRows(prepared.username), []);
      await engine.revoke(r, prepared.revocation);
      await engine.revoke(null, engine.prepare(r, ctx()).revocation);
    });

    it('revokes a prepared-but-never-created credential', async () => {
      const engine = open();
      const prepared = engine.prepare(role(), ctx());
      await engine.revoke(role(), prepared.revocation);
      await engine.revoke(null, prepared.revocation);
    });

    it('ends a session the user holds open', async () => {
      const engine = open();
      const prepared = engine.prepare(role(), ctx());
      await engine.create(role(), prepared, ctx());
      const session = await mysql.createConnection(as(prepared.username, prepared.password));
      session.on('error', () => {});
      try {
        assert.deepEqual((await session.query('SELECT v FROM t'))[0], [{ v: 'row' }]);
        await engine.revoke(role(), prepared.revocation);
        await assert.rejects(session.query('SELECT 1'));
      } finally {
        session.destroy();
      }
      assert.deepEqual(
        await db.query('SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ?', [prepared.username]),
        [],
      );
      assert.deepEqual(await userRows(prepared.username), []);
    });

    it('runs custom statements (renew too), and undoes a half-done creation', async () => {
      const engine = open();
      const r = mysqlEngine.parseRole({
        creation_statements: [
          "CREATE USER {{name}}@'localhost' IDENTIFIED BY {{password}}",
          "CREATE USER {{name}}@'%' IDENTIFIED BY {{password}}",
        ],
        grants: ['SELECT ON appdb.t'],
        renew_statements: ['DO {{name}}, {{expiration}}'],
        revocation_statements: ["DROP USER {{name}}@'%'", "DROP USER {{name}}@'localhost'"],
      });
      const prepared = engine.prepare(r, ctx());
      await engine.create(r, prepared, ctx());
      assert.equal((await userRows(prepared.username)).length, 2);
      await engine.renew(r, prepared.revocation, new Date(Date.now() + 7200_000));
      await engine.revoke(r, prepared.revocation);
      await engine.revoke(r, prepared.revocation);
      assert.deepEqual(await userRows(prepared.username), []);
      await rejectsWith(
        engine.renew(r, prepared.revocation, new Date()),
        'EngineCredentialNotFound',
        [],
        404,
      );

      const broken = mysqlEngine.parseRole({ grants: ['SELECT ON nosuchdb.nosuchtable'] });
      const p2 = engine.prepare(broken, ctx());
      const err = await rejectsWith(
        engine.create(broken, p2, ctx()),
        'EngineStatementFailed',
        [p2.password, db.adminPassword],
        502,
      );
      assert.match(err.message, /statement 2 of 2/);
      assert.deepEqual(await userRows(p2.username), []);

      const syntax = mysqlEngine.parseRole({
        creation_statements: ["CREATE USER {{name}}@'%' IDENTIFIED BY {{password}} {{password}} BOGUS"],
      });
      const p3 = engine.prepare(syntax, ctx());
      await rejectsWith(
        engine.create(syntax, p3, ctx()),
        'EngineStatementFailed',
        [p3.password, db.adminPassword],
        502,
      );
    });

    it('fails fast while the server is down and recovers after', async () => {
      const engine = open();
      await engine.verify();
      await db.pause();
      try {
        const prepared = engine.prepare(role(), ctx());
        await rejectsWith(
          engine.create(role(), prepared, ctx()),
          'EngineUnreachable',
          [prepared.password, db.adminPassword],
          503,
        );
        await rejectsWith(
          engine.revoke(role(), prepared.revocation),
          'EngineUnreachable',
          [db.adminPassword],
          503,
        );
      } finally {
        await db.resume();
      }
      const prepared = engine.prepare(role(), ctx());
      await engine.create(role(), prepared, ctx());
      await engine.revoke(role(), prepared.revocation);
    });
  });

  describe('injection', () => {
    it('hostile identity and role names give safe usernames of at most 32 characters that work', async () => {
      const engine = open();
      const r = mysqlEngine.parseRole({ grants: ['SELECT ON appdb.t'] });
      for (const name of HOSTILE_NAMES) {
        const c = ctx({ identityName: name, role: name || 'reader' });
        const prepared = engine.prepare(r, c);
        assert.match(prepared.username, /^[a-z0-9_]{1,32}$/, prepared.username);
        assert.match(prepared.username, /_[a-z0-9]{10}$/);
        await engine.create(r, prepared, c);
        assert.deepEqual(await query(as(prepared.username, prepared.password), 'SELECT v FROM t'), [
          { v: 'row' },
        ]);
        await engine.revoke(r, prepared.revocation);
        assert.deepEqual(await userRows(prepared.username), []);
      }
      await canaryAlive();
    });

    for (const nbe of [false, true]) {
      it(`quotes {{name}} and {{password}} carrying quotes and backslashes${nbe ? ' (NO_BACKSLASH_ESCAPES)' : ''}`, async () => {
        const [{ mode }] = await db.query('SELECT @@GLOBAL.sql_mode AS mode');
        if (nbe) await db.query(`SET GLOBAL sql_mode = CONCAT(@@GLOBAL.sql_mode, ',NO_BACKSLASH_ESCAPES')`);
        try {
          const engine = open();
          const r = mysqlEngine.parseRole({ grants: ['SELECT ON appdb.t'] });
          const hostile = {
            username: `x\\'; DROP TABLE appdb.canary; --`,
            password: `p\\'); DROP TABLE appdb.canary; -- '' " \\\\`,
          };
          const prepared = { ...hostile, revocation: { username: hostile.username } };
          await engine.create(r, prepared, ctx());
          assert.deepEqual(await userRows(hostile.username), [{ Host: '%' }]);
          assert.deepEqual(await query(as(hostile.username, hostile.password), 'SELECT v FROM t'), [
            { v: 'row' },
          ]);
          await engine.setPassword(hostile.username, `${hostile.password}-2`);
          assert.deepEqual(await query(as(hostile.username, `${hostile.password}-2`), 'SELECT 1 AS one'), [
            { one: 1 },
          ]);
          await engine.revoke(r, prepared.revocation);
          assert.deepEqual(await userRows(hostile.username), []);
          await canaryAlive();
        } finally {
          await db.query('SET GLOBAL sql_mode = ?', [mode]);
        }
      });
    }
  });

  describe('static and root passwords', () => {
    it('setPassword takes over an existing user', async () => {
      const engine = open();
      const password = 'NewStaticPassword0123456789abcdef';
      await engine.setPassword('static_app', password);
      assert.deepEqual(await query(as('static_app', password, ''), 'SELECT 1 AS one'), [{ one: 1 }]);
      await assert.rejects(query(as('static_app', 'initial-static-pw', ''), 'SELECT 1'), {
        code: 'ER_ACCESS_DENIED_ERROR',
      });
      await rejectsWith(engine.setPassword('no_such_user', password), 'EngineUserNotFound', [password], 404);
    });

    it('rotateRoot: the old admin password stops working, the engine keeps working', async () => {
      const startPw = 'RootRotationStart0123456789';
      await db.query(
        `CREATE USER rot_admin@'%' IDENTIFIED BY '${startPw}'; GRANT ALL PRIVILEGES ON *.* TO rot_admin@'%' WITH GRANT OPTION`,
      );
      const rotConfig = mysqlEngine.parseConfig({ ...config, username: 'rot_admin', password: startPw });
      const engine = open(rotConfig);
      await engine.verify();
      const t0 = performance.now();
      const next = mysqlEngine.parseConfig(await engine.rotateRoot(generatePassword(32)));
      timings('mysql rotateRoot', performance.now() - t0);
      assert.notEqual(next.password, startPw);
      assert.ok(next.password.length >= 32);
      assert.deepEqual({ ...next, password: '' }, { ...rotConfig, password: '' });
      await assert.rejects(query(as('rot_admin', startPw), 'SELECT 1'), { code: 'ER_ACCESS_DENIED_ERROR' });
      assert.deepEqual(await query(as('rot_admin', next.password), 'SELECT 1 AS one'), [{ one: 1 }]);
      for (const e of [engine, open(next)]) {
        await e.verify();
        const r = mysqlEngine.parseRole({ grants: ['SELECT ON appdb.t'] });
        const prepared = e.prepare(r, ctx());
        await e.create(r, prepared, ctx());
        assert.deepEqual(await query(as(prepared.username, prepared.password), 'SELECT v FROM t'), [
          { v: 'row' },
        ]);
        await e.revoke(r, prepared.revocation);
      }
      await rejectsWith(
        open(rotConfig).verify(),
        'EngineAuthenticationFailed',
        [startPw, next.password],
        400,
      );
    });
  });
});
