/** One interface for every secret source (Custody, Vault, Azure Key Vault, AWS Secrets Manager, env, file). */
export interface SecretProvider {
  /** The provider's name (`custody`, `vault`, `azure-key-vault`, `aws-secrets-manager`, `env`, `file`). */
  readonly name: string;
  /** The secret's value as a string. `ref` is provider-specific; `#field` picks a JSON field. */
  get(ref: string, opts?: GetOptions): Promise<string>;
  /** Releases timers, connections and tokens. */
  close(): Promise<void>;
}

export interface GetOptions {
  /** A version: Custody version id or sequence, Vault KV v2 version, Azure version, AWS VersionId or stage. */
  version?: string;
}

/** The error a provider raises when it cannot serve a secret (message redacted, no secret value). */
export class ProviderError extends Error {
  constructor(
    readonly provider: string,
    message: string,
    readonly status?: number,
    opts?: { cause?: unknown },
  ) {
    super(`${provider}: ${message}`, opts);
    this.name = 'ProviderError';
  }
}
