import type { Barrier } from '../../barrier/barrier.js';
import { badRequest } from '../../errors.js';
import { type AzureConfig, defaultAzureConfig } from './config.js';

/**
 * Seals backup blobs under the barrier, bound (AAD) to one environment and secret name, so that
 * only this Custody can restore a blob, and only into the vault and name it came from.
 */
export interface BackupSealer {
  seal(env: string, name: string, plaintext: string): string;
  open(env: string, name: string, sealed: string): Promise<string>;
}

/** What the broker hands the Azure front door (one field of `Services`). */
export interface AzureDoor {
  config: AzureConfig;
  /** Null: backup/restore answer "not supported". */
  backups: BackupSealer | null;
}

const aad = (env: string, name: string) => `custody:azure-backup:${env}:${name}`;

export function createAzureDoor(config: AzureConfig | undefined, barrier: Barrier | null): AzureDoor {
  return {
    config: config ?? defaultAzureConfig(),
    backups: barrier
      ? {
          seal: (env, name, plaintext) => barrier.encrypt(plaintext, aad(env, name)),
          async open(env, name, sealed) {
            try {
              return (await barrier.decrypt(sealed, aad(env, name))).toString('utf8');
            } catch {
              throw badRequest(
                'InvalidBackup',
                'The backup blob was not made by this Custody for this vault and secret',
                'Restore a backup into the vault it was taken from.',
              );
            }
          },
        }
      : null,
  };
}
