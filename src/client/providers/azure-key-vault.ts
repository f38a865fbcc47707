import https from 'node:https';
import tls from 'node:tls';
import {
  AzureAuthorityHosts,
  ClientCertificateCredential,
  ClientSecretCredential,
  DefaultAzureCredential,
  ManagedIdentityCredential,
  type TokenCredential,
  WorkloadIdentityCredential,
} from '@azure/identity';
import { SecretClient, type SecretClientOptions } from '@azure/keyvault-secrets';
import { statusOf } from '../errors.js';
import { redact } from '../redact.js';
import { pickField, splitField } from '../refs.js';
import { type GetOptions, ProviderError, type SecretProvider } from './provider.js';

export type AzureCloud = 'AzurePublicCloud' | 'AzureUSGovernment' | 'AzureChinaCloud';

/** Authority host and Key Vault DNS suffix of each sovereign cloud. */
export const AZURE_CLOUDS: Record<AzureCloud, { authorityHost: string; vaultSuffix: string }> = {
  AzurePublicCloud: { authorityHost: AzureAuthorityHosts.AzurePublicCloud, vaultSuffix: 'vault.azure.net' },
  AzureUSGovernment: {
    authorityHost: AzureAuthorityHosts.AzureGovernment,
    vaultSuffix: 'vault.usgovcloudapi.net',
  },
  AzureChinaCloud: { authorityHost: AzureAuthorityHosts.AzureChina, vaultSuffix: 'vault.azure.cn' },
};

export type AzureCredentialOptions =
  | { kind: 'client-secret'; tenantId: string; clientId: string; clientSecret: string }
  | { kind: 'client-certificate'; tenantId: string; clientId: string; certificatePath: string }
  | { kind: 'managed-identity'; clientId?: string; resourceId?: string }
  | { kind: 'workload-identity'; tenantId?: string; clientId?: string; tokenFilePath?: string }
  | { kind: 'default'; managedIdentityClientId?: string };

export interface AzureKeyVaultProviderOptions {
  /** `https://NAME.vault.azure.net` — or just `NAME`, completed with the cloud's vault suffix. */
  vaultUrl: string;
  cloud?: AzureCloud;
  /** Which credential; default: `DefaultAzureCredential` (env, workload identity, managed identity, CLI…). */
  credential?: AzureCredentialOptions | TokenCredential;
  /** Passed to `SecretClient` (e.g. `disableChallengeResourceVerification`, `httpClient`). */
  clientOptions?: SecretClientOptions;
  /** PEM of an extra CA to trust for the vault (a private endpoint or Custody's Azure door). */
  caCert?: string;
}

const isTokenCredential = (c: unknown): c is TokenCredential =>
  !!c && typeof (c as TokenCredential).getToken === 'function';

/** Builds the `@azure/identity` credential for the options and cloud. */
export function azureCredential(c: AzureCredentialOptions | undefined, cloud: AzureCloud): TokenCredential {
  const authorityHost = AZURE_CLOUDS[cloud].authorityHost;
  switch (c?.kind ?? 'default') {
    case 'client-secret': {
      const o = c as Extract<AzureCredentialOptions, { kind: 'client-secret' }>;
      return new ClientSecretCredential(o.tenantId, o.clientId, o.clientSecret, { authorityHost });
    }
    case 'client-certificate': {
      const o = c as Extract<AzureCredentialOptions, { kind: 'client-certificate' }>;
      return new ClientCertificateCredential(
        o.tenantId,
        o.clientId,
        { certificatePath: o.certificatePath },
        { authorityHost },
      );
    }
    case 'managed-identity': {
      const o = c as Extract<AzureCredentialOptions, { kind: 'managed-identity' }>;
      if (o.clientId) return new ManagedIdentityCredential({ clientId: o.clientId });
      if (o.resourceId) return new ManagedIdentityCredential({ resourceId: o.resourceId });
      return new ManagedIdentityCredential();
    }
    case 'workload-identity': {
      const o = c as Extract<AzureCredentialOptions, { kind: 'workload-identity' }>;
      return new WorkloadIdentityCredential({
        authorityHost,
        ...(o.tenantId ? { tenantId: o.tenantId } : {}),
        ...(o.clientId ? { clientId: o.clientId } : {}),
        ...(o.tokenFilePath ? { tokenFilePath: o.tokenFilePath } : {}),
      });
    }
    default: {
      const o = c as Extract<AzureCredentialOptions, { kind: 'default' }> | undefined;
      return new DefaultAzureCredential({
        authorityHost,
        ...(o?.managedIdentityClientId ? { managedIdentityClientId: o.managedIdentityClientId } : {}),
      });
    }
  }
}

/** `NAME` → `https://NAME.<suffix>`; a URL is checked to be https. */
export function azureVaultUrl(vault: string, cloud: AzureCloud = 'AzurePublicCloud'): string {
  if (/^[a-z0-9-]+$/i.test(vault)) return `https://${vault}.${AZURE_CLOUDS[cloud].vaultSuffix}`;
  let u: URL;
  try {
    u = new URL(vault);
  } catch {
    throw new ProviderError('azure-key-vault', `the vault URL is not a URL: ${vault}`);
  }
  if (u.protocol !== 'https:')
    throw new ProviderError('azure-key-vault', `the vault URL must be https: ${vault}`);
  return u.toString().replace(/\/+$/, '');
}

/**
 * Azure Key Vault through `@azure/keyvault-secrets`: `ref` is a secret name with an optional `#field`;
 * `version` pins a version (default: latest).
 */
export class AzureKeyVaultProvider implements SecretProvider {
  readonly name = 'azure-key-vault';
  readonly client: SecretClient;
  readonly vaultUrl: string;

  constructor(o: AzureKeyVaultProviderOptions) {
    const cloud = o.cloud ?? 'AzurePublicCloud';
    if (!AZURE_CLOUDS[cloud]) throw new ProviderError(this.name, `unknown Azure cloud ${cloud}`);
    this.vaultUrl = azureVaultUrl(o.vaultUrl, cloud);
    const credential = isTokenCredential(o.credential) ? o.credential : azureCredential(o.credential, cloud);
    const clientOptions: SecretClientOptions = { ...o.clientOptions };
    if (o.caCert) {
      const agent = new https.Agent({ ca: [...tls.rootCertificates, o.caCert], keepAlive: true });
      clientOptions.additionalPolicies = [
        ...(clientOptions.additionalPolicies ?? []),
        {
          position: 'perCall',
          policy: {
            name: 'custodyCaTrust',
            sendRequest: (request, next) => {
              request.agent = agent;
              return next(request);
            },
          },
        },
      ];
    }
    this.client = new SecretClient(this.vaultUrl, credential, clientOptions);
  }

  async get(ref: string, opts: GetOptions = {}): Promise<string> {
    const { path: name, field } = splitField(ref);
    let value: string | undefined;
    try {
      const s = await this.client.getSecret(name, opts.version ? { version: opts.version } : {});
      value = s.value;
    } catch (err) {
      const e = err as { code?: string; message?: string };
      throw new ProviderError(
        this.name,
        `get ${name}: ${e.code ? `${e.code}: ` : ''}${redact(e.message ?? String(err)).split('\n')[0]}`,
        statusOf(err),
        { cause: err },
      );
    }
    if (value === undefined) throw new ProviderError(this.name, `${name} has no value`, 404);
    try {
      return pickField(value, field, `secret ${name}`);
    } catch (err) {
      throw new ProviderError(this.name, (err as Error).message, 404);
    }
  }

  async close(): Promise<void> {}
}
