// One autocannon run against a server, with sub-millisecond latency percentiles.
import autocannon, { type Result } from 'autocannon';

export interface LoadOptions {
  url: string;
  ca: string;
  token: string;
  connections: number;
  seconds: number;
  method: 'GET' | 'PUT';
  /** Request paths, used round-robin across all connections. */
  paths: string[];
}

export interface LoadResult {
  requests: number;
  seconds: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  statusCodes: Record<string, number>;
}

export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  let n = 0;
  const latencies: number[] = [];
  const result = await new Promise<Result>((resolve, reject) => {
    const instance = autocannon(
      {
        url: o.url,
        connections: o.connections,
        duration: o.seconds,
        headers: { authorization: `Bearer ${o.token}`, 'content-type': 'application/json' },
        // autocannon itself forces rejectUnauthorized:false; the CA is passed for completeness.
        tlsOptions: { ca: o.ca },
        requests: [
          {
            method: o.method,
            setupRequest: (req) => {
              const i = n++;
              const path = o.paths[i % o.paths.length];
              if (o.method === 'GET') return { ...req, path };
              return {
                ...req,
                path,
                body: JSON.stringify({ value: `value-${String(i).padStart(10, '0')}` }),
              };
            },
          },
        ],
      },
      (err, res) => (err ? reject(err) : resolve(res)),
    );
    // autocannon's own histogram has 1 ms resolution, too coarse for a loopback baseline.
    instance.on('response', (_client: unknown, status: number, _bytes: number, ms: number) => {
      if (status >= 200 && status < 300) latencies.push(ms);
    });
  });
  latencies.sort((a, b) => a - b);
  const statusCodes: Record<string, number> = {};
  for (const [code, s] of Object.entries(result.statusCodeStats)) statusCodes[code] = s.count;
  return {
    requests: result.requests.total,
    seconds: result.duration,
    rps: result['2xx'] / result.duration,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    statusCodes,
  };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}
