import { decodeProtectedHeader, errors, type JWTPayload, type JWTVerifyOptions, jwtVerify } from 'jose';
import { CustodyError } from '../../errors.js';
import { KeySourceError } from './http-fetch.js';
import type { KeySource } from './key-source.js';

export const MAX_JWT_BYTES = 16 * 1024;

export interface VerifyOptions {
  issuer: string | null;
  audiences: string[];
  algorithms: string[];
  leewaySeconds: number;
}

/** A refused JWT: 401 with the check that failed in the hint, never a claim value or the token. */
export const invalidJwt = (check: string, hint: string) =>
  new CustodyError('InvalidJwt', 401, `The JWT failed the ${check} check`, hint);

function mapJoseError(err: unknown): Error {
  if (err instanceof CustodyError) return err;
  if (err instanceof KeySourceError) {
    return new CustodyError(
      'JwksUnreachable',
      503,
      "The identity provider's signing keys could not be loaded",
      'Try again shortly; an operator can check the method with `GET /v1/auth/methods/ENV/METHOD`.',
    );
  }
  if (!(err instanceof errors.JOSEError)) return err as Error;
  if (err instanceof errors.JWTExpired) {
    return err.claim === 'iat'
      ? invalidJwt('issued-at', 'The token is too old.')
      : invalidJwt('expiry', 'The token has expired (exp); get a fresh one from your identity provider.');
  }
  if (err instanceof errors.JWTClaimValidationFailed) {
    switch (err.claim) {
      case 'nbf':
        return invalidJwt('not-before', 'The token is not valid yet (nbf); check the clocks.');
      case 'iss':
        return invalidJwt('issuer', "The token's issuer (iss) is not this method's issuer.");
      case 'aud':
        return invalidJwt('audience', "The token's audience (aud) is none of the role's bound audiences.");
      case 'exp':
        return invalidJwt('expiry', 'The token has no usable expiry (exp); tokens without one are refused.');
      default:
        return invalidJwt('claims', `The token's ${err.claim} claim is missing or malformed.`);
    }
  }
  if (err instanceof errors.JOSEAlgNotAllowed || err instanceof errors.JOSENotSupported) {
    return invalidJwt('algorithm', "The token's signing algorithm is not allowed by this method.");
  }
  if (err instanceof errors.JWKSNoMatchingKey) {
    return invalidJwt(
      'signing key',
      "No signing key of the issuer matches the token's key id (kid); the key set is refetched at most once per cooldown.",
    );
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) {
    return invalidJwt('signature', "The token's signature does not verify with the issuer's keys.");
  }
  return invalidJwt('format', 'The token is not a well-formed signed JWT (JWS compact serialization).');
}

async function verifyAgainst(token: string, source: KeySource, options: JWTVerifyOptions) {
  try {
    return await jwtVerify(token, source.getKey, options);
  } catch (err) {
    // A key set without key ids may hold several candidates: try each (still only the set's keys).
    if (!(err instanceof errors.JWKSMultipleMatchingKeys)) throw err;
    for await (const key of err as unknown as AsyncIterable<CryptoKey>) {
      try {
        return await jwtVerify(token, key, options);
      } catch (inner) {
        if (!(inner instanceof errors.JWSSignatureVerificationFailed)) throw inner;
      }
    }
    throw new errors.JWSSignatureVerificationFailed();
  }
}

/**
 * Verifies a JWT with jose against the method's keys. Only allowed asymmetric algorithms; key
 * selection reads `alg` and `kid` only (`jku`, `x5u`, `jwk`, `x5c` are never used or fetched).
 */
export async function verifyJwt(token: string, source: KeySource, opts: VerifyOptions): Promise<JWTPayload> {
  if (Buffer.byteLength(token, 'utf8') > MAX_JWT_BYTES) {
    throw new CustodyError(
      'TokenTooLarge',
      400,
      `The JWT is larger than ${MAX_JWT_BYTES / 1024} KiB`,
      'Identity tokens are a few KiB; trim the claims the identity provider adds.',
    );
  }
  let alg: unknown;
  try {
    if (token.split('.').length !== 3) throw new Error('parts');
    alg = decodeProtectedHeader(token).alg;
  } catch {
    throw invalidJwt('format', 'The token is not a well-formed signed JWT (JWS compact serialization).');
  }
  // Checked before any key is looked up, so `none` and HMAC tokens never reach the key set.
  if (typeof alg !== 'string' || !opts.algorithms.includes(alg)) {
    throw invalidJwt('algorithm', "The token's signing algorithm is not allowed by this method.");
  }
  try {
    const { payload } = await verifyAgainst(token, source, {
      algorithms: opts.algorithms,
      issuer: opts.issuer ?? undefined,
      audience: opts.audiences,
      clockTolerance: opts.leewaySeconds,
      requiredClaims: ['exp'],
    });
    if (typeof payload.iat === 'number' && payload.iat > Date.now() / 1000 + opts.leewaySeconds) {
      throw invalidJwt('issued-at', 'The token claims to be issued in the future (iat); check the clocks.');
    }
    return payload;
  } catch (err) {
    throw mapJoseError(err);
  }
}
