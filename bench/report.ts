// The bench's result shape and its plain-text report.
import type { Memory } from './children.js';
import type { LoadResult } from './load.js';

export interface Measured extends LoadResult {
  cpuPercent: number | null;
}
export interface LoadRow {
  scenario: 'read' | 'write';
  connections: number;
  baseline: Measured;
  broker: Measured;
  ratio: { rps: number; p50: number; p99: number };
}
export interface Results {
  startedAt: string;
  totalSeconds: number;
  machine: {
    cpus: number;
    cpuModel: string;
    totalMemMiB: number;
    node: string;
    loadAvgAtStart: number[];
    platform: string;
  };
  settings: {
    durationSeconds: number;
    warmupSeconds: number;
    connections: number[];
    readSecrets: number;
    writeNames: number;
    memorySecrets: number;
    memoryConcurrency: number;
    broker: string;
    baseline: string;
  };
  load: LoadRow[];
  memory: {
    baselineIdle: Memory | null;
    brokerAtStart: Memory | null;
    beforeSeed: Memory | null;
    afterSeed: Memory | null;
    afterReads: Memory | null;
    seedPerSecond: number;
    readPerSecond: number;
  };
  warnings: string[];
}

export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
  // First column left-aligned (labels), the rest right-aligned (numbers).
  const line = (cells: string[]) =>
    cells.map((s, c) => (c === 0 ? s.padEnd(widths[c]) : s.padStart(widths[c]))).join('  ');
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export const num = (x: number | null | undefined, digits = 0): string =>
  x === null || x === undefined || !Number.isFinite(x)
    ? 'n/a'
    : x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });

export const ratio = (x: number): string => (Number.isFinite(x) ? `${x.toFixed(2)}x` : 'n/a');

export function printSummary(r: Results): void {
  const { machine, load: rows, memory: m, warnings, totalSeconds } = r;
  const { durationSeconds, warmupSeconds, memorySecrets, memoryConcurrency } = r.settings;
  const out = console.log;
  out('\n=== Custody benchmark ===');
  out(
    `${machine.cpus} x ${machine.cpuModel}, Node ${machine.node}, ` +
      `load average at start ${machine.loadAvgAtStart.join(' ')}`,
  );
  out(
    `${durationSeconds} s per run after ${warmupSeconds} s warm-up; load generator: autocannon in the parent process`,
  );
  out(
    '\nLoad over HTTPS. ratio = broker / baseline (throughput below 1x and latency above 1x = broker slower)\n',
  );
  out(
    table(
      [
        'scenario',
        'conns',
        'base req/s',
        'broker req/s',
        'ratio',
        'base p50',
        'broker p50',
        'ratio',
        'base p99',
        'broker p99',
        'ratio',
        'broker cpu',
        'non-2xx',
      ],
      rows.map((r) => [
        r.scenario === 'read' ? 'secret read (GET)' : 'secret write (PUT)',
        String(r.connections),
        num(r.baseline.rps),
        num(r.broker.rps),
        ratio(r.ratio.rps),
        `${num(r.baseline.p50Ms, 2)} ms`,
        `${num(r.broker.p50Ms, 2)} ms`,
        ratio(r.ratio.p50),
        `${num(r.baseline.p99Ms, 2)} ms`,
        `${num(r.broker.p99Ms, 2)} ms`,
        ratio(r.ratio.p99),
        `${num(r.broker.cpuPercent)}%`,
        String(r.baseline.non2xx + r.broker.non2xx),
      ]),
    ),
  );
  const mem = (x: Memory | null) => (x ? `${num(x.rssMiB, 1)} MiB` : 'n/a');
  const peak = (x: Memory | null) => (x ? `${num(x.peakMiB, 1)} MiB` : 'n/a');
  const n = num(memorySecrets);
  out('\nMemory: resident set (VmRSS) of the child process; peak = VmHWM so far\n');
  out(
    table(
      ['when', 'RSS', 'peak'],
      [
        ['baseline (bare Fastify), idle after load', mem(m.baselineIdle), peak(m.baselineIdle)],
        ['broker at start', mem(m.brokerAtStart), peak(m.brokerAtStart)],
        ['broker after load runs', mem(m.beforeSeed), peak(m.beforeSeed)],
        [`broker after storing ${n} secrets`, mem(m.afterSeed), peak(m.afterSeed)],
        [`broker after ${n} random reads`, mem(m.afterReads), peak(m.afterReads)],
      ],
    ),
  );
  if (m.beforeSeed && m.afterSeed) {
    // Net change: garbage left by the load runs can be collected meanwhile, so small N can go negative.
    const delta = m.afterSeed.rssMiB - m.beforeSeed.rssMiB;
    out(
      `\nNet RSS change while storing: ${num(delta, 1)} MiB (${num((delta * 2 ** 20) / memorySecrets)} bytes/secret)`,
    );
  }
  out(
    `Storing ran at ${num(m.seedPerSecond)} secrets/s, reading at ${num(m.readPerSecond)} reads/s ` +
      `(${memoryConcurrency} concurrent, undici)`,
  );
  out(`Total bench time: ${num(totalSeconds)} s`);
  if (warnings.length) out(`\n${warnings.join('\n')}`);
}
