import { AZURE_VAULT_DOMAINS, type AzureConfig } from './config.js';

/** A request's Host header read as a Key Vault address. */
export interface VaultHost {
  /** The vault name (the Host's first label), lower case. */
  vault: string;
  /** The Custody environment the vault serves. */
  env: string;
  /** The Host header as sent (name and port): ids and links are built on it. */
  authority: string;
  /** What the challenge names as resource: `https://<vault domain>[:port]`. */
  resource: string;
}

/** Splits `name:port` / `[v6]:port` into its parts. */
function splitHost(host: string): { name: string; port: string } {
  const m = /^(\[[^\]]*\]|[^:]*)(?::(\d{1,5}))?$/.exec(host);
  return m ? { name: m[1].toLowerCase(), port: m[2] ?? '' } : { name: '', port: '' };
}

/** The environment a vault serves: the configured table first, then the environment of the same name. */
export const vaultEnvironment = (config: AzureConfig, vault: string): string => config.vaults[vault] ?? vault;

/**
 * Reads the vault out of the Host header: `<vault>.vault.azure.net`, `.vault.usgovcloudapi.net`,
 * `.vault.azure.cn` or `<vault>.<configured domain>`. A Host that is none of these is served as
 * the configured default vault, if any; otherwise it is not a Key Vault request (null).
 */
export function parseVaultHost(config: AzureConfig, hostHeader: string | undefined): VaultHost | null {
  if (!hostHeader) return null;
  const authority = hostHeader.trim();
  const { name, port } = splitHost(authority);
  if (!name) return null;
  const suffix = port ? `:${port}` : '';
  for (const domain of [...AZURE_VAULT_DOMAINS, ...config.domains]) {
    if (!name.endsWith(`.${domain}`)) continue;
    const vault = name.slice(0, -domain.length - 1);
    // One label only: `a.b.vault.azure.net` is no vault host.
    if (!/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/.test(vault)) return null;
    return { vault, env: vaultEnvironment(config, vault), authority, resource: `https://${domain}${suffix}` };
  }
  if (config.defaultVault) {
    const vault = config.defaultVault;
    return { vault, env: vaultEnvironment(config, vault), authority, resource: `https://${name}${suffix}` };
  }
  return null;
}
