import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { keyVaultForbidden } from '../../src/cli/doctor/azure.js';
import {
  type ManagedIdentityEndpoint,
  startManagedIdentityEndpoint,
} from '../../src/compat/azure/managed-identity.js';
import { type ConnectProxy, startConnectProxy } from '../../src/runtime/connect-proxy.js';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { type MlflowServer, mlflowRequest, startMlflow } from '../support/mlflow.js';
import { check, doctor, hintOf, jsonChecks, noLeak, ok } from './helpers.js';

/**
 * `custody doctor` with the Azure Key Vault provider, the way a job on Azure runs it: the vault is
 * `https://ml-vault.vault.azure.net` (reached through a loopback CONNECT proxy that sends Key Vault
 * hosts to Custody's Azure door, TLS end to end, the broker's CA in NODE_EXTRA_CA_CERTS), and the
 * identity comes from a managed-identity endpoint (App Service protocol) handing out Custody tokens.
 */
let b: TestBroker;
let mlflow: MlflowServer;
let caFile: string;
let proxy: ConnectProxy;
let trainerMi: ManagedIdentityEndpoint;
let strangerMi: ManagedIdentityEndpoint;
let tokens: { trainer: string; stranger: string };
/** A managed-identity endpoint that accepts connections and never answers. */
let silent: Server;
let silentUrl: string;
const held: number[] = [];
const sockets = new Set<Socket>();
const USER = 'azure-doctor';
const PASSWORD = `azure-canary-${Math.random().toString(36).slice(2)}-pw`;

const env = (extra: Record<string, string | undefined> = {}) => ({
  MLFLOW_SECRETS_AUTH_ENABLE: 'azure-key-vault',
  AZURE_KEY_VAULT_URL: 'https://ml-vault.vault.azure.net',
  MLFLOW_AZURE_SECRET_NAME: 'mlflow',
  MLFLOW_AZURE_AUTH_MODE: 'basic',
  HTTPS_PROXY: proxy.url,
  NO_PROXY: '127.0.0.1,localhost',
  NODE_EXTRA_CA_CERTS: caFile,
  IDENTITY_ENDPOINT: trainerMi.env.IDENTITY_ENDPOINT,
  IDENTITY_HEADER: trainerMi.env.IDENTITY_HEADER,
  MLFLOW_SECRETS_ALLOWED_HOSTS: '127.0.0.1',
  ...extra,
});
const secrets = () => [
  PASSWORD,
  b.rootToken,
  tokens.trainer,
  tokens.stranger,
  trainerMi.env.IDENTITY_HEADER,
  strangerMi.env.IDENTITY_HEADER,
];

async function workload(name: string): Promise<{ token: string; id: string }> {
  await ok(
    b.call('PUT', `/v1/auth/methods/ml-vault/approle/roles/${name}`, {
      body: { token_ttl: '1h', token_max_ttl: '8h' },
    }),
    'role',
  );
  const roleId = (await ok(b.call('GET', `/v1/auth/methods/ml-vault/approle/roles/${name}/role-id`), 'rid'))
    .role_id;
  const sid = await ok(
    b.call('POST', `/v1/auth/methods/ml-vault/approle/roles/${name}/secret-id`, { body: {} }),
    'sid',
  );
  const login = await ok(
    b.call('POST', `/v1/auth/login/ml-vault/approle/${name}`, {
      body: { role_id: roleId, secret_id: sid.secret_id },
      token: null,
    }),
    'login',
  );
  return { token: login.token, id: login.identity.id };
}

