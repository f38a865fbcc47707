import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SecretCache } from '../../src/client/cache.js';
import { CustodyClientError } from '../../src/client/errors.js';

const deferred = <T>() => {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((a, b) => {
    resolve = a;
    reject = b;
  });
  return { promise, resolve, reject };
};

test('single flight: N concurrent misses of one key → one load', async () => {
  const cache = new SecretCache<string>({ ttlMs: 60_000 });
  let loads = 0;
  const d = deferred<string>();
  const load = () => {
    loads++;
    return d.promise;
  };
  const all = Promise.all(Array.from({ length: 20 }, () => cache.get('k', load)));
  d.resolve('v');
  assert.deepEqual(await all, Array(20).fill('v'));
  assert.equal(loads, 1);
  assert.equal(await cache.get('k', load), 'v');
  assert.equal(loads, 1, 'a hit does not load');
  assert.equal(await cache.get('other', async () => 'o'), 'o', 'keys are independent');
});

test('per-key TTL: an entry expires after its own TTL', async () => {
  let now = 1000;
  const cache = new SecretCache<number>({ ttlMs: 100, now: () => now });
  let n = 0;
  const load = async () => ++n;
  assert.equal(await cache.get('short', load, 10), 1);
  assert.equal(await cache.get('long', load), 2);
  now += 50;
  assert.equal(await cache.get('short', load, 10), 3, 'short expired');
  assert.equal(await cache.get('long', load), 2, 'long still cached');
  now += 60;
  assert.equal(await cache.get('long', load), 4, 'default TTL expired');
  assert.equal(await cache.get('none', load, 0), 5);
  assert.equal(await cache.get('none', load, 0), 6, 'ttl 0: not cached');
});

test('failures are not cached, and concurrent waiters all see the failure', async () => {
  const cache = new SecretCache<string>();
  let n = 0;
  const failing = async () => {
    n++;
    throw new Error('boom');
  };
  const results = await Promise.allSettled([cache.get('k', failing), cache.get('k', failing)]);
  assert.ok(results.every((r) => r.status === 'rejected'));
  assert.equal(n, 1);
  assert.equal(await cache.get('k', async () => 'ok'), 'ok', 'the next call loads again');
});

test('401 invalidation: drop the entry, load again, retry once; 403 is not retried', async () => {
  const cache = new SecretCache<string>();
  let version = 0;
  const load = async () => `v${++version}`;
  assert.equal(await cache.get('cred', load), 'v1');
  const seen: string[] = [];
  const r = await cache.use('cred', load, async (v) => {
    seen.push(v);
    if (v === 'v1') throw new CustodyClientError('Unauthorized', 'stale', { status: 401 });
    return `used ${v}`;
  });
  assert.equal(r, 'used v2');
  assert.deepEqual(seen, ['v1', 'v2']);
  assert.equal(await cache.get('cred', load), 'v2', 'the fresh value is cached');

  let calls = 0;
  await assert.rejects(
    cache.use('cred', load, async () => {
      calls++;
      throw new CustodyClientError('Forbidden', 'denied', { status: 403 });
    }),
    /denied/,
  );
  assert.equal(calls, 1);
  assert.equal(version, 2, 'no refetch on 403');

  let twice = 0;
  await assert.rejects(
    cache.use('cred', load, async () => {
      twice++;
      throw new CustodyClientError('Unauthorized', 'still', { status: 401 });
    }),
    /still/,
  );
  assert.equal(twice, 2, 'only one retry after a 401');
});
