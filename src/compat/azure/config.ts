import { badRequest } from '../../errors.js';

/** Where Key Vault requests are recognised and which environment each vault serves. */
export interface AzureConfig {
  /** Vault name → Custody environment. A vault not listed maps to the environment of the same name. */
  vaults: Record<string, string>;
  /** Extra vault DNS domains served besides Azure's own (e.g. `vault.custody.test`). */
  domains: string[];
  /** Tenant named in the challenge's authorization URL. */
  tenant: string;
  /**
   * Vault to serve for a Host that is not a vault host (a bare IP or `localhost`), so a client with
   * challenge-resource verification turned off can use `https://127.0.0.1:PORT`. Null: such
   * requests are not Key Vault requests.
   */
  defaultVault: string | null;
}

/** The public clouds' vault domains: `<vault>.vault.azure.net` and friends are always vault hosts. */
export const AZURE_VAULT_DOMAINS = ['vault.azure.net', 'vault.usgovcloudapi.net', 'vault.azure.cn'] as const;

export const DEFAULT_TENANT = 'custody';

const VAULT_RE = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const ENV_RE = /^[a-z][a-z0-9-]{0,31}$/;
const LABEL = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
const DOMAIN_RE = new RegExp(`^${LABEL}(?:\\.${LABEL})+$`);
const TENANT_RE = /^[A-Za-z0-9][A-Za-z0-9.-]{0,127}$/;

export const defaultAzureConfig = (): AzureConfig => ({
  vaults: {},
  domains: [],
  tenant: DEFAULT_TENANT,
  defaultVault: null,
});

const bad = (variable: string, message: string, hint: string) =>
  badRequest('InvalidAzureConfig', `${variable}: ${message}`, hint);

/** `my-key-vault=prod,dev-vault=dev` → `{ 'my-key-vault': 'prod', 'dev-vault': 'dev' }`. */
export function parseVaultTable(text: string, variable = 'CUSTODY_AZURE_VAULTS'): Record<string, string> {
  const table: Record<string, string> = {};
  const hint = 'Example: my-key-vault=prod,dev-vault=dev.';
  for (const pair of text.split(',')) {
    if (!pair.trim()) continue;
    const [vault, env, ...rest] = pair.split('=').map((s) => s.trim().toLowerCase());
    if (!vault || !env || rest.length > 0)
      throw bad(variable, `${JSON.stringify(pair)} is not VAULT=ENV`, hint);
    if (!VAULT_RE.test(vault)) throw bad(variable, `${JSON.stringify(vault)} is not a vault name`, hint);
    if (!ENV_RE.test(env)) throw bad(variable, `${JSON.stringify(env)} is not an environment name`, hint);
    if (table[vault] !== undefined && table[vault] !== env)
      throw bad(variable, `vault ${vault} is mapped twice`, hint);
    table[vault] = env;
  }
  return table;
}

export function parseDomains(text: string, variable = 'CUSTODY_AZURE_DOMAINS'): string[] {
  const domains = text
    .split(',')
    .map((d) =>
      d
        .trim()
        .toLowerCase()
        .replace(/^\.+|\.+$/g, ''),
    )
    .filter(Boolean);
  for (const d of domains) {
    if (!DOMAIN_RE.test(d) || d.length > 253)
      throw bad(variable, `${JSON.stringify(d)} is not a DNS domain`, 'Example: vault.custody.test.');
  }
  return [...new Set(domains)];
}

/**
 * Reads the Azure front door's settings from the environment:
 * `CUSTODY_AZURE_VAULTS` (vault=env pairs), `CUSTODY_AZURE_DOMAINS` (extra vault domains),
 * `CUSTODY_AZURE_TENANT` (challenge tenant, default `custody`), `CUSTODY_AZURE_DEFAULT_VAULT`.
 */
export function resolveAzureConfig(env: NodeJS.ProcessEnv = process.env): AzureConfig {
  const config = defaultAzureConfig();
  if (env.CUSTODY_AZURE_VAULTS) config.vaults = parseVaultTable(env.CUSTODY_AZURE_VAULTS);
  if (env.CUSTODY_AZURE_DOMAINS) config.domains = parseDomains(env.CUSTODY_AZURE_DOMAINS);
  if (env.CUSTODY_AZURE_TENANT) {
    if (!TENANT_RE.test(env.CUSTODY_AZURE_TENANT))
      throw bad('CUSTODY_AZURE_TENANT', 'a tenant is letters, digits, dots and dashes', 'Example: custody.');
    config.tenant = env.CUSTODY_AZURE_TENANT;
  }
  if (env.CUSTODY_AZURE_DEFAULT_VAULT) {
    const v = env.CUSTODY_AZURE_DEFAULT_VAULT.trim().toLowerCase();
    if (!VAULT_RE.test(v))
      throw bad('CUSTODY_AZURE_DEFAULT_VAULT', `${JSON.stringify(v)} is not a vault name`, 'Example: dev.');
    config.defaultVault = v;
  }
  return config;
}

/** Certificate names the broker needs so that `https://<vault>.<domain>` verifies: `*.<domain>`. */
export const azureTlsHosts = (config: AzureConfig | undefined): string[] =>
  (config?.domains ?? []).map((d) => `*.${d}`);
