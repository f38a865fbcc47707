import { X509Certificate } from 'node:crypto';
import { badRequest } from '../../errors.js';
import type { IdentityKind } from '../identity-service.js';
import { parseClaimPath } from './claims.js';
import { httpsUrl } from './key-source.js';
import { PRESET_NAMES, PRESETS, type PresetName } from './presets.js';
import { type DurationInput, tokenTtls } from './ttl.js';
import type { JwtMethodConfig, JwtRoleConfig } from './types.js';

export const DEFAULT_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
];
const ALLOWED_ALGORITHMS = new Set([...DEFAULT_ALGORITHMS, 'Ed25519']);

export interface JwtMethodConfigInput {
  issuer?: string;
  discovery?: boolean;
  jwks_url?: string;
  public_keys?: string[];
  audiences?: string[];
  algorithms?: string[];
  leeway_seconds?: number;
  jwks_cooldown_seconds?: number;
  ca_pem?: string;
  preset?: string;
}

export interface JwtRoleConfigInput {
  user_claim?: string;
  bound_subject?: string;
  bound_audiences?: string[];
  bound_claims?: Record<string, string | string[]>;
  claim_mappings?: Record<string, string>;
  groups_claim?: string;
  identity_kind?: string;
  token_ttl?: DurationInput;
  token_max_ttl?: DurationInput;
}

function stringList(list: string[] | undefined, what: string, max: number, maxLen = 512): string[] {
  const out = [...new Set(list ?? [])];
  if (out.length > max || out.some((s) => typeof s !== 'string' || s.length === 0 || s.length > maxLen)) {
    throw badRequest(
      'InvalidConfig',
      `${what} is a list of at most ${max} non-empty strings of up to ${maxLen} characters`,
      'See the auth method documentation for the expected shape.',
    );
  }
  return out;
}

function integerIn(v: number | undefined, dflt: number, min: number, max: number, what: string): number {
  const n = v ?? dflt;
  if (!Number.isInteger(n) || n < min || n > max) {
    throw badRequest('InvalidConfig', `${what} must be a whole number from ${min} to ${max}`);
  }
  return n;
}

function algorithmsOf(list: string[] | undefined, dflt: string[]): string[] {
  const algs = [...new Set(list ?? dflt)];
  const bad = algs.find((a) => !ALLOWED_ALGORITHMS.has(a));
  if (algs.length === 0 || bad !== undefined) {
    const symmetric = bad !== undefined && (/^HS/i.test(bad) || bad.toLowerCase() === 'none');
    throw badRequest(
      'InvalidAlgorithm',
      symmetric
        ? 'HMAC (HS*) and `none` are never accepted for identity tokens'
        : 'algorithms holds an unknown or unsupported algorithm (or is empty)',
      `Allowed: ${[...ALLOWED_ALGORITHMS].join(', ')}.`,
    );
  }
  return algs;
}

function caPemOf(pem: string | undefined): string | null {
  if (pem === undefined) return null;
  try {
    if (pem.length > 64 * 1024) throw new Error('size');
    new X509Certificate(pem);
  } catch {
    throw badRequest(
      'InvalidCaPem',
      'ca_pem is not a PEM certificate (or is larger than 64 KiB)',
      "Give the CA certificate(s) that issued the identity provider's TLS certificate.",
    );
  }
  return pem;
}

