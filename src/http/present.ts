import type { TokenInfo } from '../auth/token-service.js';
import type { SealStatus } from '../barrier/barrier.js';
import { iso } from '../duration.js';
import type {
  DeletedSecret,
  Environment,
  SecretSummary,
  SecretValue,
  SecretVersionMeta,
} from '../kv/types.js';

/** Domain objects → the snake_case wire shapes of the native API. */
export const versionMeta = (m: SecretVersionMeta) => ({
  env: m.env,
  name: m.name,
  version: m.version,
  seq: m.seq,
  enabled: m.enabled,
  not_before: iso(m.notBefore),
  expires: iso(m.expiresAt),
  content_type: m.contentType,
  tags: m.tags,
  created_at: iso(m.createdAt)!,
  updated_at: iso(m.updatedAt)!,
});

export const secretValue = (s: SecretValue) => ({ ...versionMeta(s), value: s.value });
export const secretSummary = (s: SecretSummary) => ({ ...versionMeta(s), versions: s.versions });
export const deletedSecret = (s: DeletedSecret) => ({
  ...secretSummary(s),
  deleted_at: iso(s.deletedAt)!,
  scheduled_purge_at: iso(s.scheduledPurgeAt)!,
});

export const environment = (e: Environment) => ({
  name: e.name,
  retention_days: e.retentionDays,
  purge_protection: e.purgeProtection,
  created_at: iso(e.createdAt)!,
  updated_at: iso(e.updatedAt)!,
});

export const tokenInfo = (t: TokenInfo) => ({
  accessor: t.accessor,
  policies: t.policies,
  display_name: t.displayName,
  identity_id: t.identityId,
  meta: t.meta,
  created_at: iso(t.createdAt)!,
  expires_at: iso(t.expiresAt),
  max_expires_at: iso(t.maxExpiresAt),
  ttl: t.expiresAt === null ? 0 : Math.max(0, Math.round((t.expiresAt - Date.now()) / 1000)),
  renewable: t.renewable,
});

export const sealStatus = (s: SealStatus) => ({
  initialized: s.initialized,
  sealed: s.sealed,
  mode: s.mode,
  shares: s.shares,
  threshold: s.threshold,
  progress: s.progress,
  key_term: s.keyTerm,
});
