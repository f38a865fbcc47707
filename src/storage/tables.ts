import type { ColumnType } from 'kysely';
/**
 * Row shapes of every table. Times are epoch milliseconds (BIGINT), booleans are 0/1 integers and
 * structured fields are JSON text, so the same queries run unchanged on SQLite and PostgreSQL.
 */
export interface MetaTable {
  key: string;
  value: string;
}

export interface EnvironmentTable {
  name: string;
  retention_days: number;
  purge_protection: number;
  created_at: number;
  updated_at: number;
}

export interface SecretTable {
  id: string;
  env: string;
  name: string;
  current_seq: number;
  created_at: number;
  updated_at: number;
  deleted_at: number | null;
  purge_at: number | null;
}

export interface SecretVersionTable {
  secret_id: string;
  seq: number;
  version_id: string;
  ciphertext: string;
  content_type: string | null;
  tags: string;
  enabled: number;
  not_before: number | null;
  expires_at: number | null;
  created_at: number;
  updated_at: number;
}

export interface TokenTable {
  accessor: string;
  token_hash: string;
  parent_accessor: string | null;
  policies: string;
  identity_id: string | null;
  display_name: string;
  meta: string;
  created_at: number;
  expires_at: number | null;
  max_expires_at: number | null;
  ttl_seconds: number;
  renewable: number;
  /** Environment of the identity a login token speaks for; null for operator tokens. */
  env: string | null;
  /** On-behalf-of tokens: the workload acting for the user in identity_id. */
  actor_identity_id: string | null;
  auth_method: string | null;
}

export interface IdentityTable {
  id: string;
  env: string;
  kind: 'workload' | 'user';
  name: string;
  auth_method: string;
  login_role: string;
  metadata: string;
  created_at: number;
  last_login_at: number;
}

export interface GroupTable {
  id: string;
  env: string;
  name: string;
  created_at: number;
}

export interface GroupMemberTable {
  group_id: string;
  identity_id: string;
  /** `claim` (synced at each login) or `admin` (managed by hand). */
  source: 'claim' | 'admin';
}

export interface RoleTable {
  name: string;
  description: string;
  actions: string;
  builtin: number;
  created_at: number;
}

export interface AssignmentTable {
  id: string;
  env: string;
  principal_type: 'identity' | 'group';
  principal_id: string;
  role: string;
  scope_kind: 'env' | 'secrets' | 'engine';
  scope_path: string;
  allow_management: number;
  reason: string;
  created_by: string;
  created_at: number;
  expires_at: number | null;
}

export interface AuthMethodTable {
  env: string;
  name: string;
  type: string;
  /** Barrier-encrypted JSON. */
  config: string;
  created_at: number;
  updated_at: number;
}

export interface AuthRoleTable {
  env: string;
  method: string;
  name: string;
  config: string;
  /** Secondary lookup key (AppRole role id). */
  lookup_key: string | null;
  created_at: number;
  updated_at: number;
}

export interface AppRoleSecretIdTable {
  hash: string;
  accessor: string;
  env: string;
  method: string;
  role: string;
  cidrs: string;
  uses_left: number | null;
  metadata: string;
  created_at: number;
  expires_at: number | null;
}

export interface EngineTable {
  env: string;
  name: string;
  type: string;
  /** Barrier-encrypted JSON connection config. */
  config: string;
  created_at: number;
  updated_at: number;
}

export interface EngineRoleTable {
  env: string;
  engine: string;
  name: string;
  kind: 'dynamic' | 'static';
  config: string;
  ttl_seconds: number;
  max_ttl_seconds: number;
  /** Static roles: the barrier-encrypted current password. */
  secret: string | null;
  rotation_period_seconds: number | null;
  last_rotated_at: number | null;
  created_at: number;
  updated_at: number;
}

export type LeaseState = 'creating' | 'active' | 'revoking' | 'revoked' | 'revoke-failed';

export interface LeaseTable {
  id: string;
  env: string;
  engine: string;
  role: string;
  identity_id: string | null;
  token_accessor: string | null;
  username: string;
  issued_at: number;
  expires_at: number;
  max_expires_at: number;
  last_renewed_at: number | null;
  renewable: number;
  /** 0 when revoking cannot end the credential early (it only expires); see Engine.leaseTerms. */
  revocable: ColumnType<number, number | undefined, number>;
  state: LeaseState;
  attempts: number;
  last_error: string | null;
  /** When the reaper should next act: expiry, a retry after backoff, or a stuck create/revoke. */
  next_attempt_at: number;
  claimed_until: number | null;
  /** Barrier-encrypted JSON the engine needs to revoke. */
  revocation: string;
  revoked_at: number | null;
  updated_at: number;
}

export interface Database {
  custody_meta: MetaTable;
  environments: EnvironmentTable;
  secrets: SecretTable;
  secret_versions: SecretVersionTable;
  tokens: TokenTable;
  identities: IdentityTable;
  groups: GroupTable;
  group_members: GroupMemberTable;
  roles: RoleTable;
  assignments: AssignmentTable;
  auth_methods: AuthMethodTable;
  auth_roles: AuthRoleTable;
  approle_secret_ids: AppRoleSecretIdTable;
  engines: EngineTable;
  engine_roles: EngineRoleTable;
  leases: LeaseTable;
}
