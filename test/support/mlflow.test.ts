import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { inspect } from 'node:util';
import { type MlflowServer, mlflowRequest, startMlflow } from './mlflow.js';
import { ensureVenv } from './python-venv.js';

const timings = (label: string, ms: number) => {
  if (process.env.CUSTODY_TEST_TIMINGS) console.log(`${label}: ${Math.round(ms)} ms`);
};

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const out: string[] = [];
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await filesUnder(p)));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

describe('ensureVenv', () => {
  it('is idempotent and fast once built, also when called concurrently', async () => {
    const first = await ensureVenv();
    const t0 = performance.now();
    const [a, b] = await Promise.all([ensureVenv(), ensureVenv()]);
    timings('ensureVenv (built)', performance.now() - t0);
    assert.deepEqual(a, first);
    assert.deepEqual(b, first);
    assert.ok(existsSync(first.python));
    assert.ok(existsSync(join(first.bin, 'mlflow')));
    assert.ok(performance.now() - t0 < 2_000);
  });
});

describe('startMlflow', () => {
  let ml: MlflowServer;
  const admin = () => ({ username: ml.adminUser, password: ml.adminPassword });

  before(async () => {
    const t0 = performance.now();
    ml = await startMlflow();
    timings('startMlflow (incl. ensureVenv)', performance.now() - t0);
  });
  after(async () => {
    await ml?.stop();
  });

  it('serves the basic-auth app on loopback with a random admin password', async () => {
    assert.match(ml.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(ml.adminUser, 'admin');
    assert.ok(ml.adminPassword.length >= 20);
    const me = await mlflowRequest(ml, '2.0/mlflow/users/get', {
      query: { username: 'admin' },
      auth: admin(),
    });
    assert.equal(me.status, 200, me.text);
    assert.equal(me.json.user.is_admin, true);
    assert.ok(!inspect(ml).includes(ml.adminPassword));
  });

  it('refuses missing and wrong credentials with a Basic challenge', async () => {
    for (const auth of [undefined, { username: 'admin', password: 'not-the-password' }]) {
      const res = await mlflowRequest(ml, '2.0/mlflow/experiments/search', {
        body: { max_results: 1 },
        auth,
      });
      assert.equal(res.status, 401);
      assert.equal(res.headers['www-authenticate'], 'Basic realm="mlflow"');
    }
  });

  it('grants nothing by default (NO_PERMISSIONS)', async () => {
    const exp = await mlflowRequest(ml, '2.0/mlflow/experiments/create', {
      body: { name: 'private' },
      auth: admin(),
    });
    assert.equal(exp.status, 200, exp.text);
    const user = { username: 'nobody-special', password: 'nobody-special-pw' };
    const created = await mlflowRequest(ml, '2.0/mlflow/users/create', { body: user, auth: admin() });
    assert.equal(created.status, 200, created.text);
    const read = await mlflowRequest(ml, '2.0/mlflow/experiments/get', {
      query: { experiment_id: String(exp.json.experiment_id) },
      auth: user,
    });
    assert.equal(read.status, 403);
  });

  it('keeps the admin password out of every file it writes', async () => {
    const files = await filesUnder(ml.dataDir);
    assert.ok(files.some((f) => f.endsWith('basic_auth.db')));
    assert.ok(files.some((f) => f.endsWith('basic_auth.ini')));
    for (const f of files) {
      const content = await readFile(f);
      assert.ok(!content.includes(ml.adminPassword), `${f} holds the admin password`);
    }
  });

  it('pause refuses connections; resume brings back the same server with its data', async () => {
    await ml.pause();
    await assert.rejects(
      mlflowRequest(ml, '2.0/mlflow/users/get', { query: { username: 'admin' }, auth: admin() }),
      (err: NodeJS.ErrnoException) => err.code === 'ECONNREFUSED',
    );
    const t0 = performance.now();
    await ml.resume();
    timings('resume', performance.now() - t0);
    const user = await mlflowRequest(ml, '2.0/mlflow/users/get', {
      query: { username: 'nobody-special' },
      auth: admin(),
    });
    assert.equal(user.status, 200, user.text);
    const exp = await mlflowRequest(ml, '2.0/mlflow/experiments/get-by-name', {
      query: { experiment_name: 'private' },
      auth: admin(),
    });
    assert.equal(exp.status, 200, exp.text);
  });

  it('stop kills the server and removes its files; stop again is a no-op', async () => {
    const s = ml;
    await s.stop();
    assert.ok(!existsSync(s.dataDir));
    await assert.rejects(
      mlflowRequest(s, '2.0/mlflow/users/get', { query: { username: 'admin' } }),
      (err: NodeJS.ErrnoException) => err.code === 'ECONNREFUSED',
    );
    await s.stop();
    await assert.rejects(s.resume(), /stopped/);
  });
});
