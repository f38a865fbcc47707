import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { exportJWK, exportSPKI, generateKeyPair, type JWK, type JWTPayload, SignJWT } from 'jose';
import { ensureTls } from '../../src/http/tls.js';

export type SigningAlg = 'RS256' | 'ES256' | 'EdDSA';

interface IssuerKey {
  kid: string;
  alg: SigningAlg;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  jwk: JWK;
}

export interface SignOptions {
  alg?: SigningAlg;
  /** Overrides the header kid (e.g. an unknown one); `null` leaves the kid out. */
  kid?: string | null;
  /** Extra protected-header fields (jku, x5u, jwk, …). */
  header?: Record<string, unknown>;
  /** Seconds from now; default 300. */
  expiresIn?: number;
}

/**
 * A real OIDC issuer over HTTPS on loopback: discovery document, JWKS (requests counted), RS256,
 * ES256 and EdDSA signing keys, and key rotation (a new kid published in the JWKS).
 */
export interface OidcIssuer {
  url: string;
  caPem: string;
  jwksUrl: string;
  counts: { discovery: number; jwks: number; total: number };
  sign(claims: JWTPayload, opts?: SignOptions): Promise<string>;
  /** Publishes a fresh key for `alg` (new kid) and signs with it from now on; returns the kid. */
  rotate(alg?: SigningAlg): Promise<string>;
  /** Stops publishing a key (it stays usable for signing in tests). */
  unpublish(kid: string): void;
  publicKeyPem(alg?: SigningAlg): Promise<string>;
  currentKid(alg?: SigningAlg): string;
  stop(): Promise<void>;
}

async function newKey(alg: SigningAlg): Promise<IssuerKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, {
    extractable: true,
    ...(alg === 'EdDSA' ? { crv: 'Ed25519' } : {}),
  });
  const kid = `${alg.toLowerCase()}-${randomBytes(6).toString('hex')}`;
  const jwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { kid, alg, privateKey, publicKey, jwk };
}

export async function startOidcIssuer(): Promise<OidcIssuer> {
  const dir = await mkdtemp(path.join(tmpdir(), 'custody-oidc-'));
  const tls = await ensureTls(dir, { hosts: [] });
  const published = new Map<string, IssuerKey>();
  const all = new Map<string, IssuerKey>();
  const current = new Map<SigningAlg, IssuerKey>();
  const counts = { discovery: 0, jwks: 0, total: 0 };
  let url = '';

  const server = https.createServer({ key: tls.keyPem, cert: tls.certPem }, (req, res) => {
    counts.total++;
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.url === '/.well-known/openid-configuration') {
      counts.discovery++;
      return send(200, {
        issuer: url,
        jwks_uri: `${url}/jwks`,
        id_token_signing_alg_values_supported: ['RS256', 'ES256', 'EdDSA'],
        response_types_supported: ['id_token'],
        subject_types_supported: ['public'],
      });
    }
    if (req.url === '/jwks') {
      counts.jwks++;
      return send(200, { keys: [...published.values()].map((k) => k.jwk) });
    }
    send(404, { error: 'not_found' });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;

  async function rotate(alg: SigningAlg = 'RS256'): Promise<string> {
    const k = await newKey(alg);
    published.set(k.kid, k);
    all.set(k.kid, k);
    current.set(alg, k);
    return k.kid;
  }
  for (const alg of ['RS256', 'ES256', 'EdDSA'] as const) await rotate(alg);

  return {
    url,
    caPem: tls.caCertPem,
    jwksUrl: `${url}/jwks`,
    counts,
    async sign(claims, opts = {}) {
      const alg = opts.alg ?? 'RS256';
      const key = current.get(alg)!;
      const header: Record<string, unknown> = { alg, typ: 'JWT', ...(opts.header ?? {}) };
      if (opts.kid !== null) header.kid = opts.kid ?? key.kid;
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({ iss: url, iat: now, exp: now + (opts.expiresIn ?? 300), ...claims })
        .setProtectedHeader(header as { alg: string })
        .sign(key.privateKey);
    },
    rotate,
    unpublish: (kid) => void published.delete(kid),
    publicKeyPem: async (alg = 'RS256') => exportSPKI(current.get(alg)!.publicKey),
    currentKid: (alg = 'RS256') => current.get(alg)!.kid,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}
