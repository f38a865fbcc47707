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
}

export interface Database {
  custody_meta: MetaTable;
  environments: EnvironmentTable;
  secrets: SecretTable;
  secret_versions: SecretVersionTable;
  tokens: TokenTable;
}
