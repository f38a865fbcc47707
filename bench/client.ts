// Client-side costs: cached vs uncached `getSecret`, MLflow request overhead of `fetchWithAuth` and of
// the local proxy versus the same requests with a fixed header, and the wall time of `custody run`.
// Usage: node --import tsx bench/client.ts
//   BENCH_CLIENT_SECONDS (default 1.5: each rate measurement), BENCH_CLIENT_RUNS (default 10: process
//   starts per variant), BENCH_CLIENT_PG (default 1: also `custody run --creds` on a real PostgreSQL).
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { Agent, request } from 'undici';
import { startBroker } from '../src/broker.js';
import { CustodyClient } from '../src/client/custody-client.js';
import { credentialFromSecret } from '../src/client/mlflow/credentials.js';
import { fetchWithAuth } from '../src/client/mlflow/fetch-with-auth.js';
import { startMlflowProxy } from '../src/client/mlflow/proxy.js';
import { staticSource } from '../src/client/mlflow/source.js';
import { resolveServerConfig } from '../src/config.js';
import { type PostgresCluster, startPostgres } from '../test/support/postgres.js';

const SECONDS = Number(process.env.BENCH_CLIENT_SECONDS ?? 1.5);
const RUNS = Number(process.env.BENCH_CLIENT_RUNS ?? 10);
const WITH_PG = process.env.BENCH_CLIENT_PG !== '0';
const REPO = fileURLToPath(new URL('..', import.meta.url));
const CUSTODY = path.join(REPO, 'bin/custody');
const log = (m: string) => process.stderr.write(`${m}\n`);
const fmt = (n: number, d = 0) =>
  n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** Runs `fn` back to back from `concurrency` loops for SECONDS; ops/s and p50 latency (ms). */
async function measure(
  fn: () => Promise<unknown>,
  concurrency = 1,
): Promise<{ perSecond: number; p50: number }> {
  // Warm-up (connections, JIT): at least 200 calls and 0.25 s, so the order of variants matters less.
  const warm = performance.now() + 250;
  for (let i = 0; i < 200 || performance.now() < warm; i++) await fn();
  const lat: number[] = [];
  const t0 = performance.now();
  const end = t0 + SECONDS * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const s = performance.now();
        await fn();
        lat.push(performance.now() - s);
      }
    }),
  );
  return { perSecond: lat.length / ((performance.now() - t0) / 1000), p50: median(lat) };
}

