import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { type AuthFixture, authFixture, jwtMethod, login, ok, putRole } from './helpers.js';

let f: AuthFixture;
before(async () => {
  f = await authFixture(['prod', 'dev']);
});
after(() => f.stop());

const create = (env: string, body: Record<string, unknown>, token?: string) =>
  f.b.call('POST', `/v1/auth/methods/${env}`, { body, token });
async function refused(p: Promise<{ status: number; body: any }>, status: number, code: string) {
  const r = await p;
  assert.equal(r.status, status, JSON.stringify(r.body));
  assert.equal(r.body.error.code, code, JSON.stringify(r.body));
  return r.body.error;
}

test('create, list, read and delete methods; names default to the type', async () => {
  const m = await jwtMethod(f, 'prod', 'oidc', { audiences: ['custody'] });
  assert.equal(m.type, 'jwt');
  assert.equal(m.config.discovery, true);
  assert.equal(m.config.leeway_seconds, 60);
  assert.deepEqual(m.config.algorithms, [
    'RS256',
    'RS384',
    'RS512',
    'PS256',
    'PS384',
    'PS512',
    'ES256',
    'ES384',
    'ES512',
    'EdDSA',
  ]);
  const a = await ok(create('prod', { type: 'approle' }));
  assert.equal(a.name, 'approle');
  assert.deepEqual(a.config, {});
  const list = await ok(f.b.call('GET', '/v1/auth/methods/prod'));
  assert.deepEqual(
    list.items.map((i: any) => `${i.name}:${i.type}`),
    ['approle:approle', 'oidc:jwt'],
  );
  assert.equal((await ok(f.b.call('GET', '/v1/auth/methods/prod/oidc'))).config.issuer, f.issuer.url);
  assert.deepEqual((await ok(f.b.call('GET', '/v1/auth/methods/dev'))).items, []);

  await refused(create('prod', { type: 'approle' }), 409, 'AuthMethodExists');
  await refused(create('staging', { type: 'approle' }), 404, 'EnvironmentNotFound');
  await refused(create('prod', { type: 'ldap' }), 400, 'InvalidRequest');
  await refused(create('prod', { type: 'approle', name: 'Bad Name' }), 400, 'InvalidRequest');
  await refused(
    create('prod', { type: 'approle', name: 'x', config: { issuer: 'y' } }),
    400,
    'InvalidConfig',
  );

  await putRole(f, 'prod', 'oidc', 'r1', {});
  await ok(f.b.call('DELETE', '/v1/auth/methods/prod/oidc'));
  await refused(f.b.call('GET', '/v1/auth/methods/prod/oidc'), 404, 'AuthMethodNotFound');
  await refused(f.b.call('DELETE', '/v1/auth/methods/prod/oidc'), 404, 'AuthMethodNotFound');
  await jwtMethod(f, 'prod', 'oidc', { audiences: ['custody'] });
  await refused(f.b.call('GET', '/v1/auth/methods/prod/oidc/roles/r1'), 404, 'LoginRoleNotFound');
});

test('the key source is tested when configured: unreachable or untrusted → 400 JwksUnreachable', async () => {
  const untrusted = await refused(
    create('prod', { type: 'jwt', name: 'no-ca', config: { issuer: f.issuer.url, audiences: ['x'] } }),
    400,
    'JwksUnreachable',
  );
  assert.match(untrusted.hint, /ca_pem/);
  await refused(
    create('prod', {
      type: 'jwt',
      name: 'closed',
      config: { jwks_url: 'https://127.0.0.1:1/jwks', ca_pem: f.issuer.caPem },
    }),
    400,
    'JwksUnreachable',
  );
  await refused(
    create('prod', {
      type: 'jwt',
      name: 'not-found',
      config: { jwks_url: `${f.issuer.url}/nothing`, ca_pem: f.issuer.caPem },
    }),
    400,
    'JwksUnreachable',
  );
  const mismatch = await refused(
    create('prod', {
      type: 'jwt',
      name: 'slash',
      config: { issuer: `${f.issuer.url}/`, ca_pem: f.issuer.caPem },
    }),
    400,
    'JwksUnreachable',
  );
  assert.match(mismatch.hint, /different issuer/);
  await refused(f.b.call('GET', '/v1/auth/methods/prod/closed'), 404, 'AuthMethodNotFound');
});

