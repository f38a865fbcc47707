import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type AuthFixture, authFixture, jwtMethod, login, ok, putRole } from './helpers.js';

let f: AuthFixture;
before(async () => {
  f = await authFixture(['prod']);
  await jwtMethod(f, 'prod', 'oidc', { audiences: ['custody'] });
});
after(() => f.stop());

const identityOf = (id: string) => ok(f.b.call('GET', `/v1/identities/${id}`), 'identity');

test('RS256, ES256 and EdDSA tokens log in through discovery', async () => {
  await putRole(f, 'prod', 'oidc', 'any-alg', {});
  for (const alg of ['RS256', 'ES256', 'EdDSA'] as const) {
    const jwt = await f.issuer.sign({ sub: `job-${alg}`, aud: 'custody' }, { alg });
    const r = await login(f, 'prod', 'oidc', 'any-alg', { jwt });
    assert.equal(r.status, 200, `${alg}: ${JSON.stringify(r.body)}`);
    assert.match(r.body.token, /^cst_/);
    assert.match(r.body.accessor, /^acc_/);
    assert.deepEqual(r.body.identity.name, `job-${alg}`);
    assert.equal(r.body.identity.kind, 'workload');
    assert.deepEqual(r.body.policies, []);
    assert.equal(r.body.env, 'prod');
    const self = await ok(f.b.call('GET', '/v1/auth/token/lookup-self', { token: r.body.token }));
    assert.equal(self.identity_id, r.body.identity.id);
    assert.equal(self.display_name, `oidc-any-alg-job-${alg}`);
    assert.deepEqual(self.meta, { role: 'any-alg' });
  }
});

test('a JWKS URL and a static public key are key sources too', async () => {
  await jwtMethod(f, 'prod', 'jwks', {
    issuer: f.issuer.url,
    jwks_url: f.issuer.jwksUrl,
    audiences: ['custody'],
  });
  await putRole(f, 'prod', 'jwks', 'r', {});
  const jwt = await f.issuer.sign({ sub: 'via-jwks', aud: 'custody' }, { alg: 'ES256' });
  assert.equal((await login(f, 'prod', 'jwks', 'r', { jwt })).status, 200);

  await ok(
    f.b.call('POST', '/v1/auth/methods/prod', {
      body: {
        type: 'jwt',
        name: 'static',
        config: {
          issuer: f.issuer.url,
          public_keys: [await f.issuer.publicKeyPem('RS256'), await f.issuer.publicKeyPem('EdDSA')],
          audiences: ['custody'],
        },
      },
    }),
  );
  await putRole(f, 'prod', 'static', 'r', {});
  for (const alg of ['RS256', 'EdDSA'] as const) {
    // Static keys need no kid: every configured key that fits the algorithm is tried.
    const noKid = await f.issuer.sign({ sub: 'via-pem', aud: 'custody' }, { alg, kid: null });
    const r = await login(f, 'prod', 'static', 'r', { jwt: noKid });
    assert.equal(r.status, 200, `${alg}: ${JSON.stringify(r.body)}`);
  }
  const es = await f.issuer.sign({ sub: 'via-pem', aud: 'custody' }, { alg: 'ES256', kid: null });
  const refused = await login(f, 'prod', 'static', 'r', { jwt: es });
  assert.equal(refused.status, 401, 'a key not among public_keys does not verify');
  assert.equal(refused.body.error.code, 'InvalidJwt');
});

