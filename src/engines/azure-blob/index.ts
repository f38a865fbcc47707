import type { EngineFactory } from '../engine.js';
import {
  type AzureBlobConfig,
  type AzureBlobRole,
  parseAzureBlobConfig,
  parseAzureBlobRole,
  redactAzureBlobConfig,
} from './config.js';
import { AzureBlobEngine } from './engine.js';

export type { AzureBlobConfig, AzureBlobRole } from './config.js';
export { AzureBlobEngine, type AzureRevocationData } from './engine.js';

/** `azure-blob`: SAS tokens for one container (or directory) of a storage account, revocable through stored access policies. */
export const azureBlobEngine: EngineFactory<AzureBlobConfig, AzureBlobRole> = {
  type: 'azure-blob',
  parseConfig: parseAzureBlobConfig,
  parseRole: parseAzureBlobRole,
  open: (config) => new AzureBlobEngine(config),
  redactConfig: redactAzureBlobConfig,
};
