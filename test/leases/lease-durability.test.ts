import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { Agent, request } from 'undici';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { type BrokerProcess, startBrokerProcess } from '../support/broker-process.js';
import { type PostgresCluster, startPostgres } from '../support/postgres.js';

let cluster: PostgresCluster;
let dbUrl: string;
const dirs: string[] = [];

before(async () => {
  cluster = await startPostgres();
  dbUrl = await cluster.createDatabase('warehouse');
});
after(async () => {
  await cluster?.stop();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function leftoverRoles(prefix: string): Promise<string[]> {
  const c = new pg.Client({ connectionString: dbUrl });
  await c.connect();
  try {
    return (await c.query('select rolname from pg_roles where rolname like $1', [`${prefix}%`])).rows.map(
      (r) => r.rolname,
    );
  } finally {
    await c.end();
  }
}

async function until(what: string, check: () => Promise<boolean>, ms: number) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  assert.fail(`timed out waiting for ${what}`);
}

const engineConfig = () => ({
  type: 'postgresql',
  config: {
    connection_url: `postgres://${new URL(dbUrl).host}/warehouse`,
    username: cluster.superuser,
    password: cluster.password,
  },
});

test('kill -9 with live leases that expire while the broker is down: all revoked after restart, no orphaned users', async () => {
  const env = { CUSTODY_REAPER_INTERVAL_MS: '200' };
  let bp: BrokerProcess = await startBrokerProcess({ env });
  dirs.push(bp.dataDir);
  const ca = await readFile(bp.caCertPath!, 'utf8');
  let agent = new Agent({ connect: { ca } });
  const call = async (method: string, p: string, body?: unknown) => {
    const res = await request(`${bp.url}${p}`, {
      method: method as 'GET',
      dispatcher: agent,
      headers: { authorization: `Bearer ${bp.rootToken}`, 'content-type': 'application/json' },
      body: JSON.stringify(body ?? {}),
    });
    return { status: res.statusCode, body: (await res.body.json()) as any };
  };
  await call('POST', '/v1/envs', { name: 'crash' });
  const configured = await call('PUT', '/v1/engines/crash/pg', engineConfig());
  assert.equal(configured.status, 200, JSON.stringify(configured.body));
  await call('PUT', '/v1/engines/crash/pg/roles/job', {
    ttl: 15,
    max_ttl: 60,
    config: { username_template: 'crashjob_{{random}}' },
  });
  const leases: any[] = [];
  for (let i = 0; i < 30; i++) {
    const r = await call('POST', '/v1/creds/crash/pg/job', {});
    assert.equal(r.status, 200, JSON.stringify(r.body));
    leases.push(r.body);
  }
  assert.equal((await leftoverRoles('crashjob_')).length, 30);
  await bp.kill9();
  await agent.close();
  // Every lease expires while nobody is running (however long issuing took on a busy machine).
  const lastExpiry = Math.max(...leases.map((l) => Date.parse(l.expires_at)));
  await new Promise((r) => setTimeout(r, Math.max(0, lastExpiry - Date.now()) + 500));
  assert.equal(
    (await leftoverRoles('crashjob_')).length,
    30,
    'nothing revoked them while the broker was down',
  );

  bp = await startBrokerProcess({ dataDir: bp.dataDir, env });
  agent = new Agent({ connect: { ca } });
  try {
    await until(
      'every expired lease to be revoked after restart',
      async () => (await leftoverRoles('crashjob_')).length === 0,
      30_000,
    );
    const list = await call('GET', '/v1/leases?prefix=crash/pg/&limit=100');
    assert.equal(list.body.items.length, 30);
    assert.ok(list.body.items.every((l: any) => l.state === 'revoked'));
  } finally {
    await agent.close();
    await bp.stop();
  }
});

test('two broker nodes on one PostgreSQL storage reap the same due leases: each revoked exactly once', async () => {
  const storageUrl = await cluster.createDatabase('custody_shared');
  const dirA = await mkdtemp(path.join(tmpdir(), 'custody-node-a-'));
  const dirB = await mkdtemp(path.join(tmpdir(), 'custody-node-b-'));
  dirs.push(dirA, dirB);
  process.env.CUSTODY_REAPER_INTERVAL_MS = '100';
  let a: TestBroker | undefined;
  let b: TestBroker | undefined;
  try {
    a = await startTestBroker({ storageUrl, dataDir: dirA });
    // A second node shares the storage and the unseal key file (file mode), nothing else.
    await copyFile(path.join(dirA, 'unseal.key'), path.join(dirB, 'unseal.key'));
    b = await startTestBroker({ storageUrl, dataDir: dirB });
    b.rootToken = a.rootToken;
    await a.call('POST', '/v1/envs', { body: { name: 'multi' } });
    assert.equal((await b.call('PUT', '/v1/engines/multi/pg', { body: engineConfig() })).status, 200);
    await a.call('PUT', '/v1/engines/multi/pg/roles/job', {
      body: { ttl: 2, max_ttl: 60, config: { username_template: 'multijob_{{random}}' } },
    });
    const issued = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        (i % 2 ? a! : b!).call('POST', '/v1/creds/multi/pg/job', { body: {} }),
      ),
    );
    assert.ok(issued.every((r) => r.status === 200));
    await until(
      'both nodes to revoke every lease',
      async () => (await leftoverRoles('multijob_')).length === 0,
      30_000,
    );
    const list = await a.call('GET', '/v1/leases?prefix=multi/pg/&limit=100');
    assert.ok(
      list.body.items.every((l: any) => l.state === 'revoked' && l.attempts === 1),
      'each lease revoked in one attempt',
    );
    const revocations = new Map<string, number>();
    for (const dir of [dirA, dirB]) {
      for (const line of (await readFile(path.join(dir, 'audit.log'), 'utf8')).trim().split('\n')) {
        const e = JSON.parse(line);
        if (e.door === 'internal' && e.action === 'leases/revoke' && e.outcome === 'ok')
          revocations.set(e.resource, (revocations.get(e.resource) ?? 0) + 1);
      }
    }
    assert.equal(revocations.size, 40);
    assert.ok(
      [...revocations.values()].every((n) => n === 1),
      'no lease was revoked twice',
    );
  } finally {
    delete process.env.CUSTODY_REAPER_INTERVAL_MS;
    await a?.stop({ keepData: true });
    await b?.stop({ keepData: true });
  }
});
