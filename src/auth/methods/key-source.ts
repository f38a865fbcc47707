import { createPublicKey, type JsonWebKey } from 'node:crypto';
import {
  calculateJwkThumbprint,
  createLocalJWKSet,
  createRemoteJWKSet,
  customFetch,
  errors,
  type FlattenedJWSInput,
  type JSONWebKeySet,
  type JWK,
  type JWSHeaderParameters,
} from 'jose';
import { badRequest } from '../../errors.js';
import { FETCH_TIMEOUT_MS, KeySourceError, ProviderClient } from './http-fetch.js';
import type { JwtMethodConfig } from './types.js';

type KeyResolver = (header: JWSHeaderParameters, token: FlattenedJWSInput) => Promise<CryptoKey>;

/** Where a JWT method's verification keys come from. Only `alg` and `kid` are read from a token. */
export interface KeySource {
  getKey: KeyResolver;
  /** Loads the keys now (discovery and JWKS fetched once): the test run when a method is configured. */
  check(): Promise<void>;
  close(): Promise<void>;
}

const CACHE_MAX_AGE_MS = 10 * 60_000;

/** Errors that mean "this token names no key we have", as opposed to "we could not get keys". */
const TOKEN_KEY_ERRORS = new Set([
  errors.JWKSNoMatchingKey.code,
  errors.JWKSMultipleMatchingKeys.code,
  errors.JOSENotSupported.code,
]);

function asKeySourceError(err: unknown): Error {
  if (err instanceof errors.JOSEError && TOKEN_KEY_ERRORS.has(err.code)) return err;
  if (err instanceof KeySourceError) return err;
  const detail = err instanceof errors.JOSEError ? err.message : (err as Error).name;
  return new KeySourceError(`the key set could not be loaded (${detail})`);
}

function guarded(resolve: KeyResolver): KeyResolver {
  return async (header, token) => {
    try {
      return await resolve(header, token);
    } catch (err) {
      throw asKeySourceError(err);
    }
  };
}

async function checked(load: () => Promise<{ jwks(): JSONWebKeySet | undefined }>): Promise<void> {
  let keys: number;
  try {
    keys = (await load()).jwks()?.keys.length ?? 0;
  } catch (err) {
    throw asKeySourceError(err);
  }
  if (keys === 0) throw new KeySourceError('the key set holds no keys');
}

/** PEM public keys (SPKI or certificates) as a local JWKS; private keys and small RSA keys refused. */
export async function staticJwks(pems: string[]): Promise<JSONWebKeySet> {
  const keys: JWK[] = [];
  for (const [i, pem] of pems.entries()) {
    const hint =
      'Paste PEM public keys (-----BEGIN PUBLIC KEY----- or a certificate): RSA ≥ 2048 bits, EC P-256/384/521 or Ed25519.';
    if (/PRIVATE KEY/.test(pem)) {
      throw badRequest(
        'InvalidPublicKey',
        `public_keys[${i}] is a private key`,
        `${hint} Never upload private keys.`,
      );
    }
    let jwk: JsonWebKey;
    try {
      const key = createPublicKey(pem);
      if (key.asymmetricKeyType === 'rsa' && (key.asymmetricKeyDetails?.modulusLength ?? 0) < 2048) {
        throw new Error('short');
      }
      jwk = key.export({ format: 'jwk' });
    } catch {
      throw badRequest('InvalidPublicKey', `public_keys[${i}] is not a usable public key`, hint);
    }
    if (!['RSA', 'EC', 'OKP'].includes(String(jwk.kty)) || (jwk.kty === 'OKP' && jwk.crv !== 'Ed25519')) {
      throw badRequest('InvalidPublicKey', `public_keys[${i}] has an unsupported key type`, hint);
    }
    const clean = { ...jwk } as JWK;
    keys.push({ ...clean, kid: await calculateJwkThumbprint(clean), use: 'sig' });
  }
  return { keys };
}

function remoteSet(url: string, client: ProviderClient, cooldownSeconds: number) {
  return createRemoteJWKSet(new URL(url), {
    cooldownDuration: cooldownSeconds * 1000,
    cacheMaxAge: CACHE_MAX_AGE_MS,
    timeoutDuration: FETCH_TIMEOUT_MS,
    [customFetch]: client.fetch as never,
  });
}

export function httpsUrl(text: string, what: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw badRequest('InvalidUrl', `${what} is not a URL`, 'Example: https://issuer.example.com.');
  }
  if (url.protocol !== 'https:' || url.username || url.password || url.hash) {
    throw badRequest(
      'InvalidUrl',
      `${what} must be an https:// URL without credentials or fragment`,
      'Identity provider keys are only fetched over TLS; set ca_pem for a private CA.',
    );
  }
  return url;
}

async function discoverJwksUrl(client: ProviderClient, issuer: string): Promise<string> {
  const doc = await client.getJson(`${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`);
  const d = (doc ?? {}) as { issuer?: unknown; jwks_uri?: unknown };
  if (d.issuer !== issuer) {
    throw new KeySourceError('the discovery document names a different issuer than the one configured');
  }
  if (typeof d.jwks_uri !== 'string' || !d.jwks_uri.startsWith('https://')) {
    throw new KeySourceError('the discovery document has no https jwks_uri');
  }
  return d.jwks_uri;
}

/** Builds the key source a method's configuration names (exactly one of discovery, jwks_url, public_keys). */
export async function createKeySource(config: JwtMethodConfig): Promise<KeySource> {
  if (config.public_keys.length > 0) {
    const local = createLocalJWKSet(await staticJwks(config.public_keys));
    return { getKey: local as KeyResolver, check: async () => {}, close: async () => {} };
  }
  const client = new ProviderClient(config.ca_pem);
  const cooldown = config.jwks_cooldown_seconds;
  if (config.jwks_url) {
    const set = remoteSet(config.jwks_url, client, cooldown);
    return {
      getKey: guarded(set as KeyResolver),
      check: () =>
        checked(async () => {
          await set.reload();
          return set;
        }),
      close: () => client.close(),
    };
  }
  const issuer = config.issuer!;
  let set: ReturnType<typeof remoteSet> | null = null;
  let pending: Promise<ReturnType<typeof remoteSet>> | null = null;
  let failedAt = 0;
  let failure: Error | null = null;
  // Discovery runs once per process; a failure is remembered for one cooldown so that a flood of
  // logins while the issuer is down does not become a flood of discovery requests.
  const resolveSet = async () => {
    if (set) return set;
    if (failure && Date.now() - failedAt < cooldown * 1000) throw failure;
    pending ??= discoverJwksUrl(client, issuer)
      .then((url) => {
        set = remoteSet(url, client, cooldown);
        failure = null;
        return set;
      })
      .catch((err: Error) => {
        failure = err instanceof KeySourceError ? err : new KeySourceError('discovery failed');
        failedAt = Date.now();
        throw failure;
      })
      .finally(() => {
        pending = null;
      });
    return pending;
  };
  return {
    getKey: guarded(async (header, token) => (await resolveSet())(header, token)),
    check: () =>
      checked(async () => {
        const s = await resolveSet();
        await s.reload();
        return s;
      }),
    close: () => client.close(),
  };
}
