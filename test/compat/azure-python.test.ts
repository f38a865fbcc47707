import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { Agent, request } from 'undici';
import { type RunningBroker, startBroker } from '../../src/broker.js';
import {
  type IssuedToken,
  type ManagedIdentityEndpoint,
  startManagedIdentityEndpoint,
} from '../../src/compat/azure/managed-identity.js';
import { resolveServerConfig } from '../../src/config.js';
import { ensureVenv, type PythonVenv } from '../support/python-venv.js';

/**
 * The official Python clients (`azure-keyvault-secrets`, `azure-identity`) from the test venv,
 * unmodified, against the Azure front door: through a vault host name resolved by a test-only
 * `sitecustomize.py` shim (challenge-resource verification on), and through `https://127.0.0.1:PORT`
 * with verification off (the broker's default vault serves that address).
 */

const DOMAIN = 'vault.custody.test';
const SCRIPTS = fileURLToPath(new URL('./azure/', import.meta.url));

let venv: PythonVenv;
let broker: RunningBroker;
let dataDir: string;
let caPath: string;
let port: number;
let dispatcher: Agent;
let rootToken: string;
let mi: ManagedIdentityEndpoint;
let current: IssuedToken;
const resources: string[] = [];

async function call(method: string, urlPath: string, body?: unknown) {
  const res = await request(`${broker.url}${urlPath}`, {
    method: method as 'GET',
    headers: { authorization: `Bearer ${rootToken}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    dispatcher,
  });
  return { status: res.statusCode, body: (await res.body.json()) as any };
}

async function login(env: string, name: string, role: string): Promise<IssuedToken> {
  const { identities, tokens } = broker.services;
  const identity = await identities.upsertFromLogin({
    env,
    authMethod: 'jwt',
    loginRole: 'test',
    kind: 'workload',
    name,
    metadata: {},
  });
  const { token, info } = await tokens.create({
    policies: [],
    identityId: identity.id,
    env,
    authMethod: 'jwt',
    ttlSeconds: 3600,
  });
  const res = await call('POST', '/v1/access/assignments', {
    principal: `${env}/${name}`,
    role,
    scope: env,
    reason: 'azure python test',
    allow_management: true,
  });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return { token, expiresAt: info.expiresAt! };
}

function runPython(env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  const base: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(base)) {
    if (/^(AZURE_|IDENTITY_|MSI_|IMDS_|REQUESTS_CA_BUNDLE|SSL_CERT_FILE)/.test(k)) delete base[k];
  }
  return new Promise((resolve, reject) => {
    const child = spawn(venv.python, [path.join(SCRIPTS, 'keyvault_client.py')], {
      env: {
        ...base,
        PYTHONNOUSERSITE: '1',
        PYTHONPATH: SCRIPTS,
        REQUESTS_CA_BUNDLE: caPath,
        SSL_CERT_FILE: caPath,
        CUSTODY_TEST_RESOLVE_SUFFIX: '.custody.test',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (c) => (output += c));
    child.stderr.on('data', (c) => (output += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), 180_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

before(async () => {
  venv = await ensureVenv();
  dataDir = await mkdtemp(path.join(tmpdir(), 'custody-azure-py-'));
  const config = resolveServerConfig(
    { dataDir, listen: '127.0.0.1:0', logLevel: 'warn' },
    { CUSTODY_AZURE_DOMAINS: DOMAIN, CUSTODY_AZURE_DEFAULT_VAULT: 'dev' },
  );
  broker = await startBroker(config, pino({ level: 'warn' }, { write: () => {} }));
  caPath = broker.caCertPath!;
  port = Number(new URL(broker.url).port);
  dispatcher = new Agent({ connect: { ca: await readFile(caPath, 'utf8') } });
  rootToken = (await readFile(broker.rootTokenPath!, 'utf8')).trim();
  assert.equal((await call('POST', '/v1/envs', { name: 'dev' })).status, 200);
  mi = await startManagedIdentityEndpoint({
    getToken: async (r) => {
      resources.push(`${r.source} ${r.resource}`);
      return current;
    },
  });
});
after(async () => {
  await mi?.close();
  await broker?.close();
  await dispatcher?.close();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

describe('official Python SDK (azure-keyvault-secrets + azure-identity)', () => {
  test('every mapped operation and the error cases via a vault host name, ManagedIdentityCredential (App Service)', async () => {
    current = await login('dev', 'py-officer', 'secrets-officer');
    const res = await runPython({
      IDENTITY_ENDPOINT: mi.env.IDENTITY_ENDPOINT,
      IDENTITY_HEADER: mi.env.IDENTITY_HEADER,
      CUSTODY_TEST_VAULT_URL: `https://dev.${DOMAIN}:${port}/`,
      CUSTODY_TEST_CREDENTIAL: 'managed',
      CUSTODY_TEST_SCENARIO: 'full',
    });
    assert.equal(res.code, 0, res.output);
    assert.match(res.output, /PY-CHILD-OK full/);
    assert.deepEqual(
      resources,
      [`app-service https://${DOMAIN}:${port}`],
      'one token, for the vault resource',
    );
  });

  test('RBAC denials as Key Vault Reader, DefaultAzureCredential through the Azure ML (MSI_ENDPOINT) source', async () => {
    current = await login('dev', 'py-reader', 'reader');
    const res = await runPython({
      MSI_ENDPOINT: mi.env.MSI_ENDPOINT,
      MSI_SECRET: mi.env.MSI_SECRET,
      CUSTODY_TEST_VAULT_URL: `https://dev.${DOMAIN}:${port}/`,
      CUSTODY_TEST_CREDENTIAL: 'default',
      CUSTODY_TEST_SCENARIO: 'reader',
    });
    assert.equal(res.code, 0, res.output);
    assert.match(res.output, /PY-CHILD-OK reader/);
    assert.equal(resources.at(-1), `azure-ml https://${DOMAIN}:${port}`);
  });

  test('https://127.0.0.1:PORT with verify_challenge_resource=False reaches the default vault', async () => {
    current = await login('dev', 'py-ip', 'secrets-officer');
    const res = await runPython({
      IDENTITY_ENDPOINT: mi.env.IDENTITY_ENDPOINT,
      IDENTITY_HEADER: mi.env.IDENTITY_HEADER,
      CUSTODY_TEST_VAULT_URL: `https://127.0.0.1:${port}/`,
      CUSTODY_TEST_CREDENTIAL: 'managed',
      CUSTODY_TEST_VERIFY: '0',
      CUSTODY_TEST_SCENARIO: 'ip',
    });
    assert.equal(res.code, 0, res.output);
    assert.match(res.output, /PY-CHILD-OK ip/);
    assert.equal((await call('GET', '/v1/deleted-secrets/dev')).body.items.length, 0);
  });

  test('with challenge-resource verification on, the client itself refuses a bare IP', async () => {
    const res = await runPython({
      IDENTITY_ENDPOINT: mi.env.IDENTITY_ENDPOINT,
      IDENTITY_HEADER: mi.env.IDENTITY_HEADER,
      CUSTODY_TEST_VAULT_URL: `https://127.0.0.1:${port}/`,
      CUSTODY_TEST_CREDENTIAL: 'managed',
      CUSTODY_TEST_SCENARIO: 'ip',
    });
    assert.notEqual(res.code, 0);
    assert.match(res.output, /does not match the requested domain/);
  });

  test('the Python clients went through the one pipeline: audited with door azure', async () => {
    const entries = (await readFile(path.join(dataDir, 'audit.log'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const azure = entries.filter((e) => e.door === 'azure');
    assert.ok(azure.some((e) => e.action === 'secrets/set' && e.outcome === 'ok'));
    assert.ok(azure.some((e) => e.action === 'secrets/purge' && e.outcome === 'ok'));
    assert.ok(azure.some((e) => e.action === 'secrets/get' && e.outcome === 'denied'));
    const text = JSON.stringify(entries);
    for (const v of ['hunter2', 'hunter3', 'via-127']) assert.ok(!text.includes(v), 'no plaintext value');
  });
});
