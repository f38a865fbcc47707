import type { Barrier } from '../barrier/barrier.js';
import type { Storage } from '../storage/storage.js';
import { createEnvironmentOps } from './environments.js';
import { createKvContext } from './kv-context.js';
import { createSecretReads } from './secret-reads.js';
import { createSecretWrites } from './secret-writes.js';
import { createSoftDelete } from './soft-delete.js';
import type {
  DeletedSecret,
  Environment,
  Page,
  SecretSummary,
  SecretValue,
  SecretVersionMeta,
  SetSecretInput,
  UpdateVersionInput,
} from './types.js';

export { MAX_VALUE_BYTES } from './secret-writes.js';

/** Environments and versioned secrets with Azure Key Vault semantics. Decides nothing about who may call it. */
export interface KvService {
  createEnvironment(input: {
    name: string;
    retentionDays?: number;
    purgeProtection?: boolean;
  }): Promise<Environment>;
  listEnvironments(): Promise<Environment[]>;
  getEnvironment(name: string): Promise<Environment>;
  updateEnvironment(name: string, input: { purgeProtection?: boolean }): Promise<Environment>;
  setSecret(env: string, name: string, input: SetSecretInput): Promise<SecretVersionMeta>;
  getSecret(env: string, name: string, version?: string): Promise<SecretValue>;
  listSecrets(
    env: string,
    opts?: { prefix?: string; limit?: number; cursor?: string },
  ): Promise<Page<SecretSummary>>;
  listVersions(env: string, name: string): Promise<SecretVersionMeta[]>;
  updateVersion(
    env: string,
    name: string,
    version: string | undefined,
    input: UpdateVersionInput,
  ): Promise<SecretVersionMeta>;
  deleteSecret(env: string, name: string): Promise<DeletedSecret>;
  listDeleted(env: string): Promise<DeletedSecret[]>;
  getDeleted(env: string, name: string): Promise<DeletedSecret>;
  recoverSecret(env: string, name: string): Promise<SecretSummary>;
  purgeSecret(env: string, name: string): Promise<void>;
  /** Purges soft-deleted secrets whose retention ended; returns how many. */
  purgeDue(now?: number): Promise<number>;
}

/** One service assembled from its parts, which share the lookups in kv-context.ts. */
export function createKvService(storage: Storage, barrier: Barrier): KvService {
  const ctx = createKvContext(storage, barrier);
  return {
    ...createEnvironmentOps(ctx),
    ...createSecretWrites(ctx),
    ...createSecretReads(ctx),
    ...createSoftDelete(ctx),
  };
}
