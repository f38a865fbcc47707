import { statusOf } from './errors.js';

/**
 * An in-memory cache with a TTL per key and single flight: N concurrent misses of one key share one
 * load. Failures are never cached. `use()` drops an entry and loads it once more when the value is
 * refused with a 401 (a rotated or expired credential).
 */
export class SecretCache<V> {
  private readonly entries = new Map<string, { value: V; expiresAt: number }>();
  private readonly inflight = new Map<string, { promise?: Promise<V> }>();
  private readonly defaultTtlMs: number;
  private readonly now: () => number;

  constructor(opts: { ttlMs?: number; now?: () => number } = {}) {
    this.defaultTtlMs = opts.ttlMs ?? 300_000;
    this.now = opts.now ?? Date.now;
  }

  /** The cached value, or the result of `load` (shared by concurrent callers); `ttlMs` 0 = not cached. */
  get(key: string, load: () => Promise<V>, ttlMs = this.defaultTtlMs): Promise<V> {
    const hit = this.entries.get(key);
    if (hit && hit.expiresAt > this.now()) return Promise.resolve(hit.value);
    if (hit) this.entries.delete(key);
    const pending = this.inflight.get(key);
    if (pending?.promise) return pending.promise;
    const flight: { promise?: Promise<V> } = {};
    this.inflight.set(key, flight);
    flight.promise = (async () => {
      try {
        const value = await load();
        if (ttlMs > 0 && this.inflight.get(key) === flight) {
          this.entries.set(key, { value, expiresAt: this.now() + ttlMs });
        }
        return value;
      } finally {
        if (this.inflight.get(key) === flight) this.inflight.delete(key);
      }
    })();
    return flight.promise;
  }

  /**
   * Gets the value and hands it to `fn`; when `fn` fails with a 401, the entry is dropped, loaded
   * again and `fn` is retried once. Any other failure (a 403 is a real denial) is passed on.
   */
  async use<R>(
    key: string,
    load: () => Promise<V>,
    fn: (value: V) => Promise<R>,
    ttlMs?: number,
  ): Promise<R> {
    const value = await this.get(key, load, ttlMs);
    try {
      return await fn(value);
    } catch (err) {
      if (statusOf(err) !== 401) throw err;
      this.invalidate(key);
      return fn(await this.get(key, load, ttlMs));
    }
  }

  has(key: string): boolean {
    const hit = this.entries.get(key);
    return !!hit && hit.expiresAt > this.now();
  }

  /** Drops one key (and forgets a load in flight for it, so the next get starts afresh). */
  invalidate(key: string): void {
    this.entries.delete(key);
    this.inflight.delete(key);
  }

  clear(): void {
    this.entries.clear();
    this.inflight.clear();
  }

  get size(): number {
    return this.entries.size;
  }
}
