import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { type MlflowServer, mlflowRequest, startMlflow } from '../support/mlflow.js';
import { check, doctor, hintOf, jsonChecks, noLeak, ok } from './helpers.js';

/**
 * `custody doctor` with the Vault provider (MLFLOW_SECRETS_AUTH_ENABLE=vault) against Custody's
 * Vault-compatible door (`VAULT_ADDR=<broker>/vault`), ending in a real authenticated MLflow request.
 */
let b: TestBroker;
let mlflow: MlflowServer;
let caFile: string;
let approle: { roleId: string; secretId: string };
let weakToken: string;
const USER = 'vault-doctor';
const PASSWORD = `vault-canary-${Math.random().toString(36).slice(2)}-pw`;

const env = (extra: Record<string, string | undefined> = {}) => ({
  MLFLOW_SECRETS_AUTH_ENABLE: 'vault',
  VAULT_ADDR: `${b.url}/vault`,
  VAULT_CACERT: caFile,
  VAULT_TOKEN: b.rootToken,
  MLFLOW_VAULT_SECRET_PATH: 'secret/mlflow/doctor',
  MLFLOW_VAULT_AUTH_MODE: 'basic',
  MLFLOW_SECRETS_ALLOWED_HOSTS: '127.0.0.1',
  ...extra,
});
const secrets = () => [PASSWORD, b.rootToken, approle.secretId, weakToken];

before(async () => {
  [b, mlflow] = await Promise.all([startTestBroker(), startMlflow()]);
  caFile = path.join(b.dataDir, 'vault-ca.pem');
  await writeFile(caFile, b.ca);
  const created = await mlflowRequest(mlflow, '2.0/mlflow/users/create', {
    body: { username: USER, password: PASSWORD },
    auth: { username: mlflow.adminUser, password: mlflow.adminPassword },
  });
  assert.equal(created.status, 200, created.text);
  await ok(b.call('POST', '/v1/envs', { body: { name: 'dev' } }), 'env');
  // KV v2 through the door (`secret/` is the default environment, dev).
  await ok(
    b.call('POST', '/vault/v1/secret/data/mlflow/doctor', {
      body: { data: { username: USER, password: PASSWORD } },
    }),
    'kv write',
  );
  await ok(b.call('POST', '/v1/auth/methods/dev', { body: { type: 'approle' } }), 'approle');
  await ok(
    b.call('PUT', '/v1/auth/methods/dev/approle/roles/trainer', {
      body: { token_ttl: '1h', token_max_ttl: '8h' },
    }),
    'role',
  );
  const roleId = (await ok(b.call('GET', '/v1/auth/methods/dev/approle/roles/trainer/role-id'), 'rid'))
    .role_id;
  const sid = await ok(
    b.call('POST', '/v1/auth/methods/dev/approle/roles/trainer/secret-id', { body: {} }),
    'sid',
  );
  approle = { roleId, secretId: sid.secret_id };
  const login = await ok(
    b.call('POST', '/v1/auth/login/dev/approle/trainer', {
      body: { role_id: roleId, secret_id: sid.secret_id },
      token: null,
    }),
    'login',
  );
  await ok(
    b.call('POST', '/v1/access/assignments', {
      body: {
        principal: login.identity.id,
        role: 'secrets-user',
        scope: 'dev/secrets/mlflow',
        reason: 'doctor test',
      },
    }),
    'assign',
  );
  // A valid token that may read nothing.
  const child = await ok(
    b.call('POST', '/v1/auth/token/create', { body: { policies: ['root'], ttl: '1h' } }),
    'child',
  );
  weakToken = (
    await ok(b.call('POST', '/v1/auth/token/create', { token: child.token, body: { ttl: 600 } }), 'weak')
  ).token;
});

after(async () => {
  await b?.stop();
  await mlflow?.stop();
});

