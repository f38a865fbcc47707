import type { TokenCredential } from '@azure/identity';
import type { AzureCloud } from '../../client/providers/azure-key-vault.js';
import { type Doctor, shortError } from './checks.js';

/*
 * Which credential of DefaultAzureCredential's chain would serve this process, and why. The chain
 * is walked the way the SDK walks it — EnvironmentCredential, WorkloadIdentityCredential,
 * ManagedIdentityCredential, AzureCliCredential, AzureDeveloperCliCredential (or the subset
 * AZURE_TOKEN_CREDENTIALS names) — moving on when a credential is unavailable and stopping at the
 * first configured one that fails, as the SDK does. Each link says what it was configured by (names
 * of variables, never values); the managed-identity probe gets its own timeout (--mi-timeout).
 */

export interface ChainResult {
  /** The credential that produced a token (for the Key Vault read), or undefined. */
  credential?: TokenCredential;
  name?: string;
}

interface Link {
  name: string;
  /** Why it cannot be used here (unset variables), or undefined when it is configured. */
  missing(): string | undefined;
  /** What configures it (names of variables and non-secret values). */
  source(): string;
  make(): TokenCredential;
  timeoutMs: number;
}

const has = (env: NodeJS.ProcessEnv, ...names: string[]) => names.every((n) => !!env[n]?.trim());
const unset = (env: NodeJS.ProcessEnv, names: string[]) => names.filter((n) => !env[n]?.trim());

/** The managed-identity source the SDK picks from the environment. */
export function managedIdentitySource(env: NodeJS.ProcessEnv): string {
  const user = env.AZURE_CLIENT_ID ? `user-assigned, client id ${env.AZURE_CLIENT_ID}` : 'system-assigned';
  if (has(env, 'IDENTITY_ENDPOINT', 'IDENTITY_HEADER', 'IDENTITY_SERVER_THUMBPRINT'))
    return `Service Fabric endpoint IDENTITY_ENDPOINT=${env.IDENTITY_ENDPOINT} (${user})`;
  if (has(env, 'IDENTITY_ENDPOINT', 'IDENTITY_HEADER'))
    return `App Service endpoint IDENTITY_ENDPOINT=${env.IDENTITY_ENDPOINT} (${user})`;
  if (has(env, 'IDENTITY_ENDPOINT', 'IMDS_ENDPOINT'))
    return `Azure Arc endpoint IDENTITY_ENDPOINT=${env.IDENTITY_ENDPOINT} (${user})`;
  if (has(env, 'MSI_ENDPOINT'))
    return `Azure ML / Cloud Shell endpoint MSI_ENDPOINT=${env.MSI_ENDPOINT} (${user})`;
  return `the instance metadata service 169.254.169.254 (${user})`;
}

async function links(env: NodeJS.ProcessEnv, cloud: AzureCloud, miTimeoutMs: number): Promise<Link[]> {
  const id = await import('@azure/identity');
  const { AZURE_CLOUDS } = await import('../../client/providers/azure-key-vault.js');
  const authorityHost = AZURE_CLOUDS[cloud].authorityHost;
  const envSecret = ['AZURE_TENANT_ID', 'AZURE_CLIENT_ID'];
  const all: Link[] = [
    {
      name: 'EnvironmentCredential',
      missing: () => {
        const base = unset(env, envSecret);
        const kind =
          has(env, 'AZURE_CLIENT_SECRET') ||
          has(env, 'AZURE_CLIENT_CERTIFICATE_PATH') ||
          has(env, 'AZURE_USERNAME', 'AZURE_PASSWORD');
        if (base.length === 0 && kind) return undefined;
        return `${[...base, ...(kind ? [] : ['AZURE_CLIENT_SECRET (or AZURE_CLIENT_CERTIFICATE_PATH)'])].join(', ')} not set`;
      },
      source: () =>
        `${has(env, 'AZURE_CLIENT_SECRET') ? 'client secret (AZURE_CLIENT_SECRET)' : has(env, 'AZURE_CLIENT_CERTIFICATE_PATH') ? `certificate AZURE_CLIENT_CERTIFICATE_PATH=${env.AZURE_CLIENT_CERTIFICATE_PATH}` : 'username + password (AZURE_USERNAME)'} for client ${env.AZURE_CLIENT_ID} in tenant ${env.AZURE_TENANT_ID}`,
      make: () => new id.EnvironmentCredential({ authorityHost }),
      timeoutMs: 15_000,
    },
    {
      name: 'WorkloadIdentityCredential',
      missing: () => {
        const m = unset(env, ['AZURE_FEDERATED_TOKEN_FILE', 'AZURE_CLIENT_ID', 'AZURE_TENANT_ID']);
        return m.length ? `${m.join(', ')} not set` : undefined;
      },
      source: () =>
        `federated token AZURE_FEDERATED_TOKEN_FILE=${env.AZURE_FEDERATED_TOKEN_FILE} for client ${env.AZURE_CLIENT_ID}`,
      make: () => new id.WorkloadIdentityCredential({ authorityHost }),
      timeoutMs: 15_000,
    },
    {
      name: 'ManagedIdentityCredential',
      missing: () => undefined,
      source: () => managedIdentitySource(env),
      make: () =>
        new id.ManagedIdentityCredential(env.AZURE_CLIENT_ID ? { clientId: env.AZURE_CLIENT_ID } : {}),
      timeoutMs: miTimeoutMs,
    },
    {
      name: 'AzureCliCredential',
      missing: () => undefined,
      source: () => 'the Azure CLI login (`az login`)',
      make: () => new id.AzureCliCredential({ processTimeoutInMs: 10_000 }),
      timeoutMs: 15_000,
    },
    {
      name: 'AzureDeveloperCliCredential',
      missing: () => undefined,
      source: () => 'the Azure Developer CLI login (`azd auth login`)',
      make: () => new id.AzureDeveloperCliCredential({ processTimeoutInMs: 10_000 }),
      timeoutMs: 15_000,
    },
  ];
  // AZURE_TOKEN_CREDENTIALS narrows the chain: `prod`, `dev`, or one credential's name.
  const only = env.AZURE_TOKEN_CREDENTIALS?.trim().toLowerCase();
  if (!only) return all;
  if (only === 'prod') return all.slice(0, 3);
  if (only === 'dev') return all.slice(3);
  return all.filter((l) => l.name.toLowerCase() === only);
}

