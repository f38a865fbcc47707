import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import type { IssueContext } from '../../src/engines/engine.js';
import { generatePassword } from '../../src/engines/password.js';
import { type PostgresConfig, postgresqlEngine } from '../../src/engines/postgresql/index.js';
import { scramSha256Verifier } from '../../src/engines/postgresql/scram.js';
import { generateUsername, sanitizeNamePart } from '../../src/engines/sql/username.js';
import { CustodyError } from '../../src/errors.js';
import { type PostgresCluster, startPostgres } from '../support/postgres.js';

const timings = (label: string, ms: number) => {
  if (process.env.CUSTODY_TEST_TIMINGS) console.log(`${label}: ${Math.round(ms)} ms`);
};

const HOSTILE_NAMES = [
  'x"; DROP TABLE canary; --',
  "o'brien",
  'ünïcødé',
  'a\\b',
  'İstanbul ß ﬁ 日本語',
  'z'.repeat(200),
  '',
  ';;;',
];

function ctx(over: Partial<IssueContext> = {}): IssueContext {
  return {
    env: 'dev',
    engine: 'pg',
    role: 'reader',
    identityName: 'job-42',
    expiresAt: new Date(Date.now() + 3600_000),
    ...over,
  };
}

async function connect(config: pg.ClientConfig): Promise<pg.Client> {
  const client = new pg.Client({ connectionTimeoutMillis: 5000, ...config });
  client.on('error', () => {});
  await client.connect();
  return client;
}

async function query<T = any>(
  config: pg.ClientConfig | string,
  sql: string,
  params: unknown[] = [],
): Promise<T[]> {
  const client = await connect(typeof config === 'string' ? { connectionString: config } : config);
  try {
    return (await client.query(sql, params)).rows as T[];
  } finally {
    await client.end().catch(() => {});
  }
}

/** Asserts `fn` rejects with a CustodyError of `code`, and that no secret shows in its text. */
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