describe('custody doctor: Vault provider', () => {
  test('token: all PASS, ending in an authenticated MLflow request; JSON output', async () => {
    const r = await doctor(['--dry-run', mlflow.url, '--expect', '2h'], env());
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    check(r.stdout, 'configuration', 'PASS', /providers in order: vault$/);
    check(r.stdout, 'vault: reachable', 'PASS', /\/vault answers \(Vault API/);
    check(r.stdout, 'vault: authentication', 'PASS', /token valid \(root; policies: root/);
    check(r.stdout, 'vault: permission', 'PASS', /may read secret\/mlflow\/doctor/);
    check(r.stdout, 'vault: secret format', 'PASS', /username \+ password \(mode: basic\)/);
    check(r.stdout, 'vault: token lifetime', 'PASS', /never expires/);
    check(r.stdout, 'allowlist', 'PASS');
    check(r.stdout, 'mlflow: authenticated request', 'PASS', /→ 200 with the vault credential/);
    assert.doesNotMatch(r.stdout, /^(FAIL|WARN)/m);
    noLeak(r, secrets());

    const j = await doctor(['--dry-run', mlflow.url, '--format', 'json'], env());
    assert.equal(j.code, 0, j.stdout);
    const body = jsonChecks(j);
    assert.equal(body.ok, true);
    assert.deepEqual(
      body.checks.map((c) => c.name),
      [
        'configuration',
        'vault: reachable',
        'vault: authentication',
        'vault: permission',
        'vault: secret format',
        'allowlist',
        'mlflow: authenticated request',
      ],
    );
    noLeak(j, secrets());
  });

  test('AppRole: the login is checked, the secret id never printed', async () => {
    const r = await doctor(
      ['--dry-run', mlflow.url, '--expect', '36h'],
      env({
        VAULT_TOKEN: undefined,
        VAULT_ROLE_ID: approle.roleId,
        VAULT_SECRET_ID: approle.secretId,
      }),
    );
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    check(r.stdout, 'vault: authentication', 'PASS', /^AppRole login ok \(policies: .*token ttl 60m\)/);
    check(r.stdout, 'vault: token lifetime', 'PASS', /logs in again with AppRole/);
    check(r.stdout, 'mlflow: authenticated request', 'PASS');
    noLeak(r, secrets());

    const bad = await doctor(
      [],
      env({
        VAULT_TOKEN: undefined,
        VAULT_ROLE_ID: approle.roleId,
        VAULT_SECRET_ID: 'sid_canary-wrong-secret-id',
      }),
    );
    assert.equal(bad.code, 1, bad.stdout);
    check(bad.stdout, 'vault: authentication', 'FAIL', /^AppRole login refused: HTTP 4\d\d/);
    assert.match(hintOf(bad.stdout, 'vault: authentication'), /secret id may be expired, used up/);
    noLeak(bad, ['canary-wrong-secret-id', ...secrets()]);
  });

  test('bad token: the door answers 403, reported as authentication (not permission) with a hint', async () => {
    const bogus = 'cst_canaryBogusVaultToken0123456789';
    const r = await doctor(['--dry-run', mlflow.url], env({ VAULT_TOKEN: bogus }));
    assert.equal(r.code, 1, r.stdout);
    check(r.stdout, 'vault: reachable', 'PASS');
    check(
      r.stdout,
      'vault: authentication',
      'FAIL',
      /^VAULT_TOKEN was refused: HTTP 403 \(permission denied; The token is unknown, expired or revoked\)/,
    );
    assert.match(
      hintOf(r.stdout, 'vault: authentication'),
      /VAULT_TOKEN is expired, revoked or not a token of this server/,
    );
    assert.ok(!r.stdout.includes('vault: permission'), 'no permission check after a refused token');
    check(r.stdout, 'mlflow: authenticated request', 'WARN', /no usable credential/);
    noLeak(r, [bogus, ...secrets()]);

    const j = await doctor(['--format', 'json'], env({ VAULT_TOKEN: bogus }));
    assert.equal(j.code, 1);
    const body = jsonChecks(j);
    assert.equal(body.ok, false);
    const auth = body.checks.find((c) => c.name === 'vault: authentication')!;
    assert.equal(auth.status, 'FAIL');
    assert.match(auth.hint!, /log in again/);
    noLeak(j, [bogus]);
  });

  test('a valid token whose policies deny the read: permission FAIL naming the policy path', async () => {
    const r = await doctor([], env({ VAULT_TOKEN: weakToken }));
    assert.equal(r.code, 1, r.stdout);
    check(r.stdout, 'vault: authentication', 'PASS', /^token valid/);
    check(
      r.stdout,
      'vault: permission',
      'FAIL',
      /^the token may not read secret\/mlflow\/doctor: HTTP 403 \(permission denied; Not allowed to secrets\/get on dev\/mlflow\/doctor/,
    );
    const hint = hintOf(r.stdout, 'vault: permission');
    assert.match(hint, /Custody's Vault door, where access comes from roles, not Vault policies/);
    assert.match(hint, /lacks the "secrets\/get" action on dev\/mlflow\/doctor/);
    assert.match(
      hint,
      /`custody access assign <ENV\/IDENTITY> secrets-user dev\/secrets\/mlflow\/doctor --reason/,
    );
    noLeak(r, secrets());
  });

  test('missing path: 404 with the path and how to list what exists', async () => {
    const r = await doctor([], env({ MLFLOW_VAULT_SECRET_PATH: 'secret/mlflow/missing' }));
    assert.equal(r.code, 1, r.stdout);
    check(r.stdout, 'vault: permission', 'FAIL', /^nothing at secret\/mlflow\/missing \(HTTP 404\)/);
    assert.match(
      hintOf(r.stdout, 'vault: permission'),
      /MLFLOW_VAULT_SECRET_PATH .*`vault kv list secret\/mlflow`/,
    );
    const f = await doctor([], env({ MLFLOW_VAULT_SECRET_PATH: 'secret/mlflow/doctor#nope' }));
    assert.equal(f.code, 1);
    check(f.stdout, 'vault: permission', 'FAIL', /no field "nope"/);
    assert.match(hintOf(f.stdout, 'vault: permission'), /#field/);
    noLeak(f, secrets());
  });

  test("VAULT_ADDR at the broker's native API (no /vault): reachable FAIL saying where the door is", async () => {
    const r = await doctor([], env({ VAULT_ADDR: b.url }));
    assert.equal(r.code, 1, r.stdout);
    check(r.stdout, 'vault: reachable', 'FAIL', /native API, not a Vault API/);
    assert.ok(hintOf(r.stdout, 'vault: reachable').includes(`${b.url}/vault`));
  });
});
