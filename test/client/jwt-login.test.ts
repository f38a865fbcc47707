import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { CustodyClient, VaultProvider } from '../../src/client/index.js';
import { type AuthFixture, authFixture, jwtMethod, ok, putRole } from '../auth/helpers.js';

/** Workload-identity logins of the client: JWT file (re-read when it rotates), JWT variable, Kubernetes token. */
let f: AuthFixture;
let dir: string;

before(async () => {
  f = await authFixture(['prod']);
  dir = await mkdtemp(path.join(tmpdir(), 'custody-client-jwt-'));
  await jwtMethod(f, 'prod', 'oidc', { audiences: ['custody'] });
  await putRole(f, 'prod', 'oidc', 'job', { user_claim: 'sub', token_ttl: '10m', token_max_ttl: '1h' });
  await ok(f.b.call('PUT', '/v1/secrets/prod/app/key', { body: { value: 'k-value' } }));
  // Create the identity with one login, then let it read prod/app.
  const jwt = await f.issuer.sign({ sub: 'trainer', aud: 'custody' });
  const l = await ok(f.b.call('POST', '/v1/auth/login/prod/oidc/job', { body: { jwt }, token: null }));
  await ok(
    f.b.call('POST', '/v1/access/assignments', {
      body: { principal: l.identity.id, role: 'secrets-user', scope: 'prod/secrets/app', reason: 'test' },
    }),
  );
});
after(async () => {
  await f?.stop();
  await rm(dir, { recursive: true, force: true });
});

test('jwtFile: login, and a rotated file is re-read on the next login', async () => {
  const file = path.join(dir, 'token');
  await writeFile(file, `${await f.issuer.sign({ sub: 'trainer', aud: 'custody' })}\n`);
  const c = new CustodyClient({
    addr: f.b.url,
    caCert: f.b.ca,
    env: {},
    login: { env: 'prod', method: 'oidc', role: 'job', jwtFile: file },
  });
  try {
    assert.equal(await c.getSecret('prod/app/key'), 'k-value');
    await writeFile(file, 'not-a-jwt');
    await assert.rejects(c.login(), (e: Error & { status?: number }) => e.status === 400 || e.status === 401);
    await writeFile(file, await f.issuer.sign({ sub: 'trainer', aud: 'custody' }));
    await c.login();
    assert.equal(await c.getSecret('prod/app/key', { noCache: true }), 'k-value');
  } finally {
    await c.close();
  }
});

test('jwtEnv and the Kubernetes service-account token path', async () => {
  process.env.CUSTODY_TEST_JWT = await f.issuer.sign({ sub: 'trainer', aud: 'custody' });
  const sa = path.join(dir, 'sa-token');
  await writeFile(sa, await f.issuer.sign({ sub: 'trainer', aud: 'custody' }));
  for (const login of [{ jwtEnv: 'CUSTODY_TEST_JWT' }, { kubernetes: sa }]) {
    const c = new CustodyClient({
      addr: f.b.url,
      caCert: f.b.ca,
      env: {},
      login: { env: 'prod', method: 'oidc', role: 'job', ...login },
    });
    try {
      assert.equal(await c.getSecret('prod/app/key'), 'k-value');
    } finally {
      await c.close();
    }
  }
  delete process.env.CUSTODY_TEST_JWT;
});

test('Vault provider JWT login through the Vault door (auth/<env>/<method>/login)', async () => {
  const p = new VaultProvider({
    addr: `${f.b.url}/vault`,
    caCert: f.b.ca,
    jwt: { role: 'job', jwt: await f.issuer.sign({ sub: 'trainer', aud: 'custody' }), mount: 'prod/oidc' },
    // A workload token cannot read sys/mounts: name the default KV mount (environment prod).
    mount: 'prod',
  });
  try {
    assert.equal(await p.get('prod/app/key'), 'k-value');
    assert.equal(await p.get('app/key'), 'k-value');
  } finally {
    await p.close();
  }
});
