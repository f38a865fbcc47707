import type { CustodyClient } from '../custody-client.js';
import type { Lease } from '../lease.js';
import type { GetOptions, SecretProvider } from '../providers/provider.js';
import {
  type Credential,
  type CredentialOptions,
  credentialFor,
  credentialFromSecret,
} from './credentials.js';

/** Where MLflow credentials come from: cached, refetched after `invalidate()` (a 401). */
export interface CredentialSource {
  get(): Promise<Credential>;
  /** Drops the cached credential; the next `get()` fetches a fresh one. */
  invalidate(): void;
  close?(): Promise<void>;
}

/** A fixed credential (tests, or a value already in hand). */
export function staticSource(credential: Credential): CredentialSource {
  return { get: async () => credential, invalidate() {} };
}

export interface ProviderSourceOptions extends CredentialOptions {
  /** Cache TTL in seconds (default 300, like `MLFLOW_<P>_TTL_SEC`). */
  ttlSec?: number;
  version?: string;
  now?: () => number;
}

/**
 * A credential read from a `SecretProvider` (any provider, or a `FailoverProvider`), parsed and
 * cached for `ttlSec`; failures are not cached; concurrent callers share one fetch.
 */
export function providerSource(
  provider: SecretProvider,
  ref: string,
  opts: ProviderSourceOptions = {},
): CredentialSource {
  const ttlMs = (opts.ttlSec ?? 300) * 1000;
  const now = opts.now ?? Date.now;
  let cached: { credential: Credential; until: number } | undefined;
  let pending: Promise<Credential> | undefined;
  let generation = 0;
  const getOpts: GetOptions = opts.version ? { version: opts.version } : {};
  return {
    async get() {
      if (cached && cached.until > now()) return cached.credential;
      if (pending) return pending;
      const gen = generation;
      pending = (async () => {
        try {
          const raw = await provider.get(ref, getOpts);
          const credential = credentialFromSecret(raw, opts);
          if (gen === generation) cached = { credential, until: now() + ttlMs };
          return credential;
        } finally {
          pending = undefined;
        }
      })();
      return pending;
    },
    invalidate() {
      generation++;
      cached = undefined;
    },
    close: () => provider.close(),
  };
}

export interface LeaseSourceOptions {
  headerName?: string;
  /** Get a new credential at least this long before the lease expires (default 60 000 ms). */
  refreshBeforeMs?: number;
  ttl?: string | number;
  now?: () => number;
  /** Called with each new lease (for logs). */
  onLease?: (lease: Lease) => void;
  /** Keep a replaced lease this long before revoking it (default 5 000 ms). */
  graceMs?: number;
}

/**
 * Dynamic MLflow credentials: a Custody lease (`ENV/ENGINE/ROLE`) used as basic auth, renewed (or
 * replaced by a new lease when it cannot be renewed) at least `refreshBeforeMs` before it expires,
 * and replaced after a 401. `close()` revokes the lease.
 */
export function leaseSource(
  client: CustodyClient,
  roleRef: string,
  opts: LeaseSourceOptions = {},
): CredentialSource {
  const before = opts.refreshBeforeMs ?? 60_000;
  const now = opts.now ?? Date.now;
  const grace = opts.graceMs ?? 5_000;
  let lease: Lease | undefined;
  let pending: Promise<Credential> | undefined;
  const retire = (l: Lease) => {
    const t = setTimeout(() => void l.close().catch(() => {}), grace);
    t.unref();
  };
  const credentialOf = (l: Lease): Credential =>
    l.data.token
      ? credentialFor({ kind: 'token', token: l.data.token }, { headerName: opts.headerName })
      : credentialFor(
          { kind: 'basic', username: l.username, password: l.password },
          { headerName: opts.headerName },
        );
  // A short-lived lease is refreshed a third of its lifetime ahead, not a fixed minute ahead
  // (which would replace a 30-second lease on every request).
  const lifetimes = new WeakMap<Lease, number>();
  const remember = (l: Lease) => lifetimes.set(l, Math.max(0, l.expiresAt.getTime() - now()));
  const margin = (l: Lease) => Math.min(before, (lifetimes.get(l) ?? before * 3) / 3);
  const fresh = (l: Lease) => !l.isClosed && l.expiresAt.getTime() - now() > margin(l);
  const load = async (): Promise<Credential> => {
    const cur = lease;
    if (cur && !cur.isClosed && cur.renewable && cur.maxExpiresAt.getTime() - now() > margin(cur)) {
      try {
        await cur.renew();
        remember(cur);
        if (fresh(cur)) return credentialOf(cur);
      } catch {
        // fall through to a new lease
      }
    }
    const next = await client.issueCredentials(roleRef, opts.ttl === undefined ? {} : { ttl: opts.ttl });
    remember(next);
    const old = lease;
    lease = next;
    opts.onLease?.(next);
    if (old && old !== next) retire(old);
    return credentialOf(next);
  };
  return {
    async get() {
      if (lease && fresh(lease)) return credentialOf(lease);
      pending ??= load().finally(() => {
        pending = undefined;
      });
      return pending;
    },
    invalidate() {
      if (lease) retire(lease);
      lease = undefined;
    },
    async close() {
      const l = lease;
      lease = undefined;
      if (l) await l.close().catch(() => {});
    },
  };
}