test('bound claims: exact, glob, list, nested path and escaped names', async () => {
  await putRole(f, 'prod', 'oidc', 'k8s', {
    bound_claims: {
      'kubernetes.io/namespace': ['ml-*', 'feature-store'],
      'kubernetes.io/serviceaccount/name': 'trainer',
      'team~1unit': 'vision',
      env: 'prod',
    },
  });
  const base = {
    sub: 'system:serviceaccount:ml-train:trainer',
    aud: 'custody',
    env: 'prod',
    'team/unit': 'vision',
    'kubernetes.io': { namespace: 'ml-train', serviceaccount: { name: 'trainer' } },
  };
  const attempt = async (claims: Record<string, unknown>) =>
    login(f, 'prod', 'oidc', 'k8s', { jwt: await f.issuer.sign(claims) });

  assert.equal((await attempt(base)).status, 200, 'glob and exact match');
  const listed = {
    ...base,
    'kubernetes.io': { namespace: 'feature-store', serviceaccount: { name: 'trainer' } },
  };
  assert.equal((await attempt(listed)).status, 200, 'second listed value matches');
  const wrongNs = { ...base, 'kubernetes.io': { namespace: 'web', serviceaccount: { name: 'trainer' } } };
  const r = await attempt(wrongNs);
  assert.equal(r.status, 401);
  assert.equal(r.body.error.code, 'InvalidJwt');
  assert.match(r.body.error.hint, /`kubernetes\.io\/namespace` does not match/);
  assert.ok(!JSON.stringify(r.body).includes('web'), 'the claim value is not echoed');
  const flat = { ...base, 'kubernetes.io/namespace': 'ml-train' } as Record<string, unknown>;
  delete flat['kubernetes.io'];
  const r2 = await attempt(flat);
  assert.equal(r2.status, 401, 'a dot or slash in a flat name is not a nested path');
  assert.match(r2.body.error.hint, /is missing/);
  const wrongTeam = { ...base, 'team/unit': 'nlp' };
  assert.match((await attempt(wrongTeam)).body.error.hint, /`team~1unit`/);
  const arrayClaim = { ...base, env: ['dev', 'prod'] };
  assert.equal((await attempt(arrayClaim)).status, 200, 'an array claim matches when one member matches');
});

test('claim mappings become identity metadata, the groups claim becomes groups', async () => {
  await putRole(f, 'prod', 'oidc', 'mapped', {
    claim_mappings: { 'kubernetes.io/namespace': 'namespace', email: 'email', 'n/a': 'absent', num: 'num' },
    groups_claim: 'groups',
  });
  const long = 'x'.repeat(1000);
  const jwt = await f.issuer.sign({
    sub: 'mapped-job',
    aud: 'custody',
    email: long,
    num: 42,
    'kubernetes.io': { namespace: 'ml-train' },
    groups: ['ml-platform', 'data-readers', 7, 'bad group!'],
  });
  const r = await ok(login(f, 'prod', 'oidc', 'mapped', { jwt }));
  const id = await identityOf(r.identity.id);
  assert.equal(id.metadata.namespace, 'ml-train');
  assert.equal(id.metadata.email, long.slice(0, 256), 'values are truncated');
  assert.equal(id.metadata.num, undefined, 'only string claims are mapped');
  assert.equal(id.metadata.absent, undefined);
  assert.deepEqual([...id.groups].sort(), ['data-readers', 'ml-platform']);
  assert.equal(id.login_role, 'mapped');
  assert.equal(id.auth_method, 'oidc');

  // Groups are re-synced at every login.
  const again = await f.issuer.sign({ sub: 'mapped-job', aud: 'custody', groups: ['ml-platform'] });
  await ok(login(f, 'prod', 'oidc', 'mapped', { jwt: again }));
  assert.deepEqual((await identityOf(r.identity.id)).groups, ['ml-platform']);
});

test('the same subject logging in twice is the same identity', async () => {
  await putRole(f, 'prod', 'oidc', 'twice', { identity_kind: 'user' });
  const a = await ok(
    login(f, 'prod', 'oidc', 'twice', { jwt: await f.issuer.sign({ sub: 'alice', aud: 'custody' }) }),
  );
  const b = await ok(
    login(f, 'prod', 'oidc', 'twice', { jwt: await f.issuer.sign({ sub: 'alice', aud: 'custody' }) }),
  );
  assert.equal(a.identity.id, b.identity.id);
  assert.equal(a.identity.kind, 'user');
  assert.notEqual(a.token, b.token);
  const c = await ok(
    login(f, 'prod', 'oidc', 'twice', { jwt: await f.issuer.sign({ sub: 'bob', aud: 'custody' }) }),
  );
  assert.notEqual(c.identity.id, a.identity.id);
});