/** Wall time (ms) of one process run to completion; asynchronous, so in-process servers keep serving. */
function wall(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    let err = '';
    const p = spawn(cmd, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    p.stderr.on('data', (d) => (err += d));
    p.on('error', reject);
    p.on('close', (code) => {
      if (code !== 0) reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${err}`));
      else resolve(performance.now() - t0);
    });
  });
}
async function medianWall(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  await wall(cmd, args, env); // warm the page cache
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) times.push(await wall(cmd, args, env));
  return median(times);
}

const dataDir = await mkdtemp(path.join(os.tmpdir(), 'custody-client-bench-'));
const broker = await startBroker(
  resolveServerConfig({ dataDir, listen: '127.0.0.1:0', logLevel: 'warn' }, {}),
  pino({ level: 'warn' }),
);
const ca = await readFile(broker.caCertPath!, 'utf8');
const root = (await readFile(broker.rootTokenPath!, 'utf8')).trim();
const admin = new Agent({ connect: { ca } });
const call = async (method: string, p: string, body?: unknown) => {
  const res = await request(`${broker.url}${p}`, {
    method: method as 'GET',
    dispatcher: admin,
    headers: { authorization: `Bearer ${root}`, 'content-type': 'application/json' },
    body: JSON.stringify(body ?? {}),
  });
  const json = (await res.body.json()) as any;
  if (res.statusCode >= 300) throw new Error(`${p}: ${res.statusCode} ${JSON.stringify(json)}`);
  return json;
};
let cluster: PostgresCluster | null = null;
const upstreamServer = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    const body = JSON.stringify({ experiments: [{ experiment_id: '1', name: 'bench' }] });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
});

try {
  await call('POST', '/v1/envs', { name: 'prod' });
  await call('PUT', '/v1/secrets/prod/s', { value: 'bench-secret-value' });

  // (a) getSecret: cached vs a broker round trip every call.
  log('client: getSecret…');
  const client = new CustodyClient({ addr: broker.url, token: root, caCert: ca, autoRenew: false });
  await client.getSecret('prod/s'); // warms the cache
  const cached = await measure(() => client.getSecret('prod/s'));
  const uncached = await measure(() => client.getSecret('prod/s', { noCache: true }));
  await client.close();

  // (b) MLflow request overhead against a local upstream answering a small JSON body.
  log('client: MLflow request overhead…');
  await new Promise<void>((r) => upstreamServer.listen(0, '127.0.0.1', r));
  const upstream = `http://127.0.0.1:${(upstreamServer.address() as AddressInfo).port}`;
  const SEARCH = '/api/2.0/mlflow/experiments/search?max_results=10';
  const credential = credentialFromSecret('bench-user:bench-password-123');
  const source = staticSource(credential);
  const direct = new Agent({ connections: 64 });
  const viaProxy = new Agent({ connections: 64 });
  const proxy = await startMlflowProxy({ upstream, source, port: 0 });
  const variants: Array<[string, () => Promise<unknown>]> = [
    [
      'undici request, fixed header (baseline)',
      async () => {
        const res = await request(`${upstream}${SEARCH}`, {
          dispatcher: direct,
          headers: { [credential.header]: credential.value },
        });
        await res.body.json();
      },
    ],
    [
      'fetch, fixed header',
      async () => {
        const res = await fetch(`${upstream}${SEARCH}`, {
          headers: { [credential.header]: credential.value },
        });
        await res.json();
      },
    ],
    [
      'fetchWithAuth, static source',
      async () => {
        const res = await fetchWithAuth(`${upstream}${SEARCH}`, {}, { source });
        await res.json();
      },
    ],
    [
      'through startMlflowProxy',
      async () => {
        const res = await request(`${proxy.url}${SEARCH}`, { dispatcher: viaProxy });
        if (res.statusCode !== 200) throw new Error(`proxy answered ${res.statusCode}`);
        await res.body.json();
      },
    ],
  ];
  const overhead: Array<{ name: string; c1: { perSecond: number; p50: number }; c16: typeof cached }> = [];
  for (const [name, fn] of variants) {
    overhead.push({ name, c1: await measure(fn, 1), c16: await measure(fn, 16) });
  }
  await proxy.close();
  await direct.close();
  await viaProxy.close();

  // (c) Wall time of `custody run` vs a bare node start.
  log(`client: process wall times (median of ${RUNS})…`);
  const childEnv: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    CUSTODY_ADDR: broker.url,
    CUSTODY_TOKEN: root,
    CUSTODY_CACERT: broker.caCertPath!,
  };
  const nodeOnly = await medianWall(process.execPath, ['-e', '0'], childEnv);
  const runSecret = await medianWall(
    process.execPath,
    [CUSTODY, 'run', '--secret', 'X=prod/s', '--', 'true'],
    childEnv,
  );
  let runLease: number | null = null;
  if (WITH_PG) {
    log('client: starting PostgreSQL for the lease variant…');
    cluster = await startPostgres();
    const dbUrl = await cluster.createDatabase('bench');
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
      config: { username_template: 'bc_{{random}}' },
    });
    runLease = await medianWall(
      process.execPath,
      [CUSTODY, 'run', '--secret', 'X=prod/s', '--creds', 'PG=prod/pg/job', '--', 'true'],
      childEnv,
    );
  }

  console.log('\nCustodyClient.getSecret (in-process broker over HTTPS, 1 caller)');
  console.log(`uncached (noCache, a broker round trip each): ${fmt(uncached.perSecond)} calls/s`);
  console.log(
    `cached (first call warmed the cache):        ${fmt(cached.perSecond)} calls/s  (${fmt(cached.perSecond / uncached.perSecond, 1)}x uncached)`,
  );

  console.log(`\nMLflow request overhead: GET ${SEARCH} to a local node:http server`);
  console.log(
    'variant                                     c=1 req/s   p50 ms   vs base   c=16 req/s   p50 ms   vs base',
  );
  const base = overhead[0];
  for (const o of overhead) {
    console.log(
      `${o.name.padEnd(42)} ${fmt(o.c1.perSecond).padStart(10)} ${fmt(o.c1.p50, 3).padStart(8)} ${`${fmt(o.c1.perSecond / base.c1.perSecond, 2)}x`.padStart(9)} ${fmt(o.c16.perSecond).padStart(12)} ${fmt(o.c16.p50, 3).padStart(8)} ${`${fmt(o.c16.perSecond / base.c16.perSecond, 2)}x`.padStart(9)}`,
    );
  }

  console.log(`\nProcess wall time (median of ${RUNS} runs)`);
  console.log(`node -e 0 (baseline):                                 ${fmt(nodeOnly, 1)} ms`);
  console.log(
    `custody run --secret X=prod/s -- true:                ${fmt(runSecret, 1)} ms  (${fmt(runSecret / nodeOnly, 2)}x)`,
  );
  if (runLease !== null)
    console.log(
      `custody run --secret … --creds PG=prod/pg/job -- true: ${fmt(runLease, 1)} ms  (${fmt(runLease / nodeOnly, 2)}x; issue + revoke on PostgreSQL)`,
    );
  else console.log('custody run with a lease: skipped (BENCH_CLIENT_PG=0)');
} finally {
  upstreamServer.close();
  await admin.close();
  await broker.close();
  await cluster?.stop();
  await rm(dataDir, { recursive: true, force: true });
}
