import {
  GetSecretValueCommand,
  type GetSecretValueCommandInput,
  type GetSecretValueCommandOutput,
  SecretsManagerClient,
  type SecretsManagerClientConfig,
} from '@aws-sdk/client-secrets-manager';
import { statusOf } from '../errors.js';
import { redact } from '../redact.js';
import { pickField, splitField } from '../refs.js';
import { type GetOptions, ProviderError, type SecretProvider } from './provider.js';

export interface AwsSecretsManagerProviderOptions {
  /** AWS region (default: the SDK's chain, `AWS_REGION`, the profile's region). */
  region?: string;
  /** A shared-config profile (default: the SDK's chain, `AWS_PROFILE`). */
  profile?: string;
  /** A custom endpoint (moto, LocalStack, VPC endpoint); `AWS_ENDPOINT_URL` also works via the SDK. */
  endpoint?: string;
  /** Static credentials; default: the SDK's default chain (env, profile, SSO, web identity, IMDS…). */
  credentials?: SecretsManagerClientConfig['credentials'];
  /** Attempts of the SDK's own retry strategy (default 3). */
  maxAttempts?: number;
  /** Use this client instead of building one. */
  client?: SecretsManagerClient;
}

/** A version option that names a stage (`AWSCURRENT`, `AWSPREVIOUS`, `AWSPENDING`, or `stage:NAME`). */
function versionInput(version: string | undefined): Partial<GetSecretValueCommandInput> {
  if (!version) return {};
  if (version.startsWith('stage:')) return { VersionStage: version.slice(6) };
  if (/^AWS[A-Z]+$/.test(version)) return { VersionStage: version };
  return { VersionId: version };
}

/**
 * AWS Secrets Manager through the official SDK: `ref` is a secret id or ARN with an optional
 * `#field`; `version` is a VersionId, or a stage. SecretBinary is returned as UTF-8 text.
 */
export class AwsSecretsManagerProvider implements SecretProvider {
  readonly name = 'aws-secrets-manager';
  readonly client: SecretsManagerClient;
  private readonly owned: boolean;

  constructor(o: AwsSecretsManagerProviderOptions = {}) {
    this.owned = !o.client;
    this.client =
      o.client ??
      new SecretsManagerClient({
        ...(o.region ? { region: o.region } : {}),
        ...(o.profile ? { profile: o.profile } : {}),
        ...(o.endpoint ? { endpoint: o.endpoint } : {}),
        ...(o.credentials ? { credentials: o.credentials } : {}),
        maxAttempts: o.maxAttempts ?? 3,
      });
  }

  async get(ref: string, opts: GetOptions = {}): Promise<string> {
    const { path: secretId, field } = splitField(ref);
    let out: GetSecretValueCommandOutput;
    try {
      out = await this.client.send(
        new GetSecretValueCommand({ SecretId: secretId, ...versionInput(opts.version) }),
      );
    } catch (err) {
      const e = err as { name?: string; message?: string };
      throw new ProviderError(
        this.name,
        `get ${secretId}: ${e.name ?? 'Error'}: ${redact(e.message ?? String(err))}`,
        statusOf(err),
        { cause: err },
      );
    }
    const value =
      out.SecretString ?? (out.SecretBinary ? Buffer.from(out.SecretBinary).toString('utf8') : undefined);
    if (value === undefined) throw new ProviderError(this.name, `${secretId} has no value`, 404);
    try {
      return pickField(value, field, `secret ${secretId}`);
    } catch (err) {
      throw new ProviderError(this.name, (err as Error).message, 404);
    }
  }

  async close(): Promise<void> {
    if (this.owned) this.client.destroy();
  }
}
