import { readFile } from 'node:fs/promises';
import { connect as tlsConnect } from 'node:tls';
import { CliError } from '../cli/errors.js';
// A loopback HTTP endpoint with no server dependencies (node:http only): shared with the broker's docs/tests.
import { startManagedIdentityEndpoint } from '../compat/azure/managed-identity.js';
import { makePrivateDir, writeCaBundle } from './ca-bundle.js';
import { KEY_VAULT_DOMAINS, type ProxyEvent, startConnectProxy } from './connect-proxy.js';

/**
 * Variables through which the Azure SDKs' `DefaultAzureCredential` picks a credential before (or
 * instead of) managed identity, or a different managed-identity source. `custody run --azure`
 * removes them from the child's environment, so the chain lands on its loopback endpoint.
 */
export const AZURE_IDENTITY_VARIABLES = [
  'AZURE_TENANT_ID',
  'AZURE_CLIENT_ID',
  'AZURE_CLIENT_SECRET',
  'AZURE_CLIENT_CERTIFICATE_PATH',
  'AZURE_CLIENT_CERTIFICATE_PASSWORD',
  'AZURE_CLIENT_SEND_CERTIFICATE_CHAIN',
  'AZURE_USERNAME',
  'AZURE_PASSWORD',
  'AZURE_FEDERATED_TOKEN_FILE',
  'AZURE_AUTHORITY_HOST',
  'AZURE_POD_IDENTITY_AUTHORITY_HOST',
  'AZURE_REGIONAL_AUTHORITY_NAME',
  'AZURE_ADDITIONALLY_ALLOWED_TENANTS',
  'AZURE_TOKEN_CREDENTIALS',
  'DEFAULT_IDENTITY_CLIENT_ID',
  'IDENTITY_ENDPOINT',
  'IDENTITY_HEADER',
  'IDENTITY_SERVER_THUMBPRINT',
  'IDENTITY_API_VERSION',
  'IMDS_ENDPOINT',
  'MSI_ENDPOINT',
  'MSI_SECRET',
  'OBO_ENDPOINT',
] as const;

/** What `--azure` puts in the child's environment (the names; values come from setupAzure). */
export const AZURE_CHILD_VARIABLES = [
  'IDENTITY_ENDPOINT',
  'IDENTITY_HEADER',
  'MSI_ENDPOINT',
  'MSI_SECRET',
  'HTTPS_PROXY',
  'https_proxy',
  'HTTP_PROXY',
  'http_proxy',
  'NO_PROXY',
  'no_proxy',
  'REQUESTS_CA_BUNDLE',
  'SSL_CERT_FILE',
  'CURL_CA_BUNDLE',
  'NODE_EXTRA_CA_CERTS',
] as const;

export interface AzureSetupOptions {
  /** The broker's address (https) and CA file. */
  addr: string;
  caCertPath: string | undefined;
  /** The Custody token the managed-identity endpoint hands out, and until when it is good. */
  getToken: () => Promise<{ token: string; expiresAt: Date }>;
  denyOthers: boolean;
  /** The environment the child's CA files extend (REQUESTS_CA_BUNDLE… already set there). */
  parentEnv: NodeJS.ProcessEnv;
  onProxyEvent?: (e: ProxyEvent) => void;
}

export interface AzureSetup {
  env: Record<string, string>;
  close(): Promise<void>;
}

const hostOf = (u: URL) => u.hostname.replace(/^\[|\]$/g, '');

/**
 * Checks, before the child starts, that the broker presents a certificate for
 * `<vault>.vault.azure.net` (and the other clouds) signed by the CA the child will trust — what the
 * SDK will check through the proxy. A broker too old to add those names fails here with a hint
 * instead of deep inside the child's first Key Vault call.
 */
