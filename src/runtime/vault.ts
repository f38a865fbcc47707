/**
 * Where the broker serves its HashiCorp Vault-compatible API: under this path prefix, so that
 * `VAULT_ADDR=https://HOST:PORT/vault` and clients append `/v1/…`. Must equal `VAULT_PREFIX` in
 * src/compat/vault/door.ts (not imported: that module pulls in the server; a test checks they match).
 */
export const VAULT_PATH_PREFIX = '/vault';

/** What `--vault` puts in the child's environment. */
export const VAULT_CHILD_VARIABLES = ['VAULT_ADDR', 'VAULT_TOKEN', 'VAULT_CACERT'] as const;

/** Vault settings the Custody door does not follow; removed from the child's environment. */
export const VAULT_UNSUPPORTED_VARIABLES = ['VAULT_NAMESPACE'] as const;

/** `VAULT_ADDR` for a broker address: `https://127.0.0.1:8270` → `https://127.0.0.1:8270/vault`. */
export const vaultAddr = (brokerAddr: string) => `${brokerAddr.replace(/\/+$/, '')}${VAULT_PATH_PREFIX}`;

export function vaultEnv(opts: {
  addr: string;
  token: string;
  caCertPath: string | undefined;
}): Record<string, string> {
  return {
    VAULT_ADDR: vaultAddr(opts.addr),
    VAULT_TOKEN: opts.token,
    ...(opts.caCertPath ? { VAULT_CACERT: opts.caCertPath } : {}),
  };
}
