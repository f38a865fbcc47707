import type { Identity, IdentityKind } from '../identity-service.js';
import type { TokenInfo } from '../token-service.js';
import type { PresetName } from './presets.js';

export type AuthMethodType = 'jwt' | 'approle';

/** A JWT/OIDC method's configuration, as stored (barrier-encrypted) and shown. */
export interface JwtMethodConfig {
  issuer: string | null;
  discovery: boolean;
  jwks_url: string | null;
  public_keys: string[];
  audiences: string[];
  algorithms: string[];
  leeway_seconds: number;
  /** Minimum time between two key-set refetches triggered by an unknown `kid`. */
  jwks_cooldown_seconds: number;
  ca_pem: string | null;
  preset: PresetName | null;
}

/** AppRole methods carry no settings of their own: everything lives on their roles. */
export type AppRoleMethodConfig = Record<string, never>;

export interface AuthMethod {
  env: string;
  name: string;
  type: AuthMethodType;
  config: JwtMethodConfig | AppRoleMethodConfig;
  createdAt: number;
  updatedAt: number;
}

export interface JwtRoleConfig {
  user_claim: string;
  bound_subject: string | null;
  bound_audiences: string[];
  /** Claim path → accepted values (globs with `*`); any one value matching is enough. */
  bound_claims: Record<string, string[]>;
  /** Claim path → identity metadata key. */
  claim_mappings: Record<string, string>;
  groups_claim: string | null;
  identity_kind: IdentityKind;
  token_ttl: number;
  token_max_ttl: number;
}

export interface AppRoleRoleConfig {
  /** Seconds a new secret id lives; 0 = no expiry. */
  secret_id_ttl: number;
  /** Logins a secret id allows; 0 = unlimited. */
  secret_id_num_uses: number;
  secret_id_bound_cidrs: string[];
  token_bound_cidrs: string[];
  token_ttl: number;
  token_max_ttl: number;
}

export interface LoginRole {
  env: string;
  method: string;
  name: string;
  type: AuthMethodType;
  config: JwtRoleConfig | AppRoleRoleConfig;
  createdAt: number;
  updatedAt: number;
}

export interface SecretIdIssued {
  secretId: string;
  accessor: string;
  expiresAt: number | null;
  usesLeft: number | null;
}

export interface LoginCredentials {
  jwt?: string;
  roleId?: string;
  secretId?: string;
}

export interface LoginResult {
  token: string;
  info: TokenInfo;
  identity: Identity;
  /** On-behalf-of logins: the workload acting for `identity`. */
  actor?: Identity;
}