/** Validates a JWT method's configuration and fills defaults (including the preset's). */
export function normalizeJwtMethodConfig(input: JwtMethodConfigInput): JwtMethodConfig {
  let preset = null;
  if (input.preset !== undefined) {
    if (!PRESET_NAMES.includes(input.preset as PresetName)) {
      throw badRequest('UnknownPreset', 'That preset does not exist', `Presets: ${PRESET_NAMES.join(', ')}.`);
    }
    preset = PRESETS[input.preset as PresetName];
  }
  if (preset?.issuer && input.issuer !== undefined && input.issuer !== preset.issuer) {
    throw badRequest(
      'PresetMismatch',
      `The ${preset.name} preset has a fixed issuer and the configured issuer differs`,
      `Leave issuer out, or use ${preset.issuer}.`,
    );
  }
  const issuer = input.issuer ?? preset?.issuer ?? null;
  if (issuer !== null && (issuer.length === 0 || issuer.length > 512)) {
    throw badRequest(
      'InvalidIssuer',
      'issuer must be 1-512 characters',
      'Example: https://issuer.example.com.',
    );
  }
  if (preset?.issuerPattern && (issuer === null || !preset.issuerPattern.test(issuer))) {
    throw badRequest(
      'InvalidIssuer',
      `The ${preset.name} preset needs an issuer of the form ${preset.issuerExample}`,
      'Copy the issuer from the provider, with the tenant id filled in.',
    );
  }
  const publicKeys = stringList(input.public_keys, 'public_keys', 16, 16 * 1024);
  const jwksUrl = input.jwks_url ?? null;
  const discovery = input.discovery ?? (issuer !== null && jwksUrl === null && publicKeys.length === 0);
  const sources = [discovery, jwksUrl !== null, publicKeys.length > 0].filter(Boolean).length;
  if (sources !== 1) {
    throw badRequest(
      'InvalidKeySource',
      sources === 0 ? 'No key source is configured' : 'More than one key source is configured',
      'Give exactly one: discovery (with issuer), jwks_url, or public_keys.',
    );
  }
  if (discovery) {
    if (issuer === null) {
      throw badRequest('InvalidKeySource', 'discovery needs an issuer', 'Set issuer to the OIDC issuer URL.');
    }
    httpsUrl(issuer, 'issuer');
  }
  if (jwksUrl !== null) httpsUrl(jwksUrl, 'jwks_url');
  return {
    issuer,
    discovery,
    jwks_url: jwksUrl,
    public_keys: publicKeys,
    audiences: stringList(input.audiences, 'audiences', 32),
    algorithms: algorithmsOf(input.algorithms, preset?.algorithms ?? DEFAULT_ALGORITHMS),
    leeway_seconds: integerIn(input.leeway_seconds, 60, 0, 300, 'leeway_seconds'),
    jwks_cooldown_seconds: integerIn(input.jwks_cooldown_seconds, 30, 1, 3600, 'jwks_cooldown_seconds'),
    ca_pem: caPemOf(input.ca_pem),
    preset: preset?.name ?? null,
  };
}

const METADATA_KEY = /^[A-Za-z0-9_.-]{1,64}$/;

/** Validates a JWT login role against its method and fills defaults (the method's preset first). */
export function normalizeJwtRoleConfig(input: JwtRoleConfigInput, method: JwtMethodConfig): JwtRoleConfig {
  const preset = method.preset ? PRESETS[method.preset] : null;
  const userClaim = input.user_claim ?? preset?.userClaim ?? 'sub';
  parseClaimPath(userClaim, 'user_claim');
  const groupsClaim = input.groups_claim ?? preset?.groupsClaim ?? null;
  if (groupsClaim !== null) parseClaimPath(groupsClaim, 'groups_claim');
  const kind = input.identity_kind ?? preset?.identityKind ?? 'workload';
  if (kind !== 'workload' && kind !== 'user') {
    throw badRequest('InvalidConfig', 'identity_kind is workload or user');
  }
  const boundAudiences = stringList(input.bound_audiences, 'bound_audiences', 32);
  if (boundAudiences.length === 0 && method.audiences.length === 0) {
    throw badRequest(
      'AudienceRequired',
      'Neither the role (bound_audiences) nor the method (audiences) names an audience',
      'A token is accepted only for an audience that names Custody; set bound_audiences.',
    );
  }
  const boundClaims: Record<string, string[]> = {};
  const bc = Object.entries(input.bound_claims ?? {});
  if (bc.length > 32) throw badRequest('InvalidConfig', 'At most 32 bound_claims');
  for (const [path, v] of bc) {
    parseClaimPath(path, 'bound_claims key');
    boundClaims[path] = stringList(typeof v === 'string' ? [v] : v, `bound_claims.${path}`, 64);
    if (boundClaims[path].length === 0) {
      throw badRequest('InvalidConfig', 'Every bound claim needs at least one accepted value');
    }
  }
  const mappings = Object.entries(input.claim_mappings ?? {});
  const keys = new Set<string>();
  if (mappings.length > 32) throw badRequest('InvalidConfig', 'At most 32 claim_mappings');
  for (const [path, key] of mappings) {
    parseClaimPath(path, 'claim_mappings key');
    if (typeof key !== 'string' || !METADATA_KEY.test(key) || keys.has(key)) {
      throw badRequest(
        'InvalidConfig',
        'claim_mappings values are distinct metadata keys of 1-64 letters, digits, `_ . -`',
        'Example: {"kubernetes.io/namespace": "namespace"}.',
      );
    }
    keys.add(key);
  }
  const bs = input.bound_subject;
  if (bs !== undefined && (bs.length === 0 || bs.length > 512)) {
    throw badRequest('InvalidConfig', 'bound_subject must be 1-512 characters');
  }
  return {
    user_claim: userClaim,
    bound_subject: bs ?? null,
    bound_audiences: boundAudiences,
    bound_claims: boundClaims,
    claim_mappings: Object.fromEntries(mappings),
    groups_claim: groupsClaim,
    identity_kind: kind as IdentityKind,
    ...tokenTtls(input),
  };
}
