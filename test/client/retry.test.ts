import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { sendJson } from '../../src/client/http.js';
import { backoffMs, isRetryable, parseRetryAfter, withRetry } from '../../src/client/retry.js';

let server: Server;
let base: string;
const attempts = new Map<string, number>();

before(async () => {
  server = createServer((req, res) => {
    const u = new URL(req.url!, 'http://x');
    const key = u.searchParams.get('key')!;
    const n = (attempts.get(key) ?? 0) + 1;
    attempts.set(key, n);
    const status = Number(u.searchParams.get('status'));
    const okAfter = Number(u.searchParams.get('okAfter') ?? 0);
    if (okAfter && n >= okAfter) {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
      return;
    }
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (u.searchParams.get('retryAfter')) headers['retry-after'] = u.searchParams.get('retryAfter')!;
    res.writeHead(status, headers).end(JSON.stringify({ error: { code: `E${status}`, message: 'x' } }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => new Promise<void>((r) => server.close(() => r())));

const fast = { attempts: 3, baseMs: 5, maxMs: 20 };

describe('retry policy against a real HTTP server (attempts counted server-side)', () => {
  const table: [number, number][] = [
    [400, 1],
    [401, 1],
    [403, 1],
    [404, 1],
    [409, 1],
    [422, 1],
    [429, 3],
    [500, 3],
    [502, 3],
    [503, 3],
    [504, 3],
  ];
  for (const [status, expected] of table) {
    test(`HTTP ${status} → ${expected} attempt(s)`, async () => {
      const key = `s${status}`;
      const r = await sendJson(`${base}/?key=${key}&status=${status}`, { retry: fast });
      assert.equal(r.status, status);
      assert.equal(attempts.get(key), expected);
    });
  }

  test('a 503 that recovers on the 2nd attempt succeeds', async () => {
    const r = await sendJson(`${base}/?key=recover&status=503&okAfter=2`, { retry: fast });
    assert.equal(r.status, 200);
    assert.equal(attempts.get('recover'), 2);
  });

  test('Retry-After is honoured', async () => {
    const t0 = Date.now();
    const r = await sendJson(`${base}/?key=ra&status=429&retryAfter=1&okAfter=2`, {
      retry: { ...fast, maxRetryAfterMs: 5000 },
    });
    assert.equal(r.status, 200);
    assert.ok(Date.now() - t0 >= 950, 'waited the second the server asked for');
  });

  test('network errors are retried, then reported without secrets', async () => {
    const srv = createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as AddressInfo).port;
    await new Promise<void>((r) => srv.close(() => r()));
    let tries = 0;
    await assert.rejects(
      sendJson(`http://127.0.0.1:${port}/v1/x?token=cst_secret`, {
        retry: { ...fast, onRetry: () => void tries++ },
      }),
      (err: Error & { code: string }) => {
        assert.equal(err.code, 'NetworkError');
        assert.ok(!err.message.includes('cst_secret'));
        return true;
      },
    );
    assert.equal(tries, 2, 'two waits between three attempts');
  });
});

test('withRetry: bounded attempts; non-retryable errors thrown at once', async () => {
  let n = 0;
  await assert.rejects(
    withRetry(
      async () => {
        n++;
        throw Object.assign(new Error('reset'), { code: 'ECONNRESET' });
      },
      { attempts: 4, baseMs: 1, maxMs: 2 },
    ),
  );
  assert.equal(n, 4);
  n = 0;
  await assert.rejects(
    withRetry(async () => {
      n++;
      throw Object.assign(new Error('bad'), { status: 400 });
    }),
  );
  assert.equal(n, 1);
  assert.equal(isRetryable(new Error('plain')), false, 'unknown errors are not retried');
});

test('backoff: exponential with jitter, capped; Retry-After parsing', () => {
  const o = { baseMs: 100, maxMs: 1000 };
  assert.equal(
    backoffMs(1, o, () => 0),
    50,
  );
  assert.equal(
    backoffMs(1, o, () => 1),
    100,
  );
  assert.equal(
    backoffMs(3, o, () => 1),
    400,
  );
  assert.equal(
    backoffMs(10, o, () => 1),
    1000,
  );
  assert.equal(parseRetryAfter('3'), 3000);
  assert.ok((parseRetryAfter(new Date(Date.now() + 10_000).toUTCString(), Date.now()) ?? 0) > 8000);
  assert.equal(parseRetryAfter('soon'), undefined);
  assert.equal(parseRetryAfter(undefined), undefined);
});
