export {
  AZURE_VAULT_DOMAINS,
  type AzureConfig,
  azureTlsHosts,
  defaultAzureConfig,
  parseDomains,
  parseVaultTable,
  resolveAzureConfig,
} from './config.js';
export { type AzureDoor, type BackupSealer, createAzureDoor } from './door.js';
export {
  type IssuedToken,
  type ManagedIdentityEndpoint,
  type ManagedIdentityEndpointOptions,
  startManagedIdentityEndpoint,
  type TokenRequest,
} from './managed-identity.js';
export { azureKeyVaultRoutes, challengeHeader } from './routes.js';
export { parseVaultHost, type VaultHost, vaultEnvironment } from './vault-host.js';
