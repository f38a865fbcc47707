// Custody benchmark: broker vs a bare Fastify baseline, both child processes over HTTPS, in one run.
// Env: BENCH_DURATION (s per load run, default 5), BENCH_WARMUP (s, default 1), BENCH_SECRETS (default 100000).
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Api, forEachConcurrent } from './api.js';
import { type Child, cpuSecondsOf, memoryOf, spawnChild } from './children.js';
import { runLoad } from './load.js';
import { type LoadRow, type Measured, num, printSummary, type Results } from './report.js';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
const RESULTS_FILE = path.join(BENCH_DIR, 'results', 'latest.json');

const seconds = positive('BENCH_DURATION', 5);
const warmupSeconds = positive('BENCH_WARMUP', 1, true);
const memorySecrets = Math.floor(positive('BENCH_SECRETS', 100_000));
const CONNECTIONS = [1, 64];
const READ_SECRETS = 100;
const WRITE_NAMES = 1000;
const CONCURRENCY = 64;
const ENV = 'bench';
const MEM_ENV = 'mem';

function positive(name: string, fallback: number, allowZero = false): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const v = Number(raw);
  if (!Number.isFinite(v) || v < 0 || (v === 0 && !allowZero))
    throw new Error(`${name}=${raw} is not a valid number`);
  return v;
}

const log = (msg: string) => process.stderr.write(`${msg}\n`);
const names = (prefix: string, count: number, width: number) =>
  Array.from({ length: count }, (_, i) => `${prefix}-${String(i).padStart(width, '0')}`);

// Cleanup runs once, on success, error or signal: children first, then the temp data dir.
const cleanups: Array<() => Promise<unknown>> = [];
let cleaned: Promise<void> | undefined;
function cleanup(): Promise<void> {
  cleaned ??= (async () => {
    for (const fn of cleanups.reverse()) await fn().catch((err) => log(`cleanup: ${(err as Error).message}`));
  })();
  return cleaned;
}
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    log(`\n${sig}: cleaning up`);
    void cleanup().then(() => process.exit(130));
  });
}