test('configuration is validated: one key source, https, algorithms, keys, presets', async () => {
  const c = (config: Record<string, unknown>) => create('prod', { type: 'jwt', name: 'bad', config });
  await refused(c({ audiences: ['x'] }), 400, 'InvalidKeySource');
  await refused(
    c({ issuer: f.issuer.url, discovery: true, jwks_url: f.issuer.jwksUrl }),
    400,
    'InvalidKeySource',
  );
  await refused(c({ jwks_url: f.issuer.jwksUrl, public_keys: ['x'] }), 400, 'InvalidKeySource');
  await refused(c({ issuer: f.issuer.url, discovery: true, public_keys: ['x'] }), 400, 'InvalidKeySource');
  await refused(c({ discovery: true }), 400, 'InvalidKeySource');
  await refused(c({ jwks_url: 'http://127.0.0.1/jwks' }), 400, 'InvalidUrl');
  await refused(c({ issuer: 'http://issuer.example' }), 400, 'InvalidUrl');
  await refused(c({ jwks_url: f.issuer.jwksUrl, algorithms: ['HS256'] }), 400, 'InvalidAlgorithm');
  await refused(c({ jwks_url: f.issuer.jwksUrl, algorithms: ['RS1'] }), 400, 'InvalidAlgorithm');
  await refused(c({ jwks_url: f.issuer.jwksUrl, algorithms: [] }), 400, 'InvalidAlgorithm');
  await refused(c({ jwks_url: f.issuer.jwksUrl, leeway_seconds: 301 }), 400, 'InvalidRequest');
  await refused(c({ jwks_url: f.issuer.jwksUrl, ca_pem: 'not a pem' }), 400, 'InvalidCaPem');
  await refused(c({ jwks_url: f.issuer.jwksUrl, extra: 1 }), 400, 'InvalidRequest');
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const privatePem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  const err = await refused(c({ public_keys: [privatePem] }), 400, 'InvalidPublicKey');
  assert.ok(!JSON.stringify(err).includes('PRIVATE'), 'the key is not echoed');
  await refused(
    c({ public_keys: ['-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----'] }),
    400,
    'InvalidPublicKey',
  );
  const small = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({
    type: 'spki',
    format: 'pem',
  });
  await refused(c({ public_keys: [small] }), 400, 'InvalidPublicKey');
  await refused(c({ preset: 'github', issuer: f.issuer.url }), 400, 'PresetMismatch');
  await refused(c({ preset: 'azure', issuer: f.issuer.url, ca_pem: f.issuer.caPem }), 400, 'InvalidIssuer');
  await refused(c({ preset: 'nope', jwks_url: f.issuer.jwksUrl }), 400, 'UnknownPreset');
});

test('presets fill role defaults', async () => {
  const okta = await jwtMethod(f, 'prod', 'okta', { preset: 'okta', audiences: ['custody'] });
  assert.equal(okta.config.preset, 'okta');
  assert.deepEqual(okta.config.algorithms, ['RS256']);
  const role = await putRole(f, 'prod', 'okta', 'people', {});
  assert.equal(role.config.identity_kind, 'user');
  assert.equal(role.config.groups_claim, 'groups');
  assert.equal(role.config.user_claim, 'sub');
  const r = await ok(
    login(f, 'prod', 'okta', 'people', {
      jwt: await f.issuer.sign({ sub: 'carol', aud: 'custody', groups: ['ml'] }),
    }),
  );
  assert.equal(r.identity.kind, 'user');
  const es = await login(f, 'prod', 'okta', 'people', {
    jwt: await f.issuer.sign({ sub: 'carol', aud: 'custody' }, { alg: 'ES256' }),
  });
  assert.equal(es.status, 401, 'the preset narrows the algorithms');
  assert.match(es.body.error.message, /algorithm/);

  const k8s = await ok(
    create('prod', {
      type: 'jwt',
      name: 'k8s',
      config: {
        preset: 'kubernetes',
        issuer: f.issuer.url,
        public_keys: [await f.issuer.publicKeyPem('ES256')],
      },
    }),
  );
  assert.deepEqual(k8s.config.algorithms, ['RS256', 'ES256']);
  await refused(
    f.b.call('PUT', '/v1/auth/methods/prod/k8s/roles/pods', { body: {} }),
    400,
    'AudienceRequired',
  );
  const pods = await putRole(f, 'prod', 'k8s', 'pods', {
    bound_audiences: ['custody'],
    bound_claims: { 'kubernetes.io/namespace': 'ml-*' },
    claim_mappings: { 'kubernetes.io/serviceaccount/name': 'service_account' },
  });
  assert.equal(pods.config.identity_kind, 'workload');
  assert.deepEqual(pods.config.bound_claims, { 'kubernetes.io/namespace': ['ml-*'] });
});

