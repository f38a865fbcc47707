import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import pino from 'pino';
import { Agent, request } from 'undici';
import { type RunningBroker, startBroker } from '../../src/broker.js';
import {
  AZURE_CLOUDS,
  AzureKeyVaultProvider,
  azureVaultUrl,
  loadConfig,
  type ProviderError,
  providersFromConfig,
} from '../../src/client/index.js';
import {
  type ManagedIdentityEndpoint,
  startManagedIdentityEndpoint,
} from '../../src/compat/azure/managed-identity.js';
import { resolveServerConfig } from '../../src/config.js';

/**
 * The Azure Key Vault provider (official `@azure/identity` + `@azure/keyvault-secrets`) against
 * Custody's Azure door, with Custody's managed-identity endpoint as the token source. The vault is
 * the door's default vault on https://127.0.0.1:PORT (challenge-resource verification off, as the
 * SDK refuses a bare IP otherwise); the broker's CA is trusted through the provider's `caCert`.
 */
let broker: RunningBroker;
let dataDir: string;
let ca: string;
let rootToken: string;
let mi: ManagedIdentityEndpoint;
let dispatcher: Agent;
const issued: string[] = [];
let v1: string;

async function call(method: string, urlPath: string, body?: unknown) {
  const res = await request(`${broker.url}${urlPath}`, {
    method: method as 'GET',
    headers: { authorization: `Bearer ${rootToken}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    dispatcher,
  });
  const parsed = (await res.body.json()) as any;
  assert.equal(res.statusCode, 200, JSON.stringify(parsed));
  return parsed;
}

const saved: Record<string, string | undefined> = {};

before(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'custody-client-azure-'));
  const config = resolveServerConfig(
    { dataDir, listen: '127.0.0.1:0', logLevel: 'warn' },
    { CUSTODY_AZURE_DEFAULT_VAULT: 'dev' },
  );
  broker = await startBroker(config, pino({ level: 'warn' }, { write: () => {} }));
  ca = await readFile(broker.caCertPath!, 'utf8');
  rootToken = (await readFile(broker.rootTokenPath!, 'utf8')).trim();
  dispatcher = new Agent({ connect: { ca } });
  await call('POST', '/v1/envs', { name: 'dev' });
  v1 = (await call('PUT', '/v1/secrets/dev/mlflow-token', { value: '{"token":"az-1"}' })).version;
  await call('PUT', '/v1/secrets/dev/mlflow-token', { value: '{"token":"az-2"}' });
  mi = await startManagedIdentityEndpoint({
    getToken: async (r) => {
      issued.push(`${r.source}:${r.resource}`);
      return { token: rootToken, expiresAt: Date.now() + 3_600_000 };
    },
  });
  // msal reads the managed-identity source from the environment when the credential is built.
  for (const [k, v] of Object.entries(mi.env)) {
    saved[k] = process.env[k];
    process.env[k] = v;
  }
});

after(async () => {
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  await mi?.close();
  await broker?.close();
  await dispatcher?.close();
  await rm(dataDir, { recursive: true, force: true });
});

test('managed identity (system-assigned): latest, pinned version, #field, missing secret', async () => {
  const p = new AzureKeyVaultProvider({
    vaultUrl: broker.url,
    credential: { kind: 'managed-identity' },
    caCert: ca,
    clientOptions: { disableChallengeResourceVerification: true },
  });
  try {
    assert.equal(await p.get('mlflow-token'), '{"token":"az-2"}');
    assert.equal(await p.get('mlflow-token#token'), 'az-2');
    assert.equal(await p.get('mlflow-token#token', { version: v1 }), 'az-1');
    await assert.rejects(p.get('no-such-secret'), (e: ProviderError) => {
      assert.equal(e.status, 404);
      assert.match(e.message, /SecretNotFound/);
      return true;
    });
  } finally {
    await p.close();
  }
  assert.ok(
    issued.some((i) => i.startsWith('app-service:')),
    issued.join(','),
  );
});

test('user-assigned managed identity and the config path (AZURE_KEY_VAULT_URL, MLFLOW_AZURE_SECRET_VERSION)', async () => {
  const config = loadConfig({
    MLFLOW_SECRETS_AUTH_ENABLE: 'azure-key-vault',
    AZURE_KEY_VAULT_URL: broker.url,
    MLFLOW_AZURE_SECRET_NAME: 'mlflow-token',
    MLFLOW_AZURE_SECRET_VERSION: v1,
  });
  const [p] = providersFromConfig(config, {
    azure: {
      credential: { kind: 'managed-identity', clientId: '00000000-0000-0000-0000-000000000001' },
      caCert: ca,
      clientOptions: { disableChallengeResourceVerification: true },
    },
  });
  try {
    assert.equal(
      await p.get(`${config.azure.secretName}#token`, { version: config.azure.secretVersion }),
      'az-1',
    );
  } finally {
    await p.close();
  }
});

test('sovereign clouds: vault suffixes and authority hosts; https only', () => {
  assert.equal(azureVaultUrl('kv1'), 'https://kv1.vault.azure.net');
  assert.equal(azureVaultUrl('kv1', 'AzureUSGovernment'), 'https://kv1.vault.usgovcloudapi.net');
  assert.equal(azureVaultUrl('kv1', 'AzureChinaCloud'), 'https://kv1.vault.azure.cn');
  assert.equal(AZURE_CLOUDS.AzureUSGovernment.authorityHost, 'https://login.microsoftonline.us');
  assert.equal(AZURE_CLOUDS.AzureChinaCloud.authorityHost, 'https://login.chinacloudapi.cn');
  assert.throws(() => azureVaultUrl('http://kv1.vault.azure.net'), /must be https/);
  const p = new AzureKeyVaultProvider({
    vaultUrl: 'kv1',
    cloud: 'AzureChinaCloud',
    credential: { kind: 'client-secret', tenantId: 't', clientId: 'c', clientSecret: 's' },
  });
  assert.equal(p.vaultUrl, 'https://kv1.vault.azure.cn');
});
