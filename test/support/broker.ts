import { mkdtemp, readFile, rm } from 'node:fs/promises';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { Agent, request } from 'undici';
import { type RunningBroker, startBroker } from '../../src/broker.js';
import { resolveServerConfig } from '../../src/config.js';

export interface TestBroker {
  broker: RunningBroker;
  url: string;
  dataDir: string;
  rootToken: string;
  ca: string;
  /** Everything the broker logged, as raw lines. */
  logs: string[];
  call(
    method: string,
    urlPath: string,
    opts?: { body?: unknown; token?: string | null; rawBody?: string; headers?: Record<string, string> },
  ): Promise<{ status: number; body: any; headers: Record<string, unknown> }>;
  /** Sends the path exactly as given (no client-side `..` normalization), with the root token. */
  callRaw(method: string, rawPath: string, body?: unknown): Promise<{ status: number; body: any }>;
  stop(opts?: { keepData?: boolean }): Promise<void>;
}

/** Starts a real broker in this process on a free loopback port over HTTPS. */
export async function startTestBroker(
  opts: { storageUrl?: string; dataDir?: string; unseal?: 'file' | 'shamir'; auditFile?: string } = {},
): Promise<TestBroker> {
  const dataDir = opts.dataDir ?? (await mkdtemp(path.join(tmpdir(), 'custody-test-')));
  const config = resolveServerConfig(
    {
      dataDir,
      listen: '127.0.0.1:0',
      storage: opts.storageUrl,
      unseal: opts.unseal,
      auditFile: opts.auditFile,
      logLevel: 'info',
    },
    {},
  );
  const logs: string[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void logs.push(line) });
  const broker = await startBroker(config, logger);
  const ca = await readFile(broker.caCertPath!, 'utf8');
  const rootToken = broker.rootTokenPath
    ? (await readFile(broker.rootTokenPath, 'utf8').catch(() => '')).trim()
    : '';
  const dispatcher = new Agent({ connect: { ca } });
  const tb: TestBroker = {
    broker,
    url: broker.url,
    dataDir,
    rootToken,
    ca,
    logs,
    async call(method, urlPath, o = {}) {
      const token = o.token === undefined ? tb.rootToken : o.token;
      const headers: Record<string, string> = { ...(o.headers ?? {}) };
      if (token) headers.authorization = `Bearer ${token}`;
      let body: string | undefined = o.rawBody;
      if (o.body !== undefined) body = JSON.stringify(o.body);
      if (body !== undefined && !headers['content-type']) headers['content-type'] = 'application/json';
      const res = await request(`${broker.url}${urlPath}`, {
        method: method as 'GET',
        headers,
        body,
        dispatcher,
      });
      const text = await res.body.text();
      let parsed: any = text;
      try {
        parsed = text ? JSON.parse(text) : null;
      } catch {}
      return { status: res.statusCode, body: parsed, headers: res.headers };
    },
    callRaw(method, rawPath, body) {
      const u = new URL(broker.url);
      const payload = body === undefined ? undefined : JSON.stringify(body);
      return new Promise((resolve, reject) => {
        const req = https.request(
          {
            host: u.hostname,
            port: u.port,
            method,
            path: rawPath,
            ca,
            headers: {
              authorization: `Bearer ${tb.rootToken}`,
              ...(payload ? { 'content-type': 'application/json' } : {}),
            },
          },
          (res) => {
            let text = '';
            res.on('data', (c) => (text += c));
            res.on('end', () =>
              resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : null }),
            );
          },
        );
        req.on('error', reject);
        req.end(payload);
      });
    },
    async stop({ keepData = false } = {}) {
      await broker.close();
      await dispatcher.close();
      if (!keepData && !opts.dataDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
  return tb;
}
