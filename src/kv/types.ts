export interface Environment {
  name: string;
  retentionDays: number;
  purgeProtection: boolean;
  createdAt: number;
  updatedAt: number;
}

export interface VersionAttributes {
  enabled: boolean;
  notBefore: number | null;
  expiresAt: number | null;
  contentType: string | null;
  tags: Record<string, string>;
}

/** A version's metadata: everything but its value. */
export interface SecretVersionMeta extends VersionAttributes {
  env: string;
  name: string;
  version: string;
  seq: number;
  createdAt: number;
  updatedAt: number;
}

export interface SecretValue extends SecretVersionMeta {
  value: string;
}

export interface SecretSummary extends SecretVersionMeta {
  versions: number;
}

export interface DeletedSecret extends SecretSummary {
  deletedAt: number;
  scheduledPurgeAt: number;
}

export interface SetSecretInput {
  value: string;
  contentType?: string | null;
  tags?: Record<string, string>;
  enabled?: boolean;
  notBefore?: number | null;
  expiresAt?: number | null;
  /** Check-and-set: the sequence number the caller expects to be current (0 = must not exist). */
  cas?: number;
}

export type UpdateVersionInput = Partial<VersionAttributes>;

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}