async function main(): Promise<void> {
  const started = Date.now();
  const loadAvgAtStart = os.loadavg();
  const warnings: string[] = [];
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'custody-bench-'));
  cleanups.push(() => rm(dataDir, { recursive: true, force: true }));

  log(`starting broker (data dir ${dataDir})`);
  const broker = await spawnChild('broker', 'bench/broker-main.ts', [dataDir, '0']);
  cleanups.push(() => broker.stop());
  const token = (await readFile(path.join(dataDir, 'root-token'), 'utf8')).trim();
  const ca = await readFile(path.join(dataDir, 'tls', 'ca.pem'), 'utf8');
  const tlsDir = path.join(dataDir, 'tls');
  const baseline = await spawnChild('baseline', 'bench/baseline-main.ts', [
    path.join(tlsDir, 'server.pem'),
    path.join(tlsDir, 'server-key.pem'),
    '0',
  ]);
  cleanups.push(() => baseline.stop());
  log(`broker ${broker.url} (pid ${broker.pid}), baseline ${baseline.url} (pid ${baseline.pid})`);
  const brokerAtStart = await memoryOf(broker.pid);

  const api = new Api(broker.url, ca, token, CONCURRENCY);
  cleanups.push(() => api.close());
  const readPaths = names('read', READ_SECRETS, 3).map((n) => `/v1/secrets/${ENV}/${n}`);
  const writePaths = names('write', WRITE_NAMES, 4).map((n) => `/v1/secrets/${ENV}/${n}`);
  await api.call('POST', '/v1/envs', { name: ENV });
  // Pre-write every name so the write runs measure new versions, not first creation.
  const seedPaths = [...readPaths, ...writePaths];
  await forEachConcurrent(seedPaths.length, CONCURRENCY, (i) =>
    api.call('PUT', seedPaths[i], { value: `initial-${i}` }),
  );

  // Load: for each scenario, the baseline then the broker, each warmed up first.
  const rows: LoadRow[] = [];
  const targets = { baseline, broker };
  for (const scenario of ['read', 'write'] as const) {
    for (const connections of CONNECTIONS) {
      const measured = {} as Record<keyof typeof targets, Measured>;
      for (const [label, child] of Object.entries(targets) as Array<[keyof typeof targets, Child]>) {
        const opts = {
          url: child.url,
          ca,
          token,
          connections,
          method: scenario === 'read' ? ('GET' as const) : ('PUT' as const),
          paths: scenario === 'read' ? readPaths : writePaths,
        };
        if (warmupSeconds > 0) await runLoad({ ...opts, seconds: warmupSeconds });
        const cpuBefore = await cpuSecondsOf(child.pid);
        const t0 = performance.now();
        const r = await runLoad({ ...opts, seconds });
        const wall = (performance.now() - t0) / 1000;
        const cpuAfter = await cpuSecondsOf(child.pid);
        const cpuPercent =
          cpuBefore === null || cpuAfter === null ? null : ((cpuAfter - cpuBefore) / wall) * 100;
        measured[label] = { ...r, cpuPercent };
        log(
          `${scenario} c=${connections} ${label}: ${num(r.rps)} req/s, p50 ${num(r.p50Ms, 2)} ms, ` +
            `p99 ${num(r.p99Ms, 2)} ms, cpu ${num(cpuPercent)}%`,
        );
        if (r.non2xx || r.errors || r.timeouts) {
          const w =
            `WARNING: ${scenario} c=${connections} ${label}: ${r.non2xx} non-2xx, ${r.errors} errors, ` +
            `${r.timeouts} timeouts (status codes ${JSON.stringify(r.statusCodes)})`;
          warnings.push(w);
          log(w);
        }
      }
      const { baseline: b, broker: k } = measured;
      rows.push({
        scenario,
        connections,
        baseline: b,
        broker: k,
        ratio: { rps: k.rps / b.rps, p50: k.p50Ms / b.p50Ms, p99: k.p99Ms / b.p99Ms },
      });
    }
  }

  // Memory: store N secrets, then read N random ones, sampling the broker's resident set.
  const baselineIdle = await memoryOf(baseline.pid);
  const beforeSeed = await memoryOf(broker.pid);
  await api.call('POST', '/v1/envs', { name: MEM_ENV });
  const memName = (i: number) => `/v1/secrets/${MEM_ENV}/s-${String(i).padStart(7, '0')}`;
  const progress = (verb: string) => (done: number) => {
    if (done % 10_000 === 0 || done === memorySecrets) log(`${verb} ${num(done)} / ${num(memorySecrets)}`);
  };
  let t0 = performance.now();
  await forEachConcurrent(
    memorySecrets,
    CONCURRENCY,
    (i) => api.call('PUT', memName(i), { value: `secret-value-${i}-${'x'.repeat(32)}` }),
    progress('stored'),
  );
  const seedPerSecond = memorySecrets / ((performance.now() - t0) / 1000);
  const afterSeed = await memoryOf(broker.pid);
  t0 = performance.now();
  await forEachConcurrent(
    memorySecrets,
    CONCURRENCY,
    (_i) => api.call('GET', memName(Math.floor(Math.random() * memorySecrets))),
    progress('read'),
  );
  const readPerSecond = memorySecrets / ((performance.now() - t0) / 1000);
  const afterReads = await memoryOf(broker.pid);
  const memory = {
    baselineIdle,
    brokerAtStart,
    beforeSeed,
    afterSeed,
    afterReads,
    seedPerSecond,
    readPerSecond,
  };

  const totalSeconds = (Date.now() - started) / 1000;
  const results: Results = {
    startedAt: new Date(started).toISOString(),
    totalSeconds,
    machine: {
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model ?? 'unknown',
      totalMemMiB: Math.round(os.totalmem() / 2 ** 20),
      node: process.version,
      // Other work on the machine skews every figure; the load average says how busy it was.
      loadAvgAtStart: loadAvgAtStart.map((x) => Number(x.toFixed(2))),
      platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    },
    settings: {
      durationSeconds: seconds,
      warmupSeconds,
      connections: CONNECTIONS,
      readSecrets: READ_SECRETS,
      writeNames: WRITE_NAMES,
      memorySecrets,
      memoryConcurrency: CONCURRENCY,
      broker: 'child process; SQLite, HTTPS (generated CA), file audit sink; log level warn',
      baseline: 'child process; bare Fastify 5, HTTPS with the same certificate, fixed JSON bodies',
    },
    load: rows,
    memory,
    warnings,
  };
  await mkdir(path.dirname(RESULTS_FILE), { recursive: true });
  await writeFile(RESULTS_FILE, `${JSON.stringify(results, null, 2)}\n`);
  printSummary(results);
  console.log(`\nJSON: ${path.relative(process.cwd(), RESULTS_FILE)}`);
}

try {
  await main();
} catch (err) {
  process.exitCode = 1;
  log(`bench failed: ${(err as Error).stack ?? err}`);
} finally {
  await cleanup();
}
