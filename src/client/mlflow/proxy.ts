/**
 * A local reverse proxy to an MLflow server that adds the credential to every request (the client
 * needs none), streams request and response bodies, refreshes the credential on a 401, and refuses
 * or redacts secret values in logged params, metrics, tags, batches and traces.
 *
 * A 401 from MLflow drops the cached credential, fetches a fresh one and sends the request once more
 * with it. To be able to resend a streamed body (an artifact upload), the proxy keeps a copy of it in
 * memory while it streams upstream, up to `maxReplayBody` (default 8 MiB). A body larger than that
 * keeps streaming with flat memory — the copy is dropped as soon as it outgrows the limit — and if
 * the 401 comes after the limit was passed, the request cannot be resent: the client gets the 401
 * (and its own retry, or the next request, goes out with the fresh credential). A 403 is a real
 * denial and is never retried.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Agent, type Dispatcher, request } from 'undici';
import { HOP_BY_HOP } from '../http.js';
import { describeError, type LogFn } from '../redact.js';
import { HostPolicy, isLoopback } from './allowlist.js';
import type { Credential } from './credentials.js';
import {
  findLeak,
  isGuarded,
  type LeakGuardMode,
  redactLeaks,
  refusal,
  secretForms,
  secretValuesOf,
} from './leak-guard.js';
import type { CredentialSource } from './source.js';

export interface MlflowProxyOptions {
  /** The MLflow server, e.g. `https://mlflow.example.com` (a path prefix is kept). */
  upstream: string;
  source: CredentialSource;
  policy?: HostPolicy;
  /** Default 127.0.0.1. A non-loopback host needs `allowRemote`. */
  host?: string;
  /** Default 5001; 0 = any free port. */
  port?: number;
  allowRemote?: boolean;
  leakGuard?: LeakGuardMode;
  /** Further secret values the guard looks for (besides the injected credential's). */
  secrets?: string[];
  /** Largest JSON body the leak guard reads (default 16 MiB); larger ones are refused with 413. */
  maxGuardedBody?: number;
  /**
   * Largest streamed request body kept in memory so that it can be resent after a 401 (default
   * 8 MiB). A larger body streams with flat memory and is not resent: the client gets the 401.
   */
  maxReplayBody?: number;
  dispatcher?: Dispatcher;
  log?: LogFn;
}

export interface MlflowProxy {
  url: string;
  port: number;
  close(): Promise<void>;
}

function mlflowError(res: http.ServerResponse, status: number, error_code: string, message: string) {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify({ error_code, message });
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

async function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > limit) return undefined;
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

/**
 * A streamed request body that can be sent more than once: every chunk read from the client goes to
 * the current upstream stream and, while the total stays within `limit`, into a copy. `stream()`
 * starts a new upstream stream — the copy so far, then the rest as it arrives — and detaches the
 * previous one. Past the limit the copy is dropped (`replayable` turns false) and memory stays flat:
 * the client is read only as fast as upstream takes the body.
 */
class ReplayableBody {
  private chunks: Buffer[] = [];
  private size = 0;
  private overflowed = false;
  private ended = false;
  private failed: Error | undefined;
  private sink: PassThrough | undefined;

  constructor(
    private readonly req: Readable,
    private readonly limit: number,
  ) {
    req.on('data', (c: Buffer) => this.onData(c));
    req.once('end', () => {
      this.ended = true;
      this.sink?.end();
    });
    req.once('error', (err) => {
      this.failed = err;
      this.sink?.destroy(err);
    });
    req.pause();
  }

  /** Whether the whole body read so far is still held (a new `stream()` would resend all of it). */
  get replayable(): boolean {
    return !this.overflowed;
  }

  private onData(c: Buffer): void {
    if (!this.overflowed) {
      this.size += c.length;
      if (this.size > this.limit) {
        this.overflowed = true;
        this.chunks = [];
      } else this.chunks.push(c);
    }
    const s = this.sink;
    if (s && !s.destroyed && !s.writableEnded) {
      if (!s.write(c)) this.req.pause();
    }
  }

  /** A new stream of the whole body for one upstream attempt; the previous attempt's is cut off. */
  stream(): Readable {
    const old = this.sink;
    const s = new PassThrough();
    this.sink = s;
    if (old && !old.destroyed) old.destroy();
    for (const c of this.chunks) s.write(c);
    if (this.failed) s.destroy(this.failed);
    else if (this.ended) s.end();
    s.on('drain', () => {
      if (this.sink === s) this.req.resume();
    });
    // Upstream stopped reading (it answered early, or failed): keep draining the client.
    s.once('close', () => {
      if (this.sink === s && !this.ended) this.req.resume();
    });
    s.on('error', () => {});
    this.req.resume();
    return s;
  }

  /** The request is answered: drop the copy (the current upstream stream, if any, carries on). */
  release(): void {
    this.chunks = [];
    this.overflowed = true;
  }
}

