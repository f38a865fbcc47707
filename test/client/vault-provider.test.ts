import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type ProviderError, VaultProvider } from '../../src/client/index.js';
import { startTestBroker, type TestBroker } from '../support/broker.js';

/** The Vault provider against Custody's Vault-compatible door (`VAULT_ADDR=<broker>/vault`). */
let b: TestBroker;
let vaultAddr: string;
let approle: { roleId: string; secretId: string };

async function ok(p: Promise<{ status: number; body: any }>, what: string): Promise<any> {
  const r = await p;
  assert.ok(r.status === 200 || r.status === 204, `${what}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

before(async () => {
  b = await startTestBroker();
  vaultAddr = `${b.url}/vault`;
  for (const name of ['dev', 'prod']) await ok(b.call('POST', '/v1/envs', { body: { name } }), 'env');
  // KV v2 writes through the door (the `secret/` mount is the default environment, dev).
  await ok(b.call('POST', '/vault/v1/secret/data/mlflow/auth', { body: { data: { token: 'tok-1' } } }), 'w1');
  await ok(b.call('POST', '/vault/v1/secret/data/mlflow/auth', { body: { data: { token: 'tok-2' } } }), 'w2');
  await ok(
    b.call('POST', '/vault/v1/prod/data/db', { body: { data: { username: 'svc', password: 'pw-9' } } }),
    'w3',
  );
  await ok(b.call('PUT', '/v1/secrets/dev/plain', { body: { value: 'native-string' } }), 'native');
  // AppRole in dev (the door's `auth/approle/login`), allowed to read dev secrets.
  await ok(b.call('POST', '/v1/auth/methods/dev', { body: { type: 'approle' } }), 'approle');
  await ok(
    b.call('PUT', '/v1/auth/methods/dev/approle/roles/job', {
      body: { token_ttl: '2s', token_max_ttl: '1h' },
    }),
    'role',
  );
  const roleId = (await ok(b.call('GET', '/v1/auth/methods/dev/approle/roles/job/role-id'), 'rid')).role_id;
  const sid = await ok(
    b.call('POST', '/v1/auth/methods/dev/approle/roles/job/secret-id', { body: {} }),
    'sid',
  );
  approle = { roleId, secretId: sid.secret_id };
  const login = await ok(
    b.call('POST', '/v1/auth/login/dev/approle/job', {
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
        scope: 'dev',
        reason: 'vault provider test',
      },
    }),
    'assign',
  );
});
after(() => b?.stop());

test('token auth: KV v2 detected via sys/mounts, any mount, versions, #field', async () => {
  const p = new VaultProvider({ addr: vaultAddr, token: b.rootToken, caCert: b.ca });
  try {
    assert.deepEqual(JSON.parse(await p.get('secret/mlflow/auth')), { token: 'tok-2' });
    assert.equal(await p.get('secret/mlflow/auth#token'), 'tok-2');
    assert.equal(await p.get('secret/mlflow/auth#token', { version: '1' }), 'tok-1');
    assert.equal(await p.get('mlflow/auth#token'), 'tok-2', 'the default mount');
    assert.equal(await p.get('prod/db#password'), 'pw-9', 'another mount (environment)');
    assert.equal(await p.get('secret/plain'), 'native-string', '{"value": …} alone reads as the string');
    await assert.rejects(p.get('secret/missing'), (e: ProviderError) => e.status === 404);
    await assert.rejects(p.get('secret/mlflow/auth#nope'), /no field "nope"/);
  } finally {
    await p.close();
  }
});

test('AppRole login (no sys/mounts permission: v2 tried first), token renewal, bad credentials', async () => {
  const p = new VaultProvider({ addr: vaultAddr, approle, caCert: b.ca });
  try {
    assert.equal(await p.get('secret/mlflow/auth#token'), 'tok-2');
    // A mount named in the path, found through sys/internal/ui/mounts (this token may not list
    // sys/mounts): `dev/plain`, not `secret/dev/plain`.
    assert.equal(await p.get('dev/plain'), 'native-string');
    assert.ok((await p.renewToken()) > 0, 'renew-self works');
    // The 2s token is renewed (or replaced) in the background: reads keep working past its TTL.
    await new Promise((r) => setTimeout(r, 2600));
    assert.equal(await p.get('secret/mlflow/auth#token', { version: '1' }), 'tok-1');
    await assert.rejects(
      p.get('prod/db#password'),
      (e: ProviderError) => e.status === 404 || e.status === 403,
    );
  } finally {
    await p.close();
  }
  const bad = new VaultProvider({
    addr: vaultAddr,
    approle: { roleId: approle.roleId, secretId: 'sid_wrong' },
    caCert: b.ca,
  });
  await assert.rejects(bad.get('secret/mlflow/auth'), (e: Error) => {
    assert.match(e.message, /login/);
    assert.ok(!e.message.includes('sid_wrong'));
    return true;
  });
  await bad.close();
  assert.throws(() => new VaultProvider({ addr: vaultAddr }), /VAULT_TOKEN/);
});

test('X-Vault-Namespace is sent (the Custody door refuses namespaces with 400)', async () => {
  const p = new VaultProvider({
    addr: vaultAddr,
    token: b.rootToken,
    caCert: b.ca,
    namespace: 'team-a',
    kvVersion: 2,
  });
  try {
    await assert.rejects(p.get('secret/mlflow/auth'), (e: ProviderError) => e.status === 400);
  } finally {
    await p.close();
  }
});