test('role management: validation, list, read, delete, role-id only for AppRole', async () => {
  await jwtMethod(f, 'dev', 'oidc', { audiences: ['custody'] });
  const p = (role: string, body: Record<string, unknown>) =>
    f.b.call('PUT', `/v1/auth/methods/dev/oidc/roles/${role}`, { body });
  await refused(p('r', { secret_id_ttl: '1h' }), 400, 'InvalidConfig');
  await refused(p('r', { bound_claims: { 'a//b': 'x' } }), 400, 'InvalidClaimPath');
  await refused(p('r', { bound_claims: { a: [] } }), 400, 'InvalidConfig');
  await refused(p('r', { user_claim: '' }), 400, 'InvalidClaimPath');
  await refused(p('r', { token_ttl: '2h', token_max_ttl: '1h' }), 400, 'InvalidTtl');
  await refused(p('r', { token_ttl: 'soon' }), 400, 'InvalidDuration');
  await refused(p('r', { claim_mappings: { a: 'k', b: 'k' } }), 400, 'InvalidConfig');
  await refused(p('r', { identity_kind: 'robot' }), 400, 'InvalidRequest');
  await refused(
    f.b.call('PUT', '/v1/auth/methods/dev/nope/roles/r', { body: {} }),
    404,
    'AuthMethodNotFound',
  );

  await putRole(f, 'dev', 'oidc', 'b-role', { token_ttl: '30m', bound_subject: 'svc' });
  await putRole(f, 'dev', 'oidc', 'a-role', {});
  const list = await ok(f.b.call('GET', '/v1/auth/methods/dev/oidc/roles'));
  assert.deepEqual(
    list.items.map((r: any) => r.name),
    ['a-role', 'b-role'],
  );
  const one = await ok(f.b.call('GET', '/v1/auth/methods/dev/oidc/roles/b-role'));
  assert.equal(one.config.token_ttl, 1800);
  assert.equal(one.config.token_max_ttl, 28_800);
  assert.equal(one.config.bound_subject, 'svc');
  const wrongSub = await login(f, 'dev', 'oidc', 'b-role', {
    jwt: await f.issuer.sign({ sub: 'x', aud: 'custody' }),
  });
  assert.equal(wrongSub.status, 401);
  assert.match(wrongSub.body.error.message, /bound subject/);
  await refused(
    f.b.call('GET', '/v1/auth/methods/dev/oidc/roles/b-role/role-id'),
    400,
    'WrongAuthMethodType',
  );
  await refused(
    f.b.call('POST', '/v1/auth/methods/dev/oidc/roles/b-role/secret-id', { body: {} }),
    400,
    'WrongAuthMethodType',
  );
  await ok(f.b.call('DELETE', '/v1/auth/methods/dev/oidc/roles/b-role'));
  await refused(f.b.call('DELETE', '/v1/auth/methods/dev/oidc/roles/b-role'), 404, 'LoginRoleNotFound');
});

test('auth/manage is authorized per environment by the pipeline', async () => {
  await putRole(f, 'prod', 'oidc', 'admin', { identity_kind: 'user' });
  await putRole(f, 'prod', 'oidc', 'job', {});
  const admin = await ok(
    login(f, 'prod', 'oidc', 'admin', { jwt: await f.issuer.sign({ sub: 'dana', aud: 'custody' }) }),
  );
  const job = await ok(
    login(f, 'prod', 'oidc', 'job', { jwt: await f.issuer.sign({ sub: 'train', aud: 'custody' }) }),
  );
  await refused(create('prod', { type: 'approle', name: 'mine' }, admin.token), 403, 'PermissionDenied');
  await ok(
    f.b.call('POST', '/v1/access/assignments', {
      body: {
        principal: admin.identity.id,
        role: 'administrator',
        scope: 'prod',
        reason: 'test: auth admin',
      },
    }),
  );
  await ok(create('prod', { type: 'approle', name: 'mine' }, admin.token));
  await ok(f.b.call('GET', '/v1/auth/methods/prod', { token: admin.token }));
  await refused(create('dev', { type: 'approle', name: 'mine' }, admin.token), 403, 'PermissionDenied');
  await refused(f.b.call('GET', '/v1/auth/methods/dev', { token: admin.token }), 403, 'PermissionDenied');
  await refused(f.b.call('GET', '/v1/auth/methods/prod', { token: job.token }), 403, 'PermissionDenied');
  await refused(f.b.call('GET', '/v1/auth/methods/prod', { token: null }), 401, 'MissingToken');
});

test('method configuration is encrypted at rest', async () => {
  const files = ['custody.db', 'custody.db-wal'].map((n) => path.join(f.b.dataDir, n));
  const raw = Buffer.concat(await Promise.all(files.map((p) => readFile(p).catch(() => Buffer.alloc(0)))));
  assert.ok(!raw.includes(Buffer.from(f.issuer.url)), 'the issuer URL is not stored in clear');
  assert.ok(!raw.includes(Buffer.from('BEGIN CERTIFICATE')), 'ca_pem is not stored in clear');
});
