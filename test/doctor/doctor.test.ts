import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { runCli } from '../support/broker-process.js';
import { type MlflowServer, mlflowRequest, startMlflow } from '../support/mlflow.js';

let b: TestBroker;
let mlflow: MlflowServer;
let caFile: string;
const USER = 'doctor-user';
const PASSWORD = `pw-canary-${Math.random().toString(36).slice(2)}-x`;

async function ok(p: Promise<{ status: number; body: any }>, what: string): Promise<any> {
  const r = await p;
  assert.ok(r.status >= 200 && r.status < 300, `${what}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

function env(extra: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  return {
    MLFLOW_SECRETS_AUTH_ENABLE: 'custody',
    CUSTODY_ADDR: b.url,
    CUSTODY_CACERT: caFile,
    CUSTODY_TOKEN: b.rootToken,
    CUSTODY_MLFLOW_SECRET: 'dev/mlflow/cred',
    MLFLOW_CUSTODY_AUTH_MODE: 'basic',
    MLFLOW_SECRETS_ALLOWED_HOSTS: '127.0.0.1',
    ...extra,
  };
}

const doctor = (args: string[], extra: Record<string, string | undefined> = {}) =>
  runCli(['doctor', ...args], { env: env(extra), timeoutMs: 60_000 });

function line(stdout: string, name: string): string {
  const l = stdout.split('\n').find((x) => x.includes(` ${name} — `));
  assert.ok(l, `no "${name}" line in:\n${stdout}`);
  return l;
}

function noSecrets(r: { stdout: string; stderr: string }): void {
  for (const s of [PASSWORD, b.rootToken, Buffer.from(`${USER}:${PASSWORD}`).toString('base64')])
    assert.ok(!(r.stdout + r.stderr).includes(s), `output leaks a secret:\n${r.stdout}${r.stderr}`);
}

before(async () => {
  [b, mlflow] = await Promise.all([startTestBroker(), startMlflow()]);
  caFile = path.join(b.dataDir, 'doctor-ca.pem');
  await writeFile(caFile, b.ca);
  const admin = { username: mlflow.adminUser, password: mlflow.adminPassword };
  const created = await mlflowRequest(mlflow, '2.0/mlflow/users/create', {
    body: { username: USER, password: PASSWORD },
    auth: admin,
  });
  assert.equal(created.status, 200, created.text);
  await ok(b.call('POST', '/v1/envs', { body: { name: 'dev' } }), 'env');
  await ok(
    b.call('PUT', '/v1/secrets/dev/mlflow/cred', {
      body: { value: JSON.stringify({ username: USER, password: PASSWORD }) },
    }),
    'secret',
  );
  await ok(
    b.call('PUT', '/v1/secrets/dev/mlflow/wrong', {
      body: { value: JSON.stringify({ username: USER, password: 'not-the-password' }) },
    }),
    'wrong secret',
  );
});

after(async () => {
  await b?.stop();
  await mlflow?.stop();
});

describe('custody doctor', () => {
  test('all pass against a real MLflow server (basic auth from a Custody secret)', async () => {
    const r = await doctor(['--dry-run', mlflow.url, '--expect', '1h']);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.doesNotMatch(r.stdout, /^FAIL/m);
    for (const name of [
      'configuration',
      'custody: reachable',
      'custody: authentication',
      'custody: permission',
      'custody: secret format',
      'allowlist',
      'mlflow: authenticated request',
    ])
      assert.match(line(r.stdout, name), /^PASS /);
    noSecrets(r);
    const j = await doctor(['--dry-run', mlflow.url, '--format', 'json']);
    assert.equal(j.code, 0);
    const body = JSON.parse(j.stdout);
    assert.equal(body.ok, true);
    assert.ok(body.checks.every((c: any) => c.status !== 'FAIL'));
    noSecrets(j);
  });

  test('a credential too short to be masked: WARN (exit 0)', async () => {
    await ok(
      b.call('PUT', '/v1/secrets/dev/mlflow/short', { body: { value: '{"token":"t0k3n"}' } }),
      'short',
    );
    const r = await doctor(['--secret', 'dev/mlflow/short'], { MLFLOW_CUSTODY_AUTH_MODE: 'bearer' });
    assert.equal(r.code, 0, r.stdout);
    assert.match(line(r.stdout, 'custody: masking'), /^WARN .*shorter than 8 characters/);
    assert.ok(!r.stdout.includes('t0k3n'));
    const long = await doctor([]);
    assert.ok(!long.stdout.includes(' custody: masking — '), 'no warning for a long password');
  });

  test('wrong password: MLflow 401 is a FAIL, exit 1', async () => {
    const r = await doctor(['--dry-run', mlflow.url, '--secret', 'dev/mlflow/wrong']);
    assert.equal(r.code, 1, r.stdout);
    assert.match(line(r.stdout, 'mlflow: authenticated request'), /^FAIL .*401/);
    assert.match(r.stdout, /hint: .*update the secret/);
    assert.ok(!r.stdout.includes('not-the-password'));
    noSecrets(r);
  });

  test('invalid token: authentication FAIL with a hint', async () => {
    const r = await doctor(['--dry-run', mlflow.url], { CUSTODY_TOKEN: 'cst_notarealtoken123456' });
    assert.equal(r.code, 1, r.stdout);
    assert.match(line(r.stdout, 'custody: authentication'), /^FAIL /);
    assert.match(r.stdout, /hint: the token is expired, revoked or unknown/);
    assert.ok(!r.stdout.includes('notarealtoken'));
  });

  test('403 on the secret: FAIL naming the action', async () => {
    const child = await ok(
      b.call('POST', '/v1/auth/token/create', { body: { policies: ['root'], ttl: '1h' } }),
      'child',
    );
    const weak = await ok(
      b.call('POST', '/v1/auth/token/create', { token: child.token, body: { ttl: 600 } }),
      'weak',
    );
    const r = await doctor(['--dry-run', mlflow.url], { CUSTODY_TOKEN: weak.token });
    assert.equal(r.code, 1, r.stdout);
    assert.match(line(r.stdout, 'custody: authentication'), /^PASS /);
    assert.match(line(r.stdout, 'custody: permission'), /^FAIL /);
    assert.match(r.stdout, /hint: the caller lacks the "secrets\/[a-z-]+" action/);
    assert.ok(!r.stdout.includes(weak.token));
  });

  test('disallowed host and plain http to a remote host: allowlist FAIL', async () => {
    const r = await doctor(['--dry-run', 'https://mlflow.example.com.evil.test']);
    assert.equal(r.code, 1, r.stdout);
    assert.match(line(r.stdout, 'allowlist'), /^FAIL .*matches none/);
    const h = await doctor(['--dry-run', 'http://mlflow.example.com'], {
      MLFLOW_SECRETS_ALLOWED_HOSTS: '*.example.com',
    });
    assert.equal(h.code, 1);
    assert.match(line(h.stdout, 'allowlist'), /^FAIL .*plain http/);
  });

  test('token lifetime shorter than --expect: FAIL', async () => {
    const short = await ok(
      b.call('POST', '/v1/auth/token/create', { body: { policies: ['root'], ttl: '1h', max_ttl: '2h' } }),
      'short',
    );
    const r = await doctor(['--expect', '36h'], { CUSTODY_TOKEN: short.token });
    assert.equal(r.code, 1, r.stdout);
    assert.match(line(r.stdout, 'custody: token lifetime'), /^FAIL /);
  });

  test('unreachable broker: FAIL with a hint; untrusted TLS: hint names CUSTODY_CACERT', async () => {
    const r = await doctor([], { CUSTODY_ADDR: 'https://127.0.0.1:1' });
    assert.equal(r.code, 1, r.stdout);
    assert.match(line(r.stdout, 'custody: reachable'), /^FAIL .*refused/);
    assert.match(r.stdout, /hint: is the server running/);
    const t = await doctor([], { CUSTODY_CACERT: undefined });
    assert.equal(t.code, 1, t.stdout);
    assert.match(line(t.stdout, 'custody: reachable'), /^FAIL .*TLS/);
    assert.match(t.stdout, /hint: set CUSTODY_CACERT/);
  });

  test('configuration errors are listed', async () => {
    const r = await doctor([], { CUSTODY_MLFLOW_SECRET: undefined, MLFLOW_CUSTODY_TTL_SEC: 'abc' });
    assert.equal(r.code, 1);
    assert.match(line(r.stdout, 'configuration'), /^FAIL .*MLFLOW_CUSTODY_TTL_SEC.*CUSTODY_MLFLOW_SECRET/);
  });
});

describe('custody info', () => {
  test('prints the resolved configuration with no secret value (canary)', async () => {
    const canary = 'cst_canaryTOKENvalue0123456789';
    const extra = {
      CUSTODY_TOKEN: canary,
      VAULT_TOKEN: 'hvs.canary-vault-token-value',
      AZURE_CLIENT_SECRET: 'azure-canary-secret-value',
      AWS_SECRET_ACCESS_KEY: 'aws-canary-secret-access-key',
    };
    for (const format of ['table', 'json']) {
      const r = await runCli(['info', '--format', format], { env: env(extra) });
      assert.equal(r.code, 0, r.stderr);
      for (const v of Object.values(extra))
        assert.ok(!(r.stdout + r.stderr).includes(v), `leak: ${r.stdout}`);
      assert.match(r.stdout, /127\.0\.0\.1/);
      if (format === 'json') {
        const j = JSON.parse(r.stdout);
        assert.deepEqual(j.providers, ['custody']);
        assert.equal(j.broker.token, '[redacted]');
        assert.equal(j.vault.secret_id, null);
        assert.equal(j.auth_header_name, 'Authorization');
        assert.deepEqual(j.allowed_hosts, ['127.0.0.1']);
        assert.match(j.version, /^\d+\.\d+\.\d+/);
        assert.equal(j.cache.entries, 0);
      }
    }
  });
});