before(async () => {
  [b, mlflow] = await Promise.all([startTestBroker(), startMlflow()]);
  caFile = path.join(b.dataDir, 'azure-ca.pem');
  await writeFile(caFile, b.ca);
  const created = await mlflowRequest(mlflow, '2.0/mlflow/users/create', {
    body: { username: USER, password: PASSWORD },
    auth: { username: mlflow.adminUser, password: mlflow.adminPassword },
  });
  assert.equal(created.status, 200, created.text);
  // Vault `ml-vault` is the Custody environment of the same name.
  await ok(b.call('POST', '/v1/envs', { body: { name: 'ml-vault' } }), 'env');
  await ok(
    b.call('PUT', '/v1/secrets/ml-vault/mlflow', {
      body: { value: JSON.stringify({ username: USER, password: PASSWORD }) },
    }),
    'secret',
  );
  await ok(b.call('POST', '/v1/auth/methods/ml-vault', { body: { type: 'approle' } }), 'approle');
  const trainer = await workload('trainer');
  const stranger = await workload('stranger');
  tokens = { trainer: trainer.token, stranger: stranger.token };
  await ok(
    b.call('POST', '/v1/access/assignments', {
      body: {
        principal: trainer.id,
        role: 'secrets-user',
        scope: 'ml-vault',
        reason: 'doctor test',
      },
    }),
    'assign',
  );
  const u = new URL(b.url);
  proxy = await startConnectProxy({ broker: { host: u.hostname, port: Number(u.port) }, denyOthers: true });
  const issue = (token: string) => async () => ({ token, expiresAt: Date.now() + 3_600_000 });
  trainerMi = await startManagedIdentityEndpoint({ getToken: issue(tokens.trainer) });
  strangerMi = await startManagedIdentityEndpoint({ getToken: issue(tokens.stranger) });
  silent = createServer((s) => {
    held.push(Date.now());
    sockets.add(s);
    s.on('error', () => {});
    s.resume();
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  silentUrl = `http://127.0.0.1:${(silent.address() as { port: number }).port}/msi/token`;
});

after(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((r) => (silent ? silent.close(r) : r(null)));
  await trainerMi?.close();
  await strangerMi?.close();
  await proxy?.close();
  await b?.stop();
  await mlflow?.stop();
});

describe('custody doctor: Azure Key Vault provider', () => {
  test('managed identity wins (and why); all PASS ending in an authenticated MLflow request; JSON', async () => {
    const r = await doctor(['--dry-run', mlflow.url], env());
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    const auth = check(r.stdout, 'azure-key-vault: authentication', 'PASS');
    assert.match(
      auth,
      /^ManagedIdentityCredential won: App Service endpoint IDENTITY_ENDPOINT=http:\/\/127\.0\.0\.1:\d+\/msi\/token \(system-assigned\); before it: /,
    );
    assert.match(
      auth,
      /EnvironmentCredential not configured \(AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET \(or AZURE_CLIENT_CERTIFICATE_PATH\) not set\)/,
    );
    assert.match(
      auth,
      /WorkloadIdentityCredential not configured \(AZURE_FEDERATED_TOKEN_FILE, AZURE_CLIENT_ID, AZURE_TENANT_ID not set\)/,
    );
    check(r.stdout, 'azure-key-vault: reachable', 'PASS', /^https:\/\/ml-vault\.vault\.azure\.net answered/);
    check(r.stdout, 'azure-key-vault: permission', 'PASS', /^may get mlflow$/);
    check(r.stdout, 'azure-key-vault: secret format', 'PASS', /username \+ password \(mode: basic\)/);
    check(r.stdout, 'mlflow: authenticated request', 'PASS', /→ 200 with the azure-key-vault credential/);
    assert.doesNotMatch(r.stdout, /^(FAIL|WARN)/m);
    noLeak(r, secrets());

    const j = await doctor(['--dry-run', mlflow.url, '--format', 'json'], env());
    assert.equal(j.code, 0, j.stdout);
    const body = jsonChecks(j);
    assert.equal(body.ok, true);
    assert.match(
      body.checks.find((c) => c.name === 'azure-key-vault: authentication')!.detail,
      /^ManagedIdentityCredential won/,
    );
    noLeak(j, secrets());
  });

  test('a configured EnvironmentCredential that fails stops the chain, as DefaultAzureCredential does', async () => {
    const r = await doctor(
      [],
      env({
        AZURE_TENANT_ID: '00000000-0000-0000-0000-0000000000aa',
        AZURE_CLIENT_ID: '00000000-0000-0000-0000-0000000000bb',
        AZURE_CLIENT_CERTIFICATE_PATH: '/nonexistent/doctor-cert.pem',
        AZURE_CLIENT_SECRET: undefined,
      }),
    );
    assert.equal(r.code, 1, r.stdout);
    check(
      r.stdout,
      'azure-key-vault: authentication',
      'FAIL',
      /^EnvironmentCredential is configured \(certificate AZURE_CLIENT_CERTIFICATE_PATH=\/nonexistent\/doctor-cert\.pem for client [0-]+bb in tenant [0-]+aa\) and failed: .*ENOENT.*doctor-cert\.pem.*; DefaultAzureCredential stops at it and does not try the credentials after it/,
    );
    assert.match(
      hintOf(r.stdout, 'azure-key-vault: authentication'),
      /unset them if this job should use its managed identity/,
    );
    assert.ok(
      !r.stdout.includes('azure-key-vault: permission'),
      'the vault is not read without a credential',
    );
    noLeak(r, secrets());
  });

  test('--mi-timeout bounds the managed-identity probe', async () => {
    const silentEnv = env({ IDENTITY_ENDPOINT: silentUrl, IDENTITY_HEADER: 'silent-endpoint-header' });
    const before1 = held.length;
    const r1 = await doctor(['--mi-timeout', '1s'], silentEnv);
    assert.equal(r1.code, 1, r1.stdout);
    const d1 = check(
      r1.stdout,
      'azure-key-vault: authentication',
      'FAIL',
      /^no credential of the chain worked: /,
    );
    assert.match(
      d1,
      /ManagedIdentityCredential unavailable \(no answer from App Service endpoint IDENTITY_ENDPOINT=http:\/\/127\.0\.0\.1:\d+\/msi\/token \(system-assigned\) within 1000ms\)/,
    );
    assert.match(d1, /AzureCliCredential unavailable/);
    assert.match(hintOf(r1.stdout, 'azure-key-vault: authentication'), /raise --mi-timeout/);
    const r3 = await doctor(['--mi-timeout', '3s', '--format', 'json'], silentEnv);
    assert.equal(r3.code, 1);
    assert.match(
      jsonChecks(r3).checks.find((c) => c.name === 'azure-key-vault: authentication')!.detail,
      /within 3000ms/,
    );
    // Each run really probed the endpoint; the longer timeout made doctor wait about 2 s longer.
    // (The SDK does not abort its request: the socket stays open until the process exits.)
    assert.ok(held.length >= before1 + 2, JSON.stringify(held));
    assert.ok(r3.ms - r1.ms > 1500, `--mi-timeout 1s took ${r1.ms}ms, 3s took ${r3.ms}ms`);
    noLeak(r1, ['silent-endpoint-header']);
  });

  test('Key Vault 403: the permission model (role-based) and the missing role', async () => {
    const r = await doctor(
      ['--dry-run', mlflow.url],
      env({
        IDENTITY_ENDPOINT: strangerMi.env.IDENTITY_ENDPOINT,
        IDENTITY_HEADER: strangerMi.env.IDENTITY_HEADER,
      }),
    );
    assert.equal(r.code, 1, r.stdout);
    check(r.stdout, 'azure-key-vault: authentication', 'PASS', /^ManagedIdentityCredential won/);
    check(r.stdout, 'azure-key-vault: reachable', 'PASS');
    check(
      r.stdout,
      'azure-key-vault: permission',
      'FAIL',
      /^the vault is Custody's Key Vault door, which uses role-based access \(like the Azure RBAC model\): the identity lacks "secrets\/get" on ml-vault\/mlflow \(Forbidden\/ForbiddenByRbac\)/,
    );
    assert.match(
      hintOf(r.stdout, 'azure-key-vault: permission'),
      /secrets-user, the counterpart of "Key Vault Secrets User": `custody access assign <ENV\/IDENTITY> secrets-user ml-vault\/secrets\/mlflow --reason/,
    );
    check(r.stdout, 'mlflow: authenticated request', 'WARN', /no usable credential/);
    noLeak(r, secrets());
  });

  test('missing secret and a wrong version: 404 naming the secret', async () => {
    const r = await doctor([], env({ MLFLOW_AZURE_SECRET_NAME: 'no-such-secret' }));
    assert.equal(r.code, 1, r.stdout);
    check(
      r.stdout,
      'azure-key-vault: permission',
      'FAIL',
      /^no secret no-such-secret in https:\/\/ml-vault\.vault\.azure\.net \(SecretNotFound\)/,
    );
    assert.match(
      hintOf(r.stdout, 'azure-key-vault: permission'),
      /MLFLOW_AZURE_SECRET_NAME: `az keyvault secret list --vault-name ml-vault`/,
    );
    const version = '0123456789abcdef0123456789abcdef';
    const v = await doctor([], env({ MLFLOW_AZURE_SECRET_VERSION: version }));
    assert.equal(v.code, 1, v.stdout);
    check(
      v.stdout,
      'azure-key-vault: permission',
      'FAIL',
      new RegExp(`^no secret mlflow version ${version} in `),
    );
    assert.match(
      hintOf(v.stdout, 'azure-key-vault: permission'),
      /MLFLOW_AZURE_SECRET_NAME and MLFLOW_AZURE_SECRET_VERSION/,
    );
  });
});

describe('Key Vault 403 replies as Azure sends them', () => {
  const where = { vault: 'kv-ml', secret: 'mlflow' };
  test('RBAC model (ForbiddenByRbac): the missing role is Key Vault Secrets User, with the caller', () => {
    const { detail, hint } = keyVaultForbidden(
      {
        code: 'Forbidden',
        inner: 'ForbiddenByRbac',
        message:
          "Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\nCaller: appid=11111111-2222-3333-4444-555555555555;oid=aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee;iss=https://sts.windows.net/t/\r\nAction: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'\r\nResource: '/subscriptions/s/resourcegroups/rg/providers/microsoft.keyvault/vaults/kv-ml/secrets/mlflow'\r\nAssignment: (not found)\r\nVault: kv-ml;location=westeurope\r\n",
      },
      where,
    );
    assert.match(
      detail,
      /Azure RBAC permission model .* Microsoft\.KeyVault\/vaults\/secrets\/getSecret\/action \(Forbidden\/ForbiddenByRbac\)/,
    );
    assert.match(
      hint,
      /"Key Vault Secrets User" .*--assignee aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee --scope <vault resource id>\/secrets\/mlflow/,
    );
  });

  test('access-policy model (AccessDenied): the missing secret permission, with the object id', () => {
    const { detail, hint } = keyVaultForbidden(
      {
        code: 'Forbidden',
        inner: 'AccessDenied',
        message:
          "The user, group or application 'appid=11111111-2222-3333-4444-555555555555;oid=aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee;iss=https://sts.windows.net/t/' does not have secrets get permission on key vault 'kv-ml;location=westeurope'. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287",
      },
      where,
    );
    assert.match(
      detail,
      /access-policy permission model .* secret "get" permission \(Forbidden\/AccessDenied\)/,
    );
    assert.match(
      hint,
      /az keyvault set-policy --name kv-ml --object-id aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee --secret-permissions get/,
    );
  });

  test('firewall and disabled secret are not permission problems', () => {
    const fw = keyVaultForbidden(
      {
        code: 'Forbidden',
        inner: 'ForbiddenByFirewall',
        message:
          'Client address is not authorized and caller is not a trusted service.\r\nClient address: 203.0.113.7',
      },
      where,
    );
    assert.match(fw.detail, /network rules refuse this client/);
    assert.match(fw.hint, /firewall/);
    const off = keyVaultForbidden(
      {
        code: 'Forbidden',
        inner: 'SecretDisabled',
        message: 'Operation get is not allowed on a disabled secret.',
      },
      where,
    );
    assert.match(off.hint, /enable the version/);
  });
});
