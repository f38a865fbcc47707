/** `custody/client`: the Custody SDK and secret providers. Imports no server code. */
export { SecretCache } from './cache.js';
export {
  type AuthMode,
  type ClientConfig,
  ConfigError,
  loadConfig,
  PROVIDER_NAMES,
  type ProviderFactoryOptions,
  type ProviderName,
  type ProviderSettings,
  providersFromConfig,
  secretRefFor,
  secretVersionFor,
} from './config.js';
export {
  CustodyClient,
  type CustodyClientOptions,
  KUBERNETES_TOKEN_PATH,
  type LoginOptions,
} from './custody-client.js';
export { CustodyClientError, statusOf } from './errors.js';
export { type IssuedCredentials, Lease } from './lease.js';
export {
  encodedForms,
  Masker,
  MaskingStream,
  type MaskValue,
  MIN_MASK_LENGTH,
  maskValuesOf,
} from './masking.js';
export * from './mlflow/index.js';
export {
  AwsSecretsManagerProvider,
  type AwsSecretsManagerProviderOptions,
} from './providers/aws-secrets-manager.js';
export {
  AZURE_CLOUDS,
  type AzureCloud,
  type AzureCredentialOptions,
  AzureKeyVaultProvider,
  type AzureKeyVaultProviderOptions,
  azureCredential,
  azureVaultUrl,
} from './providers/azure-key-vault.js';
export { CustodyProvider } from './providers/custody.js';
export { EnvProvider } from './providers/env.js';
export { type FailoverAttempt, FailoverProvider } from './providers/failover.js';
export { FileProvider } from './providers/file.js';
export { type GetOptions, ProviderError, type SecretProvider } from './providers/provider.js';
export { VaultProvider, type VaultProviderOptions } from './providers/vault.js';
export { describeError, type LogFn, type LogLevel, redact, redactingLogger } from './redact.js';
export { parseRoleRef, parseSecretRef } from './refs.js';
export {
  backoffMs,
  DEFAULT_RETRY,
  isNetworkError,
  isRetryable,
  isRetryableStatus,
  parseRetryAfter,
  type RetryOptions,
  withRetry,
} from './retry.js';