test('a role of the other kind cannot flip an existing identity between workload and user', async () => {
  await putRole(f, 'prod', 'oidc', 'as-workload', {});
  await putRole(f, 'prod', 'oidc', 'as-user', { identity_kind: 'user' });
  const jwt = await f.issuer.sign({ sub: 'shared-name', aud: 'custody' });
  const w = await ok(login(f, 'prod', 'oidc', 'as-workload', { jwt }));
  assert.equal(w.identity.kind, 'workload');
  const r = await login(f, 'prod', 'oidc', 'as-user', { jwt });
  assert.equal(r.status, 409);
  assert.equal(r.body.error.code, 'IdentityKindConflict');
  assert.equal((await identityOf(w.identity.id)).kind, 'workload');
});

test('user claim: another claim, a number, or missing', async () => {
  await putRole(f, 'prod', 'oidc', 'by-email', { user_claim: 'email' });
  const r = await ok(
    login(f, 'prod', 'oidc', 'by-email', {
      jwt: await f.issuer.sign({ sub: 's', aud: 'custody', email: 'ci@example.com' }),
    }),
  );
  assert.equal(r.identity.name, 'ci@example.com');
  await putRole(f, 'prod', 'oidc', 'by-uid', { user_claim: 'uid' });
  const n = await ok(
    login(f, 'prod', 'oidc', 'by-uid', { jwt: await f.issuer.sign({ aud: 'custody', uid: 1234 }) }),
  );
  assert.equal(n.identity.name, '1234');
  const missing = await login(f, 'prod', 'oidc', 'by-email', {
    jwt: await f.issuer.sign({ sub: 's', aud: 'custody' }),
  });
  assert.equal(missing.status, 401);
  assert.match(missing.body.error.message, /user claim/);
  const huge = await login(f, 'prod', 'oidc', 'by-email', {
    jwt: await f.issuer.sign({ sub: 's', aud: 'custody', email: 'e'.repeat(300) }),
  });
  assert.equal(huge.status, 401, 'user claim longer than 256 characters');
});

test('login tokens renew up to the role max TTL and no further', async () => {
  await putRole(f, 'prod', 'oidc', 'short', { token_ttl: '1m', token_max_ttl: '2m' });
  const r = await ok(
    login(f, 'prod', 'oidc', 'short', { jwt: await f.issuer.sign({ sub: 'renewer', aud: 'custody' }) }),
  );
  const ttl = Date.parse(r.expires_at) - Date.now();
  assert.ok(ttl > 50_000 && ttl <= 60_000, `ttl ${ttl}`);
  const max = Date.parse(r.max_expires_at);
  assert.ok(max - Date.now() <= 120_000);
  assert.equal(r.renewable, true);
  const renewed = await ok(
    f.b.call('POST', '/v1/auth/token/renew-self', { token: r.token, body: { increment: '1h' } }),
  );
  assert.equal(Date.parse(renewed.expires_at), max, 'renewal past the max TTL is capped at it');
});

test('key rotation: a token with a new kid triggers one JWKS refetch after the cooldown', async () => {
  await jwtMethod(f, 'prod', 'rotating', { audiences: ['custody'], jwks_cooldown_seconds: 1 });
  await putRole(f, 'prod', 'rotating', 'r', {});
  const before = await f.issuer.sign({ sub: 'rot', aud: 'custody' });
  assert.equal((await login(f, 'prod', 'rotating', 'r', { jwt: before })).status, 200);
  const oldKid = f.issuer.currentKid('RS256');
  await f.issuer.rotate('RS256');
  await sleep(1100);
  const fetches = f.issuer.counts.jwks;
  const rotated = await f.issuer.sign({ sub: 'rot', aud: 'custody' });
  const r = await login(f, 'prod', 'rotating', 'r', { jwt: rotated });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(f.issuer.counts.jwks, fetches + 1, 'exactly one refetch');
  // A key the issuer stops publishing stops verifying once the key set is refetched.
  f.issuer.unpublish(oldKid);
  await sleep(1100);
  const newKid = f.issuer.currentKid('RS256');
  await f.issuer.rotate('RS256');
  const newest = await f.issuer.sign({ sub: 'rot', aud: 'custody' });
  assert.equal((await login(f, 'prod', 'rotating', 'r', { jwt: newest })).status, 200, 'refetched');
  assert.notEqual(newKid, f.issuer.currentKid('RS256'));
  const r2 = await login(f, 'prod', 'rotating', 'r', { jwt: before });
  assert.equal(r2.status, 401, 'the unpublished key is gone from the refreshed set');
  assert.match(r2.body.error.message, /signing key/);
});
