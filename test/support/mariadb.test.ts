import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { inspect } from 'node:util';
import mysql from 'mysql2/promise';
import { type MariadbServer, startMariadb } from './mariadb.js';

const timings = (label: string, ms: number) => {
  if (process.env.CUSTODY_TEST_TIMINGS) console.log(`${label}: ${Math.round(ms)} ms`);
};

async function query<T = any>(config: mysql.ConnectionOptions, sql: string): Promise<T[]> {
  const conn = await mysql.createConnection({ connectTimeout: 5000, ...config });
  try {
    const [rows] = await conn.query(sql);
    return rows as T[];
  } finally {
    await conn.end().catch(() => {});
  }
}

describe('startMariadb', () => {
  let db: MariadbServer;
  const as = (user: string, password: string, database?: string): mysql.ConnectionOptions => ({
    host: db.host,
    port: db.port,
    user,
    password,
    database,
  });

  before(async () => {
    const t0 = performance.now();
    db = await startMariadb();
    timings('startMariadb', performance.now() - t0);
  });
  after(async () => {
    await db?.stop();
  });

  it('accepts root and the admin with their passwords over TCP', async () => {
    assert.equal(db.host, '127.0.0.1');
    assert.equal(db.url, `mysql://root:${encodeURIComponent(db.rootPassword)}@127.0.0.1:${db.port}/`);
    const [row] = await db.query('select 1 as one, version() as v, current_user() as u');
    assert.equal(row.one, 1);
    assert.match(row.v, /MariaDB/);
    assert.equal(row.u, 'root@127.0.0.1');
    const [admin] = await query(as(db.adminUser, db.adminPassword), 'select current_user() as u');
    assert.equal(admin.u, 'custody_admin@%');
    const grants = await query(as(db.adminUser, db.adminPassword), 'show grants');
    assert.match(
      Object.values(grants[0]).join(' '),
      /GRANT ALL PRIVILEGES ON \*\.\* TO `custody_admin`@`%`.*WITH GRANT OPTION/,
    );
  });

  it('refuses wrong and empty passwords, and has no password-less accounts', async () => {
    for (const user of [db.rootUser, db.adminUser]) {
      await assert.rejects(query(as(user, 'wrong'), 'select 1'), { code: 'ER_ACCESS_DENIED_ERROR' });
      await assert.rejects(query(as(user, ''), 'select 1'), { code: 'ER_ACCESS_DENIED_ERROR' });
    }
    await assert.rejects(query(as('', ''), 'select 1'), { code: 'ER_ACCESS_DENIED_ERROR' });
    const users = await db.query(
      `select User as user, Host as host, authentication_string = '' as nopw from mysql.user order by User, Host`,
    );
    for (const u of users) {
      if (u.user === 'mariadb.sys') continue;
      assert.equal(u.nopw, 0, `${u.user}@${u.host} has no password`);
    }
    assert.deepEqual(
      users.map((u) => `${u.user}@${u.host}`),
      ['custody_admin@%', 'mariadb.sys@localhost', 'root@127.0.0.1', 'root@localhost'],
    );
  });

  it('creates databases; query takes parameters', async () => {
    await db.createDatabase('app_test');
    await db.query('create table app_test.t (v text); insert into app_test.t values (?)', ['kept']);
    assert.deepEqual(await db.query('select v from app_test.t'), [{ v: 'kept' }]);
    await assert.rejects(db.createDatabase('bad`name'));
  });

  it('pause() makes connections fail and resume() brings the same data back', async () => {
    const t0 = performance.now();
    await db.pause();
    timings('pause', performance.now() - t0);
    await assert.rejects(db.query('select 1'), { code: 'ECONNREFUSED' });
    const t1 = performance.now();
    await db.resume();
    timings('resume', performance.now() - t1);
    assert.deepEqual(await db.query('select v from app_test.t'), [{ v: 'kept' }]);
  });

  it('restart() keeps the port and the data', async () => {
    const port = db.port;
    await db.restart();
    assert.equal(db.port, port);
    assert.deepEqual(await db.query('select v from app_test.t'), [{ v: 'kept' }]);
  });

  it('keeps the passwords out of inspect output, the server log and the data dir root', async () => {
    assert.ok(!inspect(db).includes(db.rootPassword));
    assert.ok(!inspect(db).includes(db.adminPassword));
    const log = await readFile(join(dirname(db.dataDir), 'mariadb.log'), 'utf8');
    assert.ok(!log.includes(db.rootPassword) && !log.includes(db.adminPassword));
    assert.equal(existsSync(join(dirname(db.dataDir), 'init.sql')), false);
  });
});

describe('stop', () => {
  it('removes the data dir and is idempotent', async () => {
    const db = await startMariadb();
    const config = { host: db.host, port: db.port, user: db.rootUser, password: db.rootPassword };
    assert.deepEqual(await query(config, 'select 2 as two'), [{ two: 2 }]);
    assert.ok(existsSync(db.dataDir));
    await db.stop();
    assert.equal(existsSync(dirname(db.dataDir)), false);
    await assert.rejects(query(config, 'select 1'), { code: 'ECONNREFUSED' });
    await db.stop();
    await assert.rejects(db.resume());
  });
});

describe('exit hook', () => {
  it('kills servers a crashed process left running', async () => {
    const mod = pathToFileURL(join(dirname(fileURLToPath(import.meta.url)), 'mariadb.ts')).href;
    const script = `
      const { startMariadb } = await import(${JSON.stringify(mod)});
      const db = await startMariadb();
      console.log(JSON.stringify({ port: db.port, dataDir: db.dataDir, password: db.rootPassword }));
      throw new Error('simulated crash');`;
    const { code, stdout } = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
      const child = execFile(
        process.execPath,
        ['--import', 'tsx', '--input-type=module', '-e', script],
        { timeout: 60_000 },
        (_err, stdout) => resolve({ code: child.exitCode, stdout: String(stdout) }),
      );
    });
    assert.notEqual(code, 0);
    const { port, dataDir, password } = JSON.parse(stdout.trim().split('\n').pop()!);
    assert.equal(existsSync(dirname(dataDir)), false);
    await assert.rejects(query({ host: '127.0.0.1', port, user: 'root', password }, 'select 1'), {
      code: 'ECONNREFUSED',
    });
  });
});
