import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { inspect } from 'node:util';
import pg from 'pg';
import { type PostgresCluster, startPostgres } from './postgres.js';

const timings = (label: string, ms: number) => {
  if (process.env.CUSTODY_TEST_TIMINGS) console.log(`${label}: ${Math.round(ms)} ms`);
};

async function query<T = any>(url: string | pg.ClientConfig, sql: string): Promise<T[]> {
  const client = new pg.Client(typeof url === 'string' ? { connectionString: url } : url);
  await client.connect();
  try {
    return (await client.query(sql)).rows as T[];
  } finally {
    await client.end();
  }
}

describe('startPostgres', () => {
  let pgc: PostgresCluster;
  let appUrl: string;

  before(async () => {
    const t0 = performance.now();
    pgc = await startPostgres();
    timings('startPostgres', performance.now() - t0);
  });
  after(async () => {
    await pgc?.stop();
  });

  it('accepts the right password over TCP', async () => {
    assert.equal(pgc.host, '127.0.0.1');
    assert.equal(pgc.superuser, 'postgres');
    assert.equal(
      pgc.url,
      `postgres://postgres:${encodeURIComponent(pgc.password)}@127.0.0.1:${pgc.port}/postgres`,
    );
    const [row] = await query(pgc.url, 'select 1 as one, current_setting($$server_version_num$$)::int as v');
    assert.equal(row.one, 1);
    assert.ok(row.v >= 150000, `server_version_num ${row.v}`);
    const [auth] = await query(pgc.url, `select current_setting('password_encryption') as enc`);
    assert.equal(auth.enc, 'scram-sha-256');
  });

  it('refuses a wrong password (28P01)', async () => {
    const config = {
      host: pgc.host,
      port: pgc.port,
      user: pgc.superuser,
      password: 'wrong',
      database: 'postgres',
    };
    await assert.rejects(query(config, 'select 1'), { code: '28P01' });
    await assert.rejects(query({ ...config, password: '' }, 'select 1'));
  });

  it('creates databases', async () => {
    appUrl = await pgc.createDatabase('app_test');
    assert.equal(appUrl, pgc.urlFor('app_test'));
    await query(appUrl, `create table t (v text); insert into t values ('kept')`);
    assert.deepEqual(await query(appUrl, 'select v from t'), [{ v: 'kept' }]);
    await assert.rejects(pgc.createDatabase('bad"name'));
  });

  it('pause() makes connections fail and resume() brings the same data back', async () => {
    await pgc.pause();
    await assert.rejects(query(appUrl, 'select 1'), { code: 'ECONNREFUSED' });
    const t0 = performance.now();
    await pgc.resume();
    timings('resume', performance.now() - t0);
    assert.deepEqual(await query(appUrl, 'select v from t'), [{ v: 'kept' }]);
  });

  it('restart() keeps the port and the data', async () => {
    const port = pgc.port;
    await pgc.restart();
    assert.equal(pgc.port, port);
    assert.deepEqual(await query(appUrl, 'select v from t'), [{ v: 'kept' }]);
  });

  it('keeps the password out of inspect output and the server log', async () => {
    assert.ok(!inspect(pgc).includes(pgc.password));
    const log = await readFile(join(dirname(pgc.dataDir), 'postgres.log'), 'utf8');
    assert.ok(!log.includes(pgc.password));
  });
});

describe('startPostgres with an explicit password', () => {
  it('URL-encodes it, and stop() removes the data dir', async () => {
    const password = 'p@ss:w/rd %with# space';
    const pgc = await startPostgres({ password });
    try {
      assert.equal(pgc.password, password);
      assert.deepEqual(await query(pgc.url, 'select 2 as two'), [{ two: 2 }]);
      assert.ok(existsSync(pgc.dataDir));
    } finally {
      await pgc.stop();
    }
    assert.equal(existsSync(pgc.dataDir), false);
    assert.equal(existsSync(dirname(pgc.dataDir)), false);
    await assert.rejects(query(pgc.url, 'select 1'), { code: 'ECONNREFUSED' });
    await pgc.stop(); // idempotent
    await assert.rejects(pgc.resume());
  });
});

describe('exit hook', () => {
  it('stops clusters a crashed process left running', async () => {
    const mod = pathToFileURL(join(dirname(fileURLToPath(import.meta.url)), 'postgres.ts')).href;
    const script = `
      const { startPostgres } = await import(${JSON.stringify(mod)});
      const c = await startPostgres();
      console.log(JSON.stringify({ url: c.url, dataDir: c.dataDir }));
      throw new Error('simulated crash');`;
    const { code, stdout } = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
      const child = execFile(
        process.execPath,
        ['--import', 'tsx', '--input-type=module', '-e', script],
        { timeout: 30_000 },
        (_err, stdout) => resolve({ code: child.exitCode, stdout: String(stdout) }),
      );
    });
    assert.notEqual(code, 0);
    const { url, dataDir } = JSON.parse(stdout.trim().split('\n').pop()!);
    assert.equal(existsSync(dataDir), false);
    await assert.rejects(query(url, 'select 1'), { code: 'ECONNREFUSED' });
  });
});