/** getToken with a hard deadline (the SDK's own abort handling is not relied upon). */
async function tokenWithin(cred: TokenCredential, scope: string, ms: number): Promise<unknown> {
  const ac = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const pending = cred.getToken(scope, { abortSignal: ac.signal });
  pending.catch(() => {});
  try {
    return await Promise.race([
      pending,
      new Promise((_, reject) => {
        timer = setTimeout(() => {
          ac.abort();
          reject(Object.assign(new Error(`no answer within ${ms}ms`), { name: 'DoctorTimeout' }));
        }, ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

const UNAVAILABLE = new Set(['CredentialUnavailableError', 'AuthenticationRequiredError', 'DoctorTimeout']);

/** The `azure-key-vault: authentication` line: which credential won and why the ones before it did not. */
export async function checkAzureChain(
  d: Doctor,
  env: NodeJS.ProcessEnv,
  cloud: AzureCloud,
  miTimeoutMs: number,
): Promise<ChainResult> {
  d.remember(env.AZURE_CLIENT_SECRET, env.AZURE_PASSWORD, env.IDENTITY_HEADER, env.MSI_SECRET);
  const name = 'azure-key-vault: authentication';
  const { AZURE_CLOUDS } = await import('../../client/providers/azure-key-vault.js');
  const scope = `https://${AZURE_CLOUDS[cloud].vaultSuffix}/.default`;
  const before: string[] = [];
  const chain = await links(env, cloud, miTimeoutMs);
  if (chain.length === 0) {
    d.add(
      'FAIL',
      name,
      `AZURE_TOKEN_CREDENTIALS=${env.AZURE_TOKEN_CREDENTIALS} names no credential of the chain`,
      'set AZURE_TOKEN_CREDENTIALS to prod, dev or one credential name (e.g. ManagedIdentityCredential), or unset it',
    );
    return {};
  }
  for (const link of chain) {
    const missing = link.missing();
    if (missing) {
      before.push(`${link.name} not configured (${missing})`);
      continue;
    }
    let cred: TokenCredential;
    try {
      cred = link.make();
      const t = (await tokenWithin(cred, scope, link.timeoutMs)) as { token?: string } | null;
      if (t?.token) {
        d.remember(t.token);
        d.add(
          'PASS',
          name,
          `${link.name} won: ${link.source()}${before.length ? `; before it: ${before.join('; ')}` : ''}`,
        );
        return { credential: cred, name: link.name };
      }
      before.push(`${link.name}: no token`);
    } catch (err) {
      const e = err as { name?: string; errorResponse?: { errorDescription?: string } };
      // An AuthenticationError's message is generic; the cause is in its description.
      const described = e.errorResponse?.errorDescription?.trim();
      const why =
        e.name === 'DoctorTimeout'
          ? `no answer from ${link.source()} within ${link.timeoutMs}ms`
          : described
            ? `${e.name}: ${shortError(new Error(described), 220)}`
            : shortError(err, 220);
      if (UNAVAILABLE.has(e.name ?? '')) {
        before.push(`${link.name} unavailable (${why})`);
        continue;
      }
      // The SDK's chain stops here too: a configured credential that fails is not skipped.
      d.add(
        'FAIL',
        name,
        `${link.name} is configured (${link.source()}) and failed: ${why}; DefaultAzureCredential stops at it and does not try the credentials after it${before.length ? `; before it: ${before.join('; ')}` : ''}`,
        link.name === 'EnvironmentCredential'
          ? 'fix the AZURE_TENANT_ID/AZURE_CLIENT_ID/AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH values — or unset them if this job should use its managed identity'
          : link.name === 'WorkloadIdentityCredential'
            ? 'check the federated credential of the app registration (issuer, subject) and AZURE_FEDERATED_TOKEN_FILE'
            : link.name === 'ManagedIdentityCredential'
              ? `check that a managed identity is assigned to this resource${env.AZURE_CLIENT_ID ? ' and that AZURE_CLIENT_ID is the client id of a user-assigned one' : ''}`
              : 'check the login of that tool',
      );
      return {};
    }
  }
  d.add(
    'FAIL',
    name,
    `no credential of the chain worked: ${before.join('; ')}`,
    'set AZURE_TENANT_ID/AZURE_CLIENT_ID/AZURE_CLIENT_SECRET, enable workload or managed identity, or `az login`; raise --mi-timeout on a slow metadata endpoint',
  );
  return {};
}