export async function startMlflowProxy(opts: MlflowProxyOptions): Promise<MlflowProxy> {
  const upstream = new URL(opts.upstream);
  if (upstream.protocol !== 'http:' && upstream.protocol !== 'https:') {
    throw new Error(`the upstream must be an http(s) URL, got ${upstream.protocol}`);
  }
  const policy = opts.policy ?? new HostPolicy();
  const decision = policy.check(upstream);
  if (!decision.allowed) throw new Error(`refusing to send credentials to the upstream: ${decision.message}`);
  const host = opts.host ?? '127.0.0.1';
  if (!isLoopback(host) && !opts.allowRemote) {
    throw new Error(`the proxy binds to loopback only (got ${host}); anyone who can reach it acts as you`);
  }
  const mode = opts.leakGuard ?? 'refuse';
  const log = opts.log ?? (() => {});
  const limit = opts.maxGuardedBody ?? 16 * 1024 * 1024;
  const replayLimit = opts.maxReplayBody ?? 8 * 1024 * 1024;
  if (!Number.isSafeInteger(replayLimit) || replayLimit < 0) {
    throw new Error(`maxReplayBody must be a whole number of bytes, got ${replayLimit}`);
  }
  const dispatcher = opts.dispatcher ?? new Agent({ keepAliveTimeout: 10_000 });
  const ownDispatcher = !opts.dispatcher;
  const base = upstream.pathname.replace(/\/+$/, '');
  const extraForms = (opts.secrets ?? []).flatMap(secretValuesOf).flatMap(secretForms);
  const formsFor = (cred: Credential) => [...extraForms, ...cred.secrets.flatMap(secretForms)];

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const path = req.url ?? '/';
    const target = new URL(upstream.origin + base + (path.startsWith('/') ? path : `/${path}`));
    const method = (req.method ?? 'GET').toUpperCase();
    let cred: Credential;
    try {
      cred = await opts.source.get();
    } catch (err) {
      log('error', `no MLflow credential: ${describeError(err)}`);
      return mlflowError(
        res,
        502,
        'TEMPORARILY_UNAVAILABLE',
        `Custody proxy: no MLflow credential: ${describeError(err)}`,
      );
    }
    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(req.headers)) {
      if (v === undefined || HOP_BY_HOP.has(k) || k === 'authorization' || k === cred.header.toLowerCase())
        continue;
      headers[k] = v;
    }
    // The body: held for guarded requests (small JSON), streamed for everything else.
    let held: Buffer | undefined;
    const hasBody = !(method === 'GET' || method === 'HEAD') && req.headers['content-length'] !== '0';
    if (mode !== 'off' && isGuarded(method, target.pathname)) {
      const buf = await readBody(req, limit);
      if (!buf)
        return mlflowError(
          res,
          413,
          'INVALID_PARAMETER_VALUE',
          'Custody proxy: request body too large to inspect',
        );
      held = buf;
      let json: unknown;
      try {
        json = buf.length ? JSON.parse(buf.toString('utf8')) : undefined;
      } catch {
        json = buf.toString('utf8');
      }
      const forms = formsFor(cred);
      const leak = findLeak(json, forms);
      if (leak) {
        if (mode === 'refuse') {
          log('warn', `refused ${method} ${target.pathname}: field ${leak.field} contains a secret value`);
          const r = refusal(leak);
          return mlflowError(res, 400, r.error_code, r.message);
        }
        const red = redactLeaks(json, forms);
        held = Buffer.from(typeof red.body === 'string' ? red.body : JSON.stringify(red.body));
        log('warn', `redacted a secret value in field ${leak.field} of ${method} ${target.pathname}`);
      }
      headers['content-length'] = String(held.length);
    }
    // Any other body streams upstream; a copy of it (up to the replay limit) lets a 401 be resent.
    const streamed = held === undefined && hasBody ? new ReplayableBody(req, replayLimit) : undefined;
    try {
      for (let attempt = 0; ; attempt++) {
        if (attempt > 0) {
          try {
            cred = await opts.source.get();
          } catch (err) {
            log('error', `no MLflow credential: ${describeError(err)}`);
            return mlflowError(
              res,
              502,
              'TEMPORARILY_UNAVAILABLE',
              `Custody proxy: no MLflow credential: ${describeError(err)}`,
            );
          }
        }
        let up: Dispatcher.ResponseData;
        try {
          up = await request(target, {
            method: method as Dispatcher.HttpMethod,
            headers: { ...headers, [cred.header.toLowerCase()]: cred.value },
            body: held ?? streamed?.stream(),
            dispatcher,
          });
        } catch (err) {
          log('error', `upstream ${method} ${target.pathname} failed: ${describeError(err)}`);
          return mlflowError(
            res,
            502,
            'TEMPORARILY_UNAVAILABLE',
            `Custody proxy: upstream failed: ${describeError(err)}`,
          );
        }
        // 401: the credential is stale (rotated, revoked, expired). A 403 is a real denial: no retry.
        if (up.statusCode === 401) {
          opts.source.invalidate();
          if (attempt === 0) {
            if (streamed === undefined || streamed.replayable) {
              await up.body.dump().catch(() => {});
              log(
                'info',
                `401 from MLflow: fetched a fresh credential, retrying ${method} ${target.pathname}`,
              );
              continue;
            }
            log(
              'warn',
              `401 from MLflow on ${method} ${target.pathname}: its body was larger than ${replayLimit} bytes and cannot be resent; the next request uses a fresh credential`,
            );
          }
        }
        const out: Record<string, string | string[]> = {};
        for (const [k, v] of Object.entries(up.headers))
          if (v !== undefined && !HOP_BY_HOP.has(k)) out[k] = v;
        res.writeHead(up.statusCode, out);
        await pipeline(up.body, res);
        return;
      }
    } finally {
      streamed?.release();
    }
  };

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err) => {
      log('error', `proxy error: ${describeError(err)}`);
      mlflowError(res, 502, 'INTERNAL_ERROR', `Custody proxy: ${describeError(err)}`);
    });
  });
  server.requestTimeout = 0;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 5001, host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const shown = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${shown}:${port}`,
    port,
    async close() {
      server.closeAllConnections?.();
      await new Promise<void>((r) => server.close(() => r()));
      if (ownDispatcher) await (dispatcher as Agent).close().catch(() => {});
    },
  };
}
