import type { LoginOptions } from './custody-client.js';
import { AwsSecretsManagerProvider } from './providers/aws-secrets-manager.js';
import {
  type AzureCloud,
  AzureKeyVaultProvider,
  type AzureKeyVaultProviderOptions,
} from './providers/azure-key-vault.js';
import { CustodyProvider } from './providers/custody.js';
import type { SecretProvider } from './providers/provider.js';
import { VaultProvider } from './providers/vault.js';
import type { LogFn, LogLevel } from './redact.js';
import { parseSecretRef } from './refs.js';

/**
 * Client configuration from the environment: the mlflow-secrets-auth plugin's variables, unchanged,
 * plus Custody's own (`CUSTODY_*`, provider name `custody`). Invalid values are errors that say what
 * is wrong — never silently replaced by defaults.
 */

export const PROVIDER_NAMES = ['custody', 'vault', 'aws-secrets-manager', 'azure-key-vault'] as const;
export type ProviderName = (typeof PROVIDER_NAMES)[number];
export type AuthMode = 'bearer' | 'basic';

/** The `<P>` of `MLFLOW_<P>_AUTH_MODE` / `MLFLOW_<P>_TTL_SEC`. */
const SETTINGS_PREFIX: Record<ProviderName, string> = {
  custody: 'CUSTODY',
  vault: 'VAULT',
  'aws-secrets-manager': 'AWS',
  'azure-key-vault': 'AZURE',
};

export interface ProviderSettings {
  authMode: AuthMode;
  ttlSec: number;
}