export async function checkVaultCertificate(host: string, port: number, ca: string): Promise<void> {
  const probe = (domain: string) =>
    new Promise<string | null>((resolve) => {
      const s = tlsConnect({ host, port, ca, servername: `custody-check.${domain}` });
      s.setTimeout(10_000, () => s.destroy(new Error('TLS handshake timed out')));
      s.once('secureConnect', () => {
        s.end();
        resolve(null);
      });
      s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    });
  const results = await Promise.all(KEY_VAULT_DOMAINS.map(async (d) => [d, await probe(d)] as const));
  const failed = results.filter(([, r]) => r !== null);
  if (failed.length === 0) return;
  const notCovered = failed.filter(([, r]) => r === 'ERR_TLS_CERT_ALTNAME_INVALID');
  if (notCovered.length > 0) {
    throw new CliError(
      'AzureVaultCertificateMissing',
      `The broker's certificate does not cover ${notCovered.map(([d]) => `*.${d}`).join(', ')}`,
      'Restart the broker with a Custody version that adds the Key Vault names to its certificate, ' +
        "or start it with --tls-host '*.vault.azure.net' --tls-host '*.vault.usgovcloudapi.net' --tls-host '*.vault.azure.cn'.",
    );
  }
  throw new CliError(
    'AzureVaultCertificateUnverified',
    `TLS to the broker as a Key Vault host failed (${failed[0][1]})`,
    "Check CUSTODY_CACERT: it must be the broker's <data-dir>/tls/ca.pem.",
  );
}

/**
 * `--azure`: a managed-identity endpoint on 127.0.0.1 handing out the job's Custody token, a
 * loopback CONNECT proxy routing Key Vault hosts to the broker, and CA files that add Custody's CA
 * to what the child trusts. Everything is undone by close().
 */
export async function setupAzure(opts: AzureSetupOptions): Promise<AzureSetup> {
  const broker = new URL(opts.addr);
  if (broker.protocol !== 'https:') {
    throw new CliError(
      'AzureNeedsHttps',
      '--azure needs a broker that serves HTTPS (Key Vault clients refuse bearer tokens over plain HTTP)',
      'Start the broker without --insecure-http and point CUSTODY_ADDR at its https:// address.',
    );
  }
  if (!opts.caCertPath) {
    throw new CliError(
      'AzureNeedsCaCert',
      "--azure needs the broker's CA certificate: the child must trust it for *.vault.azure.net",
      "Set CUSTODY_CACERT (or --ca-cert) to the broker's <data-dir>/tls/ca.pem.",
    );
  }
  let caPem: string;
  try {
    caPem = await readFile(opts.caCertPath, 'utf8');
  } catch (err) {
    throw new CliError(
      'CaCertUnreadable',
      `Cannot read the CA certificate ${opts.caCertPath} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
      "Point CUSTODY_CACERT (or --ca-cert) at the broker's <data-dir>/tls/ca.pem.",
    );
  }
  const host = hostOf(broker);
  const port = Number(broker.port || 443);
  await checkVaultCertificate(host, port, caPem);

  const undo: (() => Promise<void>)[] = [];
  const close = async () => {
    for (const fn of undo.splice(0).reverse()) await fn().catch(() => {});
  };
  try {
    const dir = await makePrivateDir();
    undo.push(dir.remove);
    const { bundlePath, extraPath } = await writeCaBundle(dir.path, caPem, opts.parentEnv);

    const mi = await startManagedIdentityEndpoint({ getToken: opts.getToken });
    undo.push(() => mi.close());
    const proxy = await startConnectProxy({
      broker: { host, port },
      denyOthers: opts.denyOthers,
      onEvent: opts.onProxyEvent,
    });
    undo.push(() => proxy.close());

    const noProxy = [...new Set(['localhost', '127.0.0.1', '::1', host])].join(',');
    const env: Record<string, string> = {
      ...mi.env,
      HTTPS_PROXY: proxy.url,
      https_proxy: proxy.url,
      HTTP_PROXY: proxy.url,
      http_proxy: proxy.url,
      NO_PROXY: noProxy,
      no_proxy: noProxy,
      REQUESTS_CA_BUNDLE: bundlePath,
      SSL_CERT_FILE: bundlePath,
      CURL_CA_BUNDLE: bundlePath,
      NODE_EXTRA_CA_CERTS: extraPath,
    };
    return { env, close };
  } catch (err) {
    await close();
    throw err;
  }
}
