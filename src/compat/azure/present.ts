import type { DeletedSecret, Environment, SecretVersionMeta } from '../../kv/types.js';

/** Domain objects → Key Vault's camelCase bundles and items (times in epoch seconds). */
export interface Place {
  /** `https://<Host header>`: ids and links point back at the address the client used. */
  origin: string;
  env: Environment;
}

const seconds = (ms: number) => Math.floor(ms / 1000);
const optionalSeconds = (ms: number | null) => (ms === null ? undefined : seconds(ms));

export const secretId = (p: Place, name: string, version?: string) =>
  `${p.origin}/secrets/${encodeURIComponent(name)}${version === undefined ? '' : `/${version}`}`;

export const recoveryId = (p: Place, name: string) =>
  `${p.origin}/deletedsecrets/${encodeURIComponent(name)}`;

export function attributes(p: Place, m: SecretVersionMeta) {
  return {
    enabled: m.enabled,
    nbf: optionalSeconds(m.notBefore),
    exp: optionalSeconds(m.expiresAt),
    created: seconds(m.createdAt),
    updated: seconds(m.updatedAt),
    recoverableDays: p.env.retentionDays,
    recoveryLevel: recoveryLevel(p.env),
  };
}

/**
 * Key Vault's DeletionRecoveryLevel for a soft-delete vault: `Recoverable` with purge protection,
 * `+Purgeable` without; `Customized…` when the retention is shorter than 90 days.
 */
export const recoveryLevel = (env: Environment) =>
  `${env.retentionDays < 90 ? 'Customized' : ''}Recoverable${env.purgeProtection ? '' : '+Purgeable'}`;

const common = (p: Place, m: SecretVersionMeta) => ({
  ...(m.contentType === null ? {} : { contentType: m.contentType }),
  attributes: attributes(p, m),
  ...(Object.keys(m.tags).length > 0 ? { tags: m.tags } : {}),
});

/** SecretBundle: one version, with its value when the operation returns one. */
export const bundle = (p: Place, m: SecretVersionMeta, value?: string) => ({
  ...(value === undefined ? {} : { value }),
  id: secretId(p, m.name, m.version),
  ...common(p, m),
});

/** SecretItem in `GET /secrets` (id without version) and `GET /secrets/{name}/versions` (with). */
export const item = (p: Place, m: SecretVersionMeta, withVersion: boolean) => ({
  id: secretId(p, m.name, withVersion ? m.version : undefined),
  ...common(p, m),
});

const deletedFields = (p: Place, d: DeletedSecret) => ({
  recoveryId: recoveryId(p, d.name),
  deletedDate: seconds(d.deletedAt),
  scheduledPurgeDate: seconds(d.scheduledPurgeAt),
});

/** DeletedSecretBundle: the latest version's properties plus the deletion's dates. */
export const deletedBundle = (p: Place, d: DeletedSecret) => ({ ...bundle(p, d), ...deletedFields(p, d) });

/** DeletedSecretItem: as a SecretItem (id without version) plus the deletion's dates. */
export const deletedItem = (p: Place, d: DeletedSecret) => ({ ...item(p, d, false), ...deletedFields(p, d) });