export interface ClientConfig {
  /** Enabled providers, in the order they are tried. */
  providers: ProviderName[];
  custody: ProviderSettings & {
    addr?: string;
    token?: string;
    caCertFile?: string;
    login?: LoginOptions;
    /** `CUSTODY_MLFLOW_SECRET`: `ENV/NAME[#field]`. */
    secretRef?: string;
  };
  vault: ProviderSettings & {
    addr?: string;
    token?: string;
    roleId?: string;
    secretId?: string;
    namespace?: string;
    secretPath?: string;
    caCertFile?: string;
  };
  aws: ProviderSettings & { region?: string; secretId?: string };
  azure: ProviderSettings & {
    vaultUrl?: string;
    secretName?: string;
    secretVersion?: string;
    cloud: AzureCloud;
  };
  /** Lower-cased host globs; undefined when `MLFLOW_SECRETS_ALLOWED_HOSTS` is not set. */
  allowedHosts?: string[];
  authHeaderName: string;
  logLevel: LogLevel;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

const TRUE = new Set(['1', 'true', 'yes', 'on']);
const FALSE = new Set(['0', 'false', 'no', 'off']);
const LOG_LEVELS: Record<string, LogLevel> = {
  debug: 'debug',
  info: 'info',
  warning: 'warn',
  warn: 'warn',
  error: 'error',
  critical: 'error',
};
const CLOUDS: Record<string, AzureCloud> = {
  azurepubliccloud: 'AzurePublicCloud',
  azureusgovernment: 'AzureUSGovernment',
  azurechinacloud: 'AzureChinaCloud',
};

/** Reads and validates the configuration; throws one `ConfigError` listing every problem. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): ClientConfig {
  const problems: string[] = [];
  const get = (name: string): string | undefined => {
    const v = env[name];
    return v === undefined || v.trim() === '' ? undefined : v.trim();
  };
  const url = (name: string, httpsOnly = false): string | undefined => {
    const v = get(name);
    if (v === undefined) return undefined;
    let u: URL;
    try {
      u = new URL(v);
    } catch {
      problems.push(`${name} is not a URL: "${v}"`);
      return undefined;
    }
    if (httpsOnly ? u.protocol !== 'https:' : u.protocol !== 'https:' && u.protocol !== 'http:') {
      problems.push(`${name} must be an ${httpsOnly ? 'https' : 'http(s)'} URL, got ${u.protocol}//…`);
      return undefined;
    }
    return v;
  };
  const oneOf = (a: string, b: string): string | undefined => {
    const x = get(a);
    const y = get(b);
    if (x !== undefined && y !== undefined && x !== y) {
      problems.push(`${a} and ${b} are both set and differ; set only one`);
    }
    return x ?? y;
  };

  // Providers: the comma list in its order, then the per-provider flags in fixed priority.
  const providers: ProviderName[] = [];
  const list = get('MLFLOW_SECRETS_AUTH_ENABLE');
  if (list !== undefined) {
    for (const raw of list.split(',')) {
      const name = raw.trim().toLowerCase();
      if (!name) continue;
      if (!(PROVIDER_NAMES as readonly string[]).includes(name)) {
        problems.push(
          `MLFLOW_SECRETS_AUTH_ENABLE: unknown provider "${raw.trim()}" (known: ${PROVIDER_NAMES.join(', ')})`,
        );
      } else if (!providers.includes(name as ProviderName)) providers.push(name as ProviderName);
    }
  }
  for (const name of PROVIDER_NAMES) {
    const flag = `MLFLOW_SECRETS_AUTH_ENABLE_${name.toUpperCase().replace(/-/g, '_')}`;
    const v = get(flag)?.toLowerCase();
    if (v === undefined || FALSE.has(v)) continue;
    if (!TRUE.has(v)) problems.push(`${flag} must be one of 1/true/yes/on or 0/false/no/off, got "${v}"`);
    else if (!providers.includes(name)) providers.push(name);
  }
  const enabled = (p: ProviderName) => providers.includes(p);

  const settings = (p: ProviderName): ProviderSettings => {
    const modeVar = `MLFLOW_${SETTINGS_PREFIX[p]}_AUTH_MODE`;
    const ttlVar = `MLFLOW_${SETTINGS_PREFIX[p]}_TTL_SEC`;
    const mode = get(modeVar)?.toLowerCase() ?? 'bearer';
    if (mode !== 'bearer' && mode !== 'basic')
      problems.push(`${modeVar} must be bearer or basic, got "${mode}"`);
    const ttlText = get(ttlVar);
    let ttlSec = 300;
    if (ttlText !== undefined) {
      ttlSec = Number(ttlText);
      if (!/^\d+$/.test(ttlText) || ttlSec < 1 || ttlSec > 86_400) {
        problems.push(`${ttlVar} must be a whole number of seconds from 1 to 86400, got "${ttlText}"`);
        ttlSec = 300;
      }
    }
    return { authMode: mode as AuthMode, ttlSec };
  };

  // Custody.
  const custodyLogin = get('CUSTODY_LOGIN');
  let login: LoginOptions | undefined;
  if (custodyLogin !== undefined) {
    const parts = custodyLogin.split('/');
    if (parts.length !== 3 || parts.some((x) => !x)) {
      problems.push(`CUSTODY_LOGIN must be ENV/METHOD/ROLE, got "${custodyLogin}"`);
    } else {
      const [e, method, role] = parts;
      const jwtFile = get('CUSTODY_JWT_FILE');
      const roleId = get('CUSTODY_ROLE_ID');
      const secretId = get('CUSTODY_SECRET_ID');
      if (roleId && secretId) login = { env: e, method, role, approle: { roleId, secretId } };
      else if (roleId || secretId)
        problems.push('CUSTODY_ROLE_ID and CUSTODY_SECRET_ID must be set together');
      else if (jwtFile) login = { env: e, method, role, jwtFile };
      else login = { env: e, method, role, kubernetes: true };
    }
  }
  const custodySecret = get('CUSTODY_MLFLOW_SECRET');
  if (custodySecret !== undefined) {
    try {
      parseSecretRef(custodySecret);
    } catch (err) {
      problems.push(`CUSTODY_MLFLOW_SECRET: ${(err as Error).message}`);
    }
  }
  const custody = {
    ...settings('custody'),
    addr: url('CUSTODY_ADDR'),
    token: get('CUSTODY_TOKEN'),
    caCertFile: get('CUSTODY_CACERT'),
    login,
    secretRef: custodySecret,
  };
  if (enabled('custody')) {
    if (!get('CUSTODY_ADDR')) problems.push('custody is enabled but CUSTODY_ADDR is not set');
    if (!custody.token && !custody.login) {
      problems.push('custody is enabled but neither CUSTODY_TOKEN nor CUSTODY_LOGIN is set');
    }
    if (!custodySecret)
      problems.push('custody is enabled but CUSTODY_MLFLOW_SECRET (ENV/NAME[#field]) is not set');
  }

  // Vault.
  const vault = {
    ...settings('vault'),
    addr: url('VAULT_ADDR'),
    token: get('VAULT_TOKEN'),
    roleId: get('VAULT_ROLE_ID'),
    secretId: get('VAULT_SECRET_ID'),
    namespace: get('VAULT_NAMESPACE'),
    secretPath: get('MLFLOW_VAULT_SECRET_PATH'),
    caCertFile: get('VAULT_CACERT'),
  };
  if (!!vault.roleId !== !!vault.secretId)
    problems.push('VAULT_ROLE_ID and VAULT_SECRET_ID must be set together');
  if (enabled('vault')) {
    if (!get('VAULT_ADDR')) problems.push('vault is enabled but VAULT_ADDR is not set');
    if (!vault.token && !(vault.roleId && vault.secretId)) {
      problems.push('vault is enabled but neither VAULT_TOKEN nor VAULT_ROLE_ID + VAULT_SECRET_ID is set');
    }
    if (!vault.secretPath) problems.push('vault is enabled but MLFLOW_VAULT_SECRET_PATH is not set');
  }

  // AWS.
  const region = get('AWS_REGION');
  if (region !== undefined && !/^[a-z]{2}(-[a-z]+)+-\d+$/.test(region)) {
    problems.push(`AWS_REGION is not a region name (like eu-west-1): "${region}"`);
  }
  const aws = {
    ...settings('aws-secrets-manager'),
    region,
    secretId: oneOf('MLFLOW_AWS_SECRET_ID', 'MLFLOW_AWS_SECRET_NAME'),
  };
  if (enabled('aws-secrets-manager') && !aws.secretId) {
    problems.push(
      'aws-secrets-manager is enabled but MLFLOW_AWS_SECRET_ID (or MLFLOW_AWS_SECRET_NAME) is not set',
    );
  }

  // Azure.
  const cloudText = get('AZURE_CLOUD_ENVIRONMENT');
  let cloud: AzureCloud = 'AzurePublicCloud';
  if (cloudText !== undefined) {
    const c = CLOUDS[cloudText.toLowerCase()];
    if (!c) {
      problems.push(
        `AZURE_CLOUD_ENVIRONMENT must be AzurePublicCloud, AzureUSGovernment or AzureChinaCloud, got "${cloudText}"`,
      );
    } else cloud = c;
  }
  const vaultUrlName = get('AZURE_KEY_VAULT_URL') ? 'AZURE_KEY_VAULT_URL' : 'MLFLOW_AZURE_KEY_VAULT_URL';
  oneOf('AZURE_KEY_VAULT_URL', 'MLFLOW_AZURE_KEY_VAULT_URL');
  const secretName = get('MLFLOW_AZURE_SECRET_NAME');
  if (secretName !== undefined && !/^[0-9A-Za-z-]{1,127}$/.test(secretName)) {
    problems.push(`MLFLOW_AZURE_SECRET_NAME must be 1-127 letters, digits and dashes, got "${secretName}"`);
  }
  const secretVersion = get('MLFLOW_AZURE_SECRET_VERSION');
  if (secretVersion !== undefined && !/^[0-9A-Za-z]{1,64}$/.test(secretVersion)) {
    problems.push(
      `MLFLOW_AZURE_SECRET_VERSION must be a version id (letters and digits), got "${secretVersion}"`,
    );
  }
  const azure = {
    ...settings('azure-key-vault'),
    vaultUrl: url(vaultUrlName, true),
    secretName,
    secretVersion,
    cloud,
  };
  if (enabled('azure-key-vault')) {
    if (!get(vaultUrlName)) problems.push('azure-key-vault is enabled but AZURE_KEY_VAULT_URL is not set');
    if (!secretName) problems.push('azure-key-vault is enabled but MLFLOW_AZURE_SECRET_NAME is not set');
  }

  // MLflow request settings.
  let allowedHosts: string[] | undefined;
  const hosts = env.MLFLOW_SECRETS_ALLOWED_HOSTS;
  if (hosts !== undefined) {
    allowedHosts = [];
    for (const raw of hosts.split(',')) {
      const h = raw.trim().toLowerCase();
      if (!h) continue;
      if (!/^[a-z0-9.*?[\]:_-]+$/.test(h) && !/^\[[0-9a-f:.]+\](:[0-9*?]+)?$/.test(h)) {
        problems.push(`MLFLOW_SECRETS_ALLOWED_HOSTS: "${raw.trim()}" is not a host name or glob`);
      } else allowedHosts.push(h);
    }
    if (allowedHosts.length === 0) problems.push('MLFLOW_SECRETS_ALLOWED_HOSTS is set but names no host');
  }
  const header = get('MLFLOW_AUTH_HEADER_NAME') ?? 'Authorization';
  if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(header)) {
    problems.push(`MLFLOW_AUTH_HEADER_NAME is not a valid HTTP header name: "${header}"`);
  }
  const levelText = get('MLFLOW_SECRETS_LOG_LEVEL');
  let logLevel: LogLevel = 'info';
  if (levelText !== undefined) {
    const l = LOG_LEVELS[levelText.toLowerCase()];
    if (!l)
      problems.push(`MLFLOW_SECRETS_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got "${levelText}"`);
    else logLevel = l;
  }

  if (problems.length) throw new ConfigError(problems);
  return { providers, custody, vault, aws, azure, allowedHosts, authHeaderName: header, logLevel };
}

/** The reference of the MLflow credential for one provider (what `get()` is called with). */
export function secretRefFor(config: ClientConfig, provider: ProviderName): string {
  switch (provider) {
    case 'custody':
      return config.custody.secretRef!;
    case 'vault':
      return config.vault.secretPath!;
    case 'aws-secrets-manager':
      return config.aws.secretId!;
    case 'azure-key-vault':
      return config.azure.secretName!;
  }
}

/** Version option per provider (only Azure's is configurable by environment). */
export function secretVersionFor(config: ClientConfig, provider: ProviderName): string | undefined {
  return provider === 'azure-key-vault' ? config.azure.secretVersion : undefined;
}

export interface ProviderFactoryOptions {
  log?: LogFn;
  /** Extra options for the Azure client (tests: `disableChallengeResourceVerification`, TLS). */
  azure?: Partial<AzureKeyVaultProviderOptions>;
  /** Custom AWS endpoint (moto, LocalStack); `AWS_ENDPOINT_URL` works too. */
  awsEndpoint?: string;
}

/** Builds the enabled providers, in order. */
export function providersFromConfig(
  config: ClientConfig,
  opts: ProviderFactoryOptions = {},
): SecretProvider[] {
  return config.providers.map((p) => makeProvider(config, p, opts));
}

function makeProvider(config: ClientConfig, p: ProviderName, opts: ProviderFactoryOptions): SecretProvider {
  switch (p) {
    case 'custody':
      return new CustodyProvider({
        addr: config.custody.addr,
        token: config.custody.login ? undefined : config.custody.token,
        caCertFile: config.custody.caCertFile,
        login: config.custody.login,
        cacheTtlMs: config.custody.ttlSec * 1000,
        log: opts.log,
        logLevel: config.logLevel,
      });
    case 'vault':
      return new VaultProvider({
        addr: config.vault.addr!,
        token: config.vault.token,
        approle:
          config.vault.roleId && config.vault.secretId
            ? { roleId: config.vault.roleId, secretId: config.vault.secretId }
            : undefined,
        namespace: config.vault.namespace,
        caCertFile: config.vault.caCertFile,
        log: opts.log,
      });
    case 'aws-secrets-manager':
      return new AwsSecretsManagerProvider({ region: config.aws.region, endpoint: opts.awsEndpoint });
    case 'azure-key-vault':
      return new AzureKeyVaultProvider({
        vaultUrl: config.azure.vaultUrl!,
        cloud: config.azure.cloud,
        ...opts.azure,
      });
  }
}
