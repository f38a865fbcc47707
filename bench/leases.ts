// Dynamic credentials on a real PostgreSQL: issue+revoke rate vs raw CREATE/DROP ROLE, reaper
// throughput for due leases, and start-up time with 100 000 active leases in storage.
// Usage: node --import tsx bench/leases.ts  (BENCH_LEASE_SECONDS=5, BENCH_REAP_LEASES=10000, BENCH_STORED_LEASES=100000)
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import pino from 'pino';
import { Agent, request } from 'undici';
import { type RunningBroker, startBroker } from '../src/broker.js';
import { resolveServerConfig } from '../src/config.js';
import { openStorage } from '../src/storage/storage.js';
import { startPostgres } from '../test/support/postgres.js';

const SECONDS = Number(process.env.BENCH_LEASE_SECONDS ?? 5);
const REAP = Number(process.env.BENCH_REAP_LEASES ?? 10_000);
const STORED = Number(process.env.BENCH_STORED_LEASES ?? 100_000);
const log = (m: string) => process.stderr.write(`${m}\n`);
const fmt = (n: number, d = 0) =>
  n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });

const cluster = await startPostgres();
const dataDir = await mkdtemp(path.join(os.tmpdir(), 'custody-lease-bench-'));
let broker: RunningBroker | null = null;
try {
  const dbUrl = await cluster.createDatabase('bench');
  const config = resolveServerConfig({ dataDir, listen: '127.0.0.1:0', logLevel: 'warn' }, {});
  const start = async () => {
    const t0 = performance.now();
    const b = await startBroker(config, pino({ level: 'warn' }));
    return { b, ms: performance.now() - t0 };
  };
  const first = await start();
  broker = first.b;
  const agent = new Agent({ connect: { ca: await readFile(broker.caCertPath!, 'utf8') }, connections: 16 });
  const root = (await readFile(broker.rootTokenPath!, 'utf8')).trim();
  const call = async (method: string, p: string, body?: unknown) => {
    const res = await request(`${broker!.url}${p}`, {
      method: method as 'GET',
      dispatcher: agent,
      headers: { authorization: `Bearer ${root}`, 'content-type': 'application/json' },
      body: JSON.stringify(body ?? {}),
    });
    const json = (await res.body.json()) as any;
    if (res.statusCode >= 300) throw new Error(`${p}: ${res.statusCode} ${JSON.stringify(json)}`);
    return json;
  };
  await call('POST', '/v1/envs', { name: 'prod' });
  await call('PUT', '/v1/engines/prod/pg', {
    type: 'postgresql',
    config: {
      connection_url: `postgres://${new URL(dbUrl).host}/bench`,
      username: cluster.superuser,
      password: cluster.password,
    },
  });
  await call('PUT', '/v1/engines/prod/pg/roles/job', {
    ttl: '1h',
    max_ttl: '24h',
    config: { username_template: 'bj_{{random}}' },
  });

  // 1. Issue + revoke through the broker vs the same CREATE ROLE / DROP ROLE pair over one connection.
  log('leases: issue+revoke loop…');
  let pairs = 0;
  let end = performance.now() + SECONDS * 1000;
  while (performance.now() < end) {
    const l = await call('POST', '/v1/creds/prod/pg/job', {});
    await call('POST', '/v1/leases/revoke', { lease_id: l.lease_id });
    pairs++;
  }
  const brokerPairs = pairs / SECONDS;
  const raw = new pg.Client({ connectionString: dbUrl });
  await raw.connect();
  pairs = 0;
  end = performance.now() + SECONDS * 1000;
  while (performance.now() < end) {
    const name = `raw_${randomBytes(6).toString('hex')}`;
    await raw.query(
      `CREATE ROLE ${name} WITH LOGIN PASSWORD '${randomBytes(16).toString('hex')}' VALID UNTIL '2100-01-01'`,
    );
    await raw.query(`DROP ROLE ${name}`);
    pairs++;
  }
  const rawPairs = pairs / SECONDS;

  // 2. Reaper throughput: REAP live leases made due at once.
  log(`leases: issuing ${REAP} leases for the reaper…`);
  let issued = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (issued < REAP) {
        issued++;
        await call('POST', '/v1/creds/prod/pg/job', {});
        if (issued % 2000 === 0) log(`  ${issued}/${REAP}`);
      }
    }),
  );
  const { storage, leases } = broker.services;
  const t0 = performance.now();
  await storage.db
    .updateTable('leases')
    .set({ next_attempt_at: 0, expires_at: Date.now() })
    .where('state', '=', 'active')
    .execute();
  const total = Number(
    (
      await storage.db
        .selectFrom('leases')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .executeTakeFirstOrThrow()
    ).n,
  );
  while ((await leases.countByState('revoked')) < total) {
    await new Promise((r) => setTimeout(r, 100));
  }
  const reapSeconds = (performance.now() - t0) / 1000;
  const left = (await raw.query("select count(*)::int as n from pg_roles where rolname like 'bj_%'")).rows[0]
    .n;
  await raw.end();
  await agent.close();
  await broker.close();
  broker = null;

  // 3. Start-up with STORED active (not yet due) leases in storage: nothing is loaded into memory.
  log(`leases: writing ${STORED} active lease rows…`);
  const store = await openStorage(path.join(dataDir, 'custody.db'));
  const now = Date.now();
  for (let i = 0; i < STORED; i += 1000) {
    await store.db
      .insertInto('leases')
      .values(
        Array.from({ length: Math.min(1000, STORED - i) }, () => {
          const id = `prod/pg/job/${randomBytes(12).toString('base64url')}`;
          return {
            id,
            env: 'prod',
            engine: 'pg',
            role: 'job',
            identity_id: null,
            token_accessor: null,
            username: 'bj_stored',
            issued_at: now,
            expires_at: now + 86_400_000,
            max_expires_at: now + 86_400_000,
            last_renewed_at: null,
            renewable: 1,
            state: 'active' as const,
            attempts: 0,
            last_error: null,
            next_attempt_at: now + 86_400_000,
            claimed_until: null,
            revocation: 'v1:1:stored',
            revoked_at: null,
            updated_at: now,
          };
        }),
      )
      .execute();
  }
  await store.close();
  const second = await start();
  broker = second.b;
  const rss = Number((await readFile('/proc/self/status', 'utf8')).match(/VmRSS:\s+(\d+)/)![1]) / 1024;

  console.log('\nDynamic PostgreSQL credentials');
  console.log(
    `issue+revoke through the broker: ${fmt(brokerPairs, 1)} pairs/s; raw CREATE ROLE+DROP ROLE on one connection: ${fmt(rawPairs, 1)} pairs/s; ratio ${(brokerPairs / rawPairs).toFixed(3)}x`,
  );
  console.log(
    `reaper: ${fmt(REAP)} due leases revoked in ${reapSeconds.toFixed(1)} s = ${fmt(REAP / reapSeconds)} leases/s (${left} roles left behind)`,
  );
  console.log(
    `start to serving: ${fmt(first.ms)} ms empty; ${fmt(second.ms)} ms with ${fmt(STORED)} active leases in storage (ratio ${(second.ms / first.ms).toFixed(2)}x); bench process RSS after start ${fmt(rss)} MiB`,
  );
} finally {
  await broker?.close();
  await cluster.stop();
  await rm(dataDir, { recursive: true, force: true });
}
