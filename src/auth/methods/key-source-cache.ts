import { createKeySource, type KeySource } from './key-source.js';
import type { AuthMethod, JwtMethodConfig } from './types.js';

/**
 * One key source per method incarnation (env/name and its createdAt), so JWKS caches and refetch
 * cooldowns survive across logins, and a method deleted and created again never sees the old keys.
 */
export class KeySourceCache {
  private readonly sources = new Map<string, { createdAt: number; source: Promise<KeySource> }>();

  /** The JWT method's key source, made on first use. */
  for(m: AuthMethod): Promise<KeySource> {
    const key = `${m.env}/${m.name}`;
    const cached = this.sources.get(key);
    if (cached && cached.createdAt === m.createdAt) return cached.source;
    if (cached) this.dropKey(key);
    const source = createKeySource(m.config as JwtMethodConfig);
    this.sources.set(key, { createdAt: m.createdAt, source });
    // A source that failed to load is not kept: the next login tries again.
    source.catch(() => this.sources.delete(key));
    return source;
  }

  /** Keeps the source a new method was checked with, so its first login does not fetch again. */
  put(env: string, name: string, createdAt: number, source: KeySource): void {
    const key = `${env}/${name}`;
    this.dropKey(key);
    this.sources.set(key, { createdAt, source: Promise.resolve(source) });
  }

  drop(env: string, name: string): void {
    this.dropKey(`${env}/${name}`);
  }

  /** Releases every cached key set (HTTP agents). */
  dropAll(): void {
    for (const key of [...this.sources.keys()]) this.dropKey(key);
  }

  private dropKey(key: string): void {
    const cached = this.sources.get(key);
    this.sources.delete(key);
    cached?.source.then((s) => s.close()).catch(() => {});
  }
}