describe('PostgreSQL engine', () => {
  let pgc: PostgresCluster;
  let appUrl: string;
  let adminPassword: string;
  let config: PostgresConfig;
  const engines: { close(): Promise<void> }[] = [];
  const open = (c: PostgresConfig = config) => {
    const e = postgresqlEngine.open(c);
    engines.push(e);
    return e;
  };
  const login = (username: string, password: string, database = 'app') => ({
    host: pgc.host,
    port: pgc.port,
    user: username,
    password,
    database,
  });
  const canaryAlive = async () =>
    assert.deepEqual(await query(appUrl, 'select v from canary'), [{ v: 'alive' }]);

  before(async () => {
    const t0 = performance.now();
    pgc = await startPostgres();
    timings('startPostgres', performance.now() - t0);
    appUrl = await pgc.createDatabase('app');
    await pgc.createDatabase('other');
    adminPassword = `adm-${Math.random().toString(36).slice(2)}-${Date.now()}`;
    await query(
      appUrl,
      `create table t (v text); insert into t values ('row');
       create table canary (v text); insert into canary values ('alive');
       create role readers nologin; grant select on t to readers;
       create role custody_admin login createrole password ${pg.escapeLiteral(adminPassword)};
       grant select on all tables in schema public to custody_admin with grant option;
       grant insert on t to custody_admin with grant option;
       grant usage, create on schema public to custody_admin with grant option;
       create role static_app login password 'initial-static-pw';
       create role weak_admin login password ${pg.escapeLiteral(adminPassword)};
       revoke connect on database other from public;`,
    );
    await query(pgc.urlFor('other'), `create table secret (v text); insert into secret values ('s')`);
    config = postgresqlEngine.parseConfig({
      connection_url: `postgres://${pgc.host}:${pgc.port}/app`,
      username: 'custody_admin',
      password: adminPassword,
    });
  });

  after(async () => {
    await Promise.all(engines.map((e) => e.close()));
    await pgc?.stop();
  });

  describe('config and role parsing', () => {
    it('fills defaults and redacts the password', () => {
      assert.equal(config.max_connections, 4);
      assert.equal(config.verify_tls, true);
      const shown = postgresqlEngine.redactConfig(config);
      assert.ok(!JSON.stringify(shown).includes(adminPassword));
      assert.equal(shown.username, 'custody_admin');
      // Stored config parses again unchanged.
      assert.deepEqual(postgresqlEngine.parseConfig({ ...config }), config);
    });

    it('rejects a URL with credentials without echoing them', () => {
      for (const url of ['postgres://admin:s3cr3t-pw@db:5432/app', 'postgres://admin@db/app']) {
        assert.throws(
          () => postgresqlEngine.parseConfig({ connection_url: url, username: 'a', password: 'b' }),
          (err: CustodyError) => {
            assert.equal(err.code, 'InvalidEngineConfig');
            assert.equal(err.status, 400);
            assert.match(err.hint ?? '', /username and password fields|username field/);
            assert.ok(!`${err.message} ${err.hint}`.includes('s3cr3t-pw'));
            return true;
          },
        );
      }
    });

    it('rejects bad config fields with 400s', () => {
      const ok = { connection_url: 'postgres://db/app', username: 'a', password: 'b' };
      const bad: Record<string, unknown>[] = [
        { ...ok, connection_url: 'mysql://db/app' },
        { ...ok, connection_url: 'not a url' },
        { ...ok, connection_url: 'postgres://db/app?sslmode=allow' },
        { ...ok, connection_url: 'postgres://db/app?password=x' },
        { ...ok, username: '' },
        { ...ok, password: undefined },
        { ...ok, max_connections: 0 },
        { ...ok, max_connections: '4' },
        { ...ok, verify_tls: 'yes' },
        { ...ok, pasword: 'typo' },
      ];
      for (const raw of bad) {
        assert.throws(() => postgresqlEngine.parseConfig(raw), { code: 'InvalidEngineConfig', status: 400 });
      }
      const tls = postgresqlEngine.parseConfig({
        ...ok,
        connection_url: 'postgresql://[::1]:6543/x?sslmode=require',
      });
      assert.equal(tls.connection_url, 'postgresql://[::1]:6543/x?sslmode=require');
    });

    it('validates roles', () => {
      assert.deepEqual(postgresqlEngine.parseRole({}), {});
      const good = postgresqlEngine.parseRole({
        grants: ['SELECT ON ALL TABLES IN SCHEMA public', 'readers', 'USAGE ON SCHEMA public'],
        username_template: 'app_{{identity}}_{{random}}',
      });
      assert.equal(good.grants?.length, 3);
      const bad: Record<string, unknown>[] = [
        { grants: ['SELECT ON t; DROP TABLE canary'] },
        { grants: ['SELECT ON t TO public'] },
        { grants: ['SELECT ON t -- comment'] },
        { grants: ["readers'"] },
        { grants: [] },
        { grants: 'SELECT ON t' },
        { creation_statements: ['CREATE ROLE {{name}}'] }, // no {{password}}
        { creation_statements: ['CREATE ROLE {{name}} PASSWORD {{password}} {{bogus}}'] },
        { revocation_statements: ['ALTER ROLE {{name}} PASSWORD {{password}}'] },
        { renew_statements: ['SELECT 1'] },
        { username_template: 'v_{{identity}}' },
        { username_template: 'v_{{random}}_{{random}}' },
        { username_template: '{{nope}}_{{random}}' },
        { username_template: `${'x'.repeat(60)}{{random}}` },
        { grant: ['typo'] },
      ];
      for (const raw of bad) {
        assert.throws(
          () => postgresqlEngine.parseRole(raw),
          { code: 'InvalidRoleConfig', status: 400 },
          JSON.stringify(raw),
        );
      }
    });
  });

  describe('usernames', () => {
    it('are [a-z0-9_], at most 63 bytes, and keep the random part', () => {
      for (const name of HOSTILE_NAMES) {
        for (const role of ['reader', name]) {
          const random = 'r4nd0mpart';
          const u = generateUsername(
            'v_{{env}}_{{role}}_{{identity}}_{{random}}',
            ctx({ identityName: name, role }),
            63,
            random,
          );
          assert.match(u, /^[a-z0-9_]+$/, u);
          assert.ok(u.length <= 63, u);
          assert.ok(u.endsWith(random), u);
          assert.ok(u.startsWith('v_dev_'), u);
        }
      }
      assert.equal(sanitizeNamePart('ünïcødé'), 'unic_de');
      assert.equal(
        generateUsername(
          'v_{{env}}_{{role}}_{{identity}}_{{random}}',
          ctx({ identityName: "o'brien" }),
          63,
          'abcdefghij',
        ),
        'v_dev_reader_o_brien_abcdefghij',
      );
      // Long parts are shortened fairly, not dropped.
      const long = generateUsername(
        'v_{{env}}_{{role}}_{{identity}}_{{random}}',
        ctx({ role: 'r'.repeat(80), identityName: 'i'.repeat(80) }),
        32,
        'abcdefghij',
      );
      assert.equal(long.length, 32);
      assert.match(long, /^v_dev_r+_i+_abcdefghij$/);
    });

    it('prepare has no side effects and gives strong, distinct passwords', async () => {
      const engine = open();
      const a = engine.prepare({}, ctx());
      const b = engine.prepare({}, ctx());
      assert.notEqual(a.username, b.username);
      assert.notEqual(a.password, b.password);
      assert.ok(a.password.length >= 32);
      assert.match(a.password, /^[A-Za-z0-9]+$/);
      assert.deepEqual(a.revocation, { username: a.username });
      assert.ok(!JSON.stringify(a.revocation).includes(a.password));
      assert.deepEqual(await query(appUrl, 'select 1 from pg_roles where rolname = $1', [a.username]), []);
    });
  });

  describe('verify', () => {
    it('accepts a working admin that may create roles', async () => {
      await open().verify();
    });

    it('refuses a wrong admin password with a clear error and no password in it', async () => {
      const wrong = 'Wr0ngPassw0rd-do-not-leak';
      const err = await rejectsWith(
        open({ ...config, password: wrong }).verify(),
        'EngineAuthenticationFailed',
        [wrong, adminPassword],
        400,
      );
      assert.match(err.message, /custody_admin/);
      assert.ok(err.hint);
    });

    it('refuses an admin that may not create roles', async () => {
      const err = await rejectsWith(
        open({ ...config, username: 'weak_admin' }).verify(),
        'EngineInsufficientPrivilege',
        [adminPassword],
        400,
      );
      assert.match(err.hint ?? '', /CREATEROLE/);
    });

    it('reports an unreachable server, and a hung one within the connect timeout', async () => {
      const closed = await new Promise<number>((resolve) => {
        const s = createServer().listen(0, '127.0.0.1', () => {
          const { port } = s.address() as { port: number };
          s.close(() => resolve(port));
        });
      });
      await rejectsWith(
        open({ ...config, connection_url: `postgres://127.0.0.1:${closed}/app` }).verify(),
        'EngineUnreachable',
        [adminPassword],
        400,
      );
      // A server that accepts TCP and then says nothing.
      const sockets: Socket[] = [];
      const hung: Server = createServer((s) => sockets.push(s));
      await new Promise<void>((r) => hung.listen(0, '127.0.0.1', r));
      const { port } = hung.address() as { port: number };
      const t0 = performance.now();
      try {
        await rejectsWith(
          open({ ...config, connection_url: `postgres://127.0.0.1:${port}/app` }).verify(),
          'EngineUnreachable',
          [adminPassword],
          400,
        );
      } finally {
        for (const s of sockets) s.destroy();
        hung.close();
      }
      const ms = performance.now() - t0;
      timings('hung server verify', ms);
      assert.ok(ms < 10_000, `took ${ms} ms`);
    });

    it('reports a missing database', async () => {
      await rejectsWith(
        open({ ...config, connection_url: `postgres://${pgc.host}:${pgc.port}/nope` }).verify(),
        'EngineUnreachable',
        [adminPassword],
        400,
      );
    });
  });

  describe('lifecycle', () => {
    const role = () =>
      postgresqlEngine.parseRole({
        grants: ['USAGE ON SCHEMA public', 'SELECT ON ALL TABLES IN SCHEMA public'],
      });

    it('creates a login that can do what the grants allow and nothing more; renew; revoke (idempotent)', async () => {
      const engine = open();
      const r = role();
      const c = ctx();
      const prepared = engine.prepare(r, c);
      const t0 = performance.now();
      const issued = await engine.create(r, prepared, c);
      timings('pg create', performance.now() - t0);
      assert.equal(issued.username, prepared.username);
      assert.equal(issued.password, prepared.password);
      assert.equal(issued.data.connection_url, `postgres://${prepared.username}@${pgc.host}:${pgc.port}/app`);
      assert.deepEqual(
        { ...issued.data, connection_url: undefined },
        {
          connection_url: undefined,
          database: 'app',
          host: pgc.host,
          port: String(pgc.port),
        },
      );
      assert.ok(!JSON.stringify(issued.data).includes(prepared.password));

      // Log in with the URL from data plus the password.
      const url = new URL(issued.data.connection_url);
      url.password = encodeURIComponent(issued.password);
      assert.deepEqual(await query(url.toString(), 'select v from t'), [{ v: 'row' }]);
      const creds = login(issued.username, issued.password);
      await assert.rejects(query(creds, `insert into t values ('nope')`), { code: '42501' });
      await assert.rejects(query(creds, 'create table mine (v int)'), { code: '42501' });
      await assert.rejects(query(login(issued.username, issued.password, 'other'), 'select 1'), {
        code: '42501',
      });
      await assert.rejects(query(login(issued.username, 'wrong-password'), 'select 1'), { code: '28P01' });

      const until = async () =>
        (
          await query<{ u: Date }>(appUrl, 'select rolvaliduntil as u from pg_roles where rolname = $1', [
            issued.username,
          ])
        )[0].u;
      assert.equal(
        (await until()).getTime(),
        Math.floor(c.expiresAt.getTime() / 1000) * 1000 + (c.expiresAt.getTime() % 1000),
      );
      const later = new Date(c.expiresAt.getTime() + 2 * 3600_000);
      await engine.renew(r, prepared.revocation, later);
      assert.equal((await until()).getTime(), later.getTime());

      const t1 = performance.now();
      await engine.revoke(r, prepared.revocation);
      timings('pg revoke', performance.now() - t1);
      await assert.rejects(query(creds, 'select 1'), { code: '28P01' });
      assert.deepEqual(
        await query(appUrl, 'select 1 from pg_roles where rolname = $1', [issued.username]),
        [],
      );
      await engine.revoke(r, prepared.revocation);
      await engine.revoke(null, prepared.revocation);
      await rejectsWith(engine.renew(r, prepared.revocation, later), 'EngineCredentialNotFound', [], 404);
    });

    it('revokes a prepared-but-never-created credential', async () => {
      const engine = open();
      const prepared = engine.prepare(role(), ctx());
      await engine.revoke(role(), prepared.revocation);
      await engine.revoke(null, prepared.revocation);
    });

    it('ends a session the user holds open', async () => {
      const engine = open();
      const r = role();
      const prepared = engine.prepare(r, ctx());
      await engine.create(r, prepared, ctx());
      const session = await connect(login(prepared.username, prepared.password));
      try {
        await session.query('begin');
        assert.deepEqual((await session.query('select v from t')).rows, [{ v: 'row' }]); // holds a lock on t
        await engine.revoke(r, prepared.revocation);
        await assert.rejects(session.query('select 1'));
      } finally {
        await session.end().catch(() => {});
      }
      assert.deepEqual(
        await query(appUrl, 'select 1 from pg_stat_activity where usename = $1', [prepared.username]),
        [],
      );
      assert.deepEqual(
        await query(appUrl, 'select 1 from pg_roles where rolname = $1', [prepared.username]),
        [],
      );
    });

    it('hands objects the user created to the admin, then drops the role', async () => {
      const engine = open();
      const r = postgresqlEngine.parseRole({ grants: ['USAGE, CREATE ON SCHEMA public'] });
      const prepared = engine.prepare(r, ctx());
      await engine.create(r, prepared, ctx());
      const table = `made_by_${prepared.username}`;
      await query(login(prepared.username, prepared.password), `create table ${table} (v int)`);
      await engine.revoke(r, prepared.revocation);
      assert.deepEqual(
        await query(appUrl, 'select 1 from pg_roles where rolname = $1', [prepared.username]),
        [],
      );
      // REASSIGN OWNED kept the data (now the admin's); DROP OWNED removed the role's remaining privileges.
      assert.deepEqual(
        await query(appUrl, 'select tableowner from pg_tables where tablename = $1', [table]),
        [{ tableowner: 'custody_admin' }],
      );
    });

    it('grants role names from the shorthand', async () => {
      const engine = open(
        postgresqlEngine.parseConfig({ ...config, username: 'postgres', password: pgc.password }),
      );
      const r = postgresqlEngine.parseRole({ grants: ['readers'] });
      const prepared = engine.prepare(r, ctx());
      await engine.create(r, prepared, ctx());
      assert.deepEqual(await query(login(prepared.username, prepared.password), 'select v from t'), [
        { v: 'row' },
      ]);
      await engine.revoke(r, prepared.revocation);
      assert.deepEqual(
        await query(appUrl, 'select 1 from pg_roles where rolname = $1', [prepared.username]),
        [],
      );
    });

    it('runs custom revocation statements, idempotently', async () => {
      const engine = open();
      const r = postgresqlEngine.parseRole({
        grants: ['SELECT ON t'],
        revocation_statements: ['REVOKE ALL ON t FROM {{name}}', 'DROP ROLE {{name}}'],
      });
      const prepared = engine.prepare(r, ctx());
      await engine.create(r, prepared, ctx());
      const session = await connect(login(prepared.username, prepared.password));
      try {
        await engine.revoke(r, prepared.revocation);
        await assert.rejects(session.query('select 1'));
      } finally {
        await session.end().catch(() => {});
      }
      await engine.revoke(r, prepared.revocation);
      assert.deepEqual(
        await query(appUrl, 'select 1 from pg_roles where rolname = $1', [prepared.username]),
        [],
      );
    });

    it('rolls back all creation statements when one fails, without leaking the password', async () => {
      const engine = open();
      const r = postgresqlEngine.parseRole({
        creation_statements: [
          'CREATE ROLE {{name}} WITH LOGIN PASSWORD {{password}}',
          'GRANT SELECT ON no_such_table TO {{name}}',
        ],
      });
      const prepared = engine.prepare(r, ctx());
      const err = await rejectsWith(
        engine.create(r, prepared, ctx()),
        'EngineStatementFailed',
        [prepared.password, adminPassword],
        502,
      );
      assert.match(err.message, /statement 2 of 2/);
      assert.deepEqual(
        await query(appUrl, 'select 1 from pg_roles where rolname = $1', [prepared.username]),
        [],
      );

      const syntax = postgresqlEngine.parseRole({
        creation_statements: ['CREATE ROLE {{name}} WITH LOGIN PASSWORD {{password}} {{password}} BOGUS'],
      });
      const p2 = engine.prepare(syntax, ctx());
      await rejectsWith(
        engine.create(syntax, p2, ctx()),
        'EngineStatementFailed',
        [p2.password, adminPassword],
        502,
      );
    });

    it('fails fast while the server is down and recovers after', async () => {
      const engine = open();
      await engine.verify();
      await pgc.pause();
      try {
        const prepared = engine.prepare(role(), ctx());
        await rejectsWith(
          engine.create(role(), prepared, ctx()),
          'EngineUnreachable',
          [prepared.password, adminPassword],
          503,
        );
        await rejectsWith(
          engine.revoke(role(), prepared.revocation),
          'EngineUnreachable',
          [adminPassword],
          503,
        );
      } finally {
        await pgc.resume();
      }
      const prepared = engine.prepare(role(), ctx());
      await engine.create(role(), prepared, ctx());
      await engine.revoke(role(), prepared.revocation);
    });
  });

  describe('injection', () => {
    it('hostile identity and role names give safe usernames that work', async () => {
      const engine = open();
      const r = postgresqlEngine.parseRole({ grants: ['SELECT ON t'] });
      for (const name of HOSTILE_NAMES) {
        const c = ctx({ identityName: name, role: name || 'reader' });
        const prepared = engine.prepare(r, c);
        assert.match(prepared.username, /^[a-z0-9_]{1,63}$/, prepared.username);
        await engine.create(r, prepared, c);
        assert.deepEqual(await query(login(prepared.username, prepared.password), 'select v from t'), [
          { v: 'row' },
        ]);
        await engine.revoke(r, prepared.revocation);
        assert.deepEqual(
          await query(appUrl, 'select 1 from pg_roles where rolname = $1', [prepared.username]),
          [],
        );
      }
      await canaryAlive();
    });

    it('quotes {{name}} and {{password}} even when they carry quotes and statement text', async () => {
      // password_authentication: password puts the value itself in {{password}} (the default puts its
      // SCRAM verifier there): the quoting of a hostile value is what this test is about.
      const engine = open({ ...config, password_authentication: 'password' });
      const r = postgresqlEngine.parseRole({
        creation_statements: [
          'CREATE ROLE {{name}} WITH LOGIN PASSWORD {{password}} VALID UNTIL {{expiration}}',
          'COMMENT ON ROLE {{name}} IS {{password}}',
        ],
        grants: ['SELECT ON t'],
      });
      const hostile = {
        username: `x"; DROP TABLE canary; --`,
        password: `p'); DROP TABLE canary; --\\' "$$ E'\\x27`,
      };
      const prepared = { ...hostile, revocation: { username: hostile.username } };
      await engine.create(r, prepared, ctx());
      assert.deepEqual(await query(login(hostile.username, hostile.password), 'select v from t'), [
        { v: 'row' },
      ]);
      const [comment] = await query(
        appUrl,
        `select shobj_description(oid, 'pg_authid') as c from pg_roles where rolname = $1`,
        [hostile.username],
      );
      assert.equal(comment.c, hostile.password);
      await engine.revoke(r, prepared.revocation);
      assert.deepEqual(
        await query(appUrl, 'select 1 from pg_roles where rolname = $1', [hostile.username]),
        [],
      );
      await canaryAlive();
    });
  });

  describe('SCRAM-SHA-256 verifiers instead of passwords', () => {
    it('the verifier is the one PostgreSQL computes itself for the same salt', async () => {
      const c = new pg.Client({ connectionString: appUrl });
      await c.connect();
      try {
        await c.query("set password_encryption = 'scram-sha-256'");
        await c.query(`create role scram_probe login password ${pg.escapeLiteral('Probe-pw-0123456789')}`);
        const [row] = (await c.query("select rolpassword from pg_authid where rolname = 'scram_probe'")).rows;
        const m = /^SCRAM-SHA-256\$(\d+):([^$]+)\$/.exec(row.rolpassword);
        assert.ok(m, row.rolpassword);
        const ours = await scramSha256Verifier(
          'Probe-pw-0123456789',
          Buffer.from(m[2], 'base64'),
          Number(m[1]),
        );
        assert.equal(ours, row.rolpassword);
        await c.query('drop role scram_probe');
      } finally {
        await c.end();
      }
    });

    it('leases, static passwords and a failed CREATE ROLE never put the password in the server log', async () => {
      const engine = open();
      const r = postgresqlEngine.parseRole({ grants: ['SELECT ON t'] });
      const prepared = engine.prepare(r, ctx());
      await engine.create(r, prepared, ctx());
      assert.deepEqual(await query(login(prepared.username, prepared.password), 'select v from t'), [
        { v: 'row' },
      ]);
      const [stored] = await query(appUrl, 'select rolpassword from pg_authid where rolname = $1', [
        prepared.username,
      ]);
      assert.match(stored.rolpassword, /^SCRAM-SHA-256\$4096:/);
      await engine.revoke(r, prepared.revocation);
      const bad = postgresqlEngine.parseRole({
        creation_statements: ['CREATE ROLE {{name}} WITH LOGIN PASSWORD {{password}} BOGUS'],
      });
      const failed = engine.prepare(bad, ctx());
      await rejectsWith(engine.create(bad, failed, ctx()), 'EngineStatementFailed', [failed.password], 502);
      const staticPw = 'StaticScramPassword0123456789abcd';
      await engine.setPassword('static_app', staticPw);
      assert.deepEqual(await query(login('static_app', staticPw), 'select 1 as one'), [{ one: 1 }]);
      const log = await readFile(pgc.logFile, 'utf8');
      assert.match(log, /CREATE ROLE .* BOGUS/, 'the failed statement is in the log (log_statement=all)');
      for (const secret of [prepared.password, failed.password, staticPw])
        assert.ok(!log.includes(secret), 'a password reached the PostgreSQL log');
    });
  });

  describe('static and root passwords', () => {
    it('setPassword takes over an existing user', async () => {
      const engine = open();
      const password = 'NewStaticPassword0123456789abcdef';
      await engine.setPassword('static_app', password);
      assert.deepEqual(await query(login('static_app', password), 'select 1 as one'), [{ one: 1 }]);
      await assert.rejects(query(login('static_app', 'initial-static-pw'), 'select 1'), { code: '28P01' });
      await rejectsWith(engine.setPassword('no_such_user', password), 'EngineUserNotFound', [password], 404);
    });

    it('rotateRoot: the old admin password stops working, the engine keeps working', async () => {
      // Its own admin, so other tests keep theirs.
      const startPw = 'RootRotationStart0123456789';
      await query(
        appUrl,
        `create role rot_admin login createrole password '${startPw}'; grant select on t to rot_admin with grant option`,
      );
      const rotConfig = postgresqlEngine.parseConfig({ ...config, username: 'rot_admin', password: startPw });
      const engine = open(rotConfig);
      await engine.verify();
      const t0 = performance.now();
      const next = postgresqlEngine.parseConfig(await engine.rotateRoot(generatePassword(32)));
      timings('pg rotateRoot', performance.now() - t0);
      assert.notEqual(next.password, startPw);
      assert.ok(next.password.length >= 32);
      assert.deepEqual({ ...next, password: '' }, { ...rotConfig, password: '' });
      await assert.rejects(query(login('rot_admin', startPw), 'select 1'), { code: '28P01' });
      assert.deepEqual(await query(login('rot_admin', next.password), 'select 1 as one'), [{ one: 1 }]);
      // The same engine object and a fresh one from the returned config both work.
      for (const e of [engine, open(next)]) {
        await e.verify();
        const r = postgresqlEngine.parseRole({ grants: ['SELECT ON t'] });
        const prepared = e.prepare(r, ctx());
        await e.create(r, prepared, ctx());
        assert.deepEqual(await query(login(prepared.username, prepared.password), 'select v from t'), [
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
