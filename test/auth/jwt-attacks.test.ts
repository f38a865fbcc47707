import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { type OidcIssuer, startOidcIssuer } from '../support/oidc-issuer.js';
import {
  type AuthFixture,
  auditEntries,
  auditText,
  authFixture,
  jwtMethod,
  login,
  putRole,
  unsignedJwt,
} from './helpers.js';

let f: AuthFixture;
let attacker: OidcIssuer;
const presented: string[] = [];

before(async () => {
  f = await authFixture(['prod', 'dev']);
  attacker = await startOidcIssuer();
  for (const env of ['prod', 'dev']) {
    await jwtMethod(f, env, 'oidc', { audiences: [`custody-${env}`] });
    await putRole(f, env, 'oidc', 'ci', { bound_claims: { repository: 'acme/*' } });
  }
});
after(async () => {
  await f.stop();
  await attacker.stop();
});

const now = () => Math.floor(Date.now() / 1000);
const good = { sub: 'repo:acme/train', aud: 'custody-prod', repository: 'acme/train' };

/** Presents a JWT that must be refused with `status`/`code`, audited without the JWT itself. */
async function refused(jwt: string, status: number, code: string, hint?: RegExp, where = 'prod/oidc/ci') {
  presented.push(jwt);
  const [env, method, role] = where.split('/');
  const r = await login(f, env, method, role, { jwt });
  assert.equal(r.status, status, JSON.stringify(r.body));
  assert.equal(r.body.error.code, code);
  if (hint) assert.match(`${r.body.error.message} ${r.body.error.hint}`, hint);
  assert.ok(!JSON.stringify(r.body).includes(jwt), 'the reply never echoes the token');
  const entries = await auditEntries(f.b);
  const last = entries.filter((e) => e.action === 'auth/login' && e.type === 'response').at(-1);
  assert.ok(last, 'the refusal is audited');
  assert.ok(['denied', 'error'].includes(last.outcome));
  assert.equal(last.error_code, code);
  assert.equal(last.status, status);
  assert.equal(last.resource, where);
  return r.body.error;
}

test('the honest token is accepted (control)', async () => {
  const r = await login(f, 'prod', 'oidc', 'ci', { jwt: await f.issuer.sign(good) });
  assert.equal(r.status, 200, JSON.stringify(r.body));
});

test('alg none is refused before any key lookup', async () => {
  const fetches = f.issuer.counts.total;
  await refused(
    unsignedJwt({ ...good, iss: f.issuer.url, exp: now() + 300 }),
    401,
    'InvalidJwt',
    /algorithm/,
  );
  const withKid = unsignedJwt(
    { ...good, iss: f.issuer.url, exp: now() + 300 },
    { kid: f.issuer.currentKid('RS256') },
  );
  await refused(withKid, 401, 'InvalidJwt', /algorithm/);
  await refused(`${withKid}AAAA`, 401, 'InvalidJwt');
  assert.equal(f.issuer.counts.total, fetches);
});

test('HS256 signed with the RSA public key as the HMAC secret is refused', async () => {
  const pem = await f.issuer.publicKeyPem('RS256');
  for (const secret of [pem, pem.trim(), Buffer.from(pem).toString('base64')]) {
    const jwt = await new SignJWT({ ...good, iss: f.issuer.url, exp: now() + 300 })
      .setProtectedHeader({ alg: 'HS256', kid: f.issuer.currentKid('RS256') })
      .sign(new TextEncoder().encode(secret));
    await refused(jwt, 401, 'InvalidJwt', /algorithm/);
  }
});

test('a method may not even be configured with HMAC or none', async () => {
  for (const alg of ['HS256', 'none', 'HS512']) {
    const r = await f.b.call('POST', '/v1/auth/methods/prod', {
      body: {
        type: 'jwt',
        name: `hmac-${alg.toLowerCase()}`,
        config: { jwks_url: f.issuer.jwksUrl, algorithms: ['RS256', alg] },
      },
    });
    assert.equal(r.status, 400);
    assert.equal(r.body.error.code, 'InvalidAlgorithm');
  }
});

test('expired, not yet valid, future-issued and expiry-less tokens are refused', async () => {
  await refused(await f.issuer.sign({ ...good, exp: now() - 120 }), 401, 'InvalidJwt', /expir/);
  await refused(await f.issuer.sign({ ...good, nbf: now() + 600 }), 401, 'InvalidJwt', /not-before/);
  await refused(await f.issuer.sign({ ...good, iat: now() + 600 }), 401, 'InvalidJwt', /issued/);
  await refused(await f.issuer.sign({ ...good, exp: undefined }), 401, 'InvalidJwt', /exp/);
  // Inside the 60 s leeway: accepted.
  const r = await login(f, 'prod', 'oidc', 'ci', { jwt: await f.issuer.sign({ ...good, exp: now() - 20 }) });
  assert.equal(r.status, 200);
});

test('wrong issuer and wrong audience are refused', async () => {
  await refused(await f.issuer.sign({ ...good, iss: 'https://evil.example' }), 401, 'InvalidJwt', /issuer/);
  await refused(await f.issuer.sign({ ...good, iss: undefined }), 401, 'InvalidJwt', /issuer/);
  await refused(await f.issuer.sign({ ...good, aud: 'someone-else' }), 401, 'InvalidJwt', /audience/);
  await refused(await f.issuer.sign({ ...good, aud: undefined }), 401, 'InvalidJwt', /audience/);
});

test('missing and mismatched bound claims are refused, naming the claim but not its value', async () => {
  const missing = await refused(
    await f.issuer.sign({ ...good, repository: undefined }),
    401,
    'InvalidJwt',
    /`repository` is missing/,
  );
  assert.ok(!JSON.stringify(missing).includes('acme'));
  const mismatch = await refused(
    await f.issuer.sign({ ...good, repository: 'evilcorp/secret-repo' }),
    401,
    'InvalidJwt',
    /`repository` does not match/,
  );
  assert.ok(!JSON.stringify(mismatch).includes('evilcorp'));
});

test('a tampered payload fails the signature check', async () => {
  const [h, , s] = (await f.issuer.sign(good)).split('.');
  const forged = Buffer.from(
    JSON.stringify({ ...good, iss: f.issuer.url, exp: now() + 300, sub: 'admin' }),
  ).toString('base64url');
  await refused(`${h}.${forged}.${s}`, 401, 'InvalidJwt', /signature/);
});

test("a token signed by another key under the issuer's kid fails the signature check", async () => {
  const { privateKey } = await generateKeyPair('RS256');
  const jwt = await new SignJWT({ ...good, iss: f.issuer.url, exp: now() + 300 })
    .setProtectedHeader({ alg: 'RS256', kid: f.issuer.currentKid('RS256') })
    .sign(privateKey);
  await refused(jwt, 401, 'InvalidJwt', /signature/);
});

test('jku, x5u and embedded jwk headers are ignored and never fetched', async () => {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk = await exportJWK(publicKey);
  const claims = { ...good, iss: f.issuer.url, exp: now() + 300 };
  const headers = [
    { jku: attacker.jwksUrl, kid: attacker.currentKid('RS256') },
    { x5u: `${attacker.url}/cert.pem`, kid: attacker.currentKid('RS256') },
    { jwk },
    { jwk: { ...jwk, kid: f.issuer.currentKid('RS256') }, kid: f.issuer.currentKid('RS256') },
    { jku: attacker.jwksUrl, x5u: `${attacker.url}/cert.pem`, jwk, kid: f.issuer.currentKid('RS256') },
  ];
  for (const extra of headers) {
    const viaAttackerKey = await attacker.sign(claims, {
      header: extra,
      kid: (extra as { kid?: string }).kid ?? null,
    });
    await refused(viaAttackerKey, 401, 'InvalidJwt');
    const viaOwnKey = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'RS256', ...extra })
      .sign(privateKey);
    await refused(viaOwnKey, 401, 'InvalidJwt');
  }
  assert.equal(attacker.counts.total, 0, 'the attacker server received no request');
});

test('unknown kids: refused, and a flood causes at most one refetch per cooldown', async () => {
  await jwtMethod(f, 'prod', 'flood', { audiences: ['custody-prod'], jwks_cooldown_seconds: 2 });
  await putRole(f, 'prod', 'flood', 'ci', {});
  const unknownKid = () =>
    attacker.sign({ ...good, iss: f.issuer.url }, { kid: `kid-${randomBytes(4).toString('hex')}` });
  await refused(await unknownKid(), 401, 'InvalidJwt', /signing key/, 'prod/flood/ci');
  await sleep(2100);
  const start = f.issuer.counts.jwks;
  const tokens = await Promise.all(Array.from({ length: 50 }, unknownKid));
  const replies = await Promise.all(tokens.map((jwt) => login(f, 'prod', 'flood', 'ci', { jwt })));
  assert.ok(replies.every((r) => r.status === 401 && r.body.error.code === 'InvalidJwt'));
  for (const jwt of tokens.slice(0, 50)) {
    const r = await login(f, 'prod', 'flood', 'ci', { jwt });
    assert.equal(r.status, 401);
  }
  const refetches = f.issuer.counts.jwks - start;
  assert.ok(refetches >= 1 && refetches <= 2, `${refetches} JWKS refetches for 100 unknown-kid tokens`);
  presented.push(...tokens);
});

test('a token over 16 KiB is refused before parsing', async () => {
  const big = await f.issuer.sign({ ...good, padding: 'p'.repeat(17 * 1024) });
  await refused(big, 400, 'TokenTooLarge');
});

test("a token valid for another environment's role is refused", async () => {
  const devToken = await f.issuer.sign({ ...good, aud: 'custody-dev' });
  const r = await login(f, 'dev', 'oidc', 'ci', { jwt: devToken });
  assert.equal(r.status, 200);
  assert.equal(r.body.env, 'dev');
  await refused(devToken, 401, 'InvalidJwt', /audience/);
  // Even with the same audience everywhere, a role exists only in its own environment.
  await putRole(f, 'dev', 'oidc', 'dev-only', { bound_audiences: ['custody-prod'] });
  await refused(await f.issuer.sign(good), 404, 'LoginRoleNotFound', undefined, 'prod/oidc/dev-only');
});

test('unknown environment, method or role answers 404, malformed names 400, never 500', async () => {
  const jwt = await f.issuer.sign(good);
  presented.push(jwt);
  const cases: [string, number, string][] = [
    ['/v1/auth/login/prod/oidc/nope', 404, 'LoginRoleNotFound'],
    ['/v1/auth/login/prod/nope/ci', 404, 'AuthMethodNotFound'],
    ['/v1/auth/login/staging/oidc/ci', 404, 'AuthMethodNotFound'],
    ['/v1/auth/login/Prod/oidc/ci', 400, 'InvalidRequest'],
    ['/v1/auth/login/prod/oidc/a%2Fb', 400, 'InvalidRequest'],
  ];
  for (const [p, status, code] of cases) {
    const r = await f.b.call('POST', p, { body: { jwt }, token: null });
    assert.equal(r.status, status, `${p}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.error.code, code, p);
  }
  const dots = await f.b.callRaw('POST', '/v1/auth/login/prod/oidc/..', { jwt });
  assert.equal(dots.status, 400);
  assert.equal(dots.body.error.code, 'InvalidRequest');
  const wrongShape = await login(f, 'prod', 'oidc', 'ci', { role_id: 'x', secret_id: 'y' });
  assert.equal(wrongShape.status, 400);
  assert.equal(wrongShape.body.error.code, 'WrongCredentials');
  const garbage = await login(f, 'prod', 'oidc', 'ci', { jwt: 'not.a.jwt' });
  assert.equal(garbage.status, 401);
  assert.equal(garbage.body.error.code, 'InvalidJwt');
  const extra = await login(f, 'prod', 'oidc', 'ci', { jwt, admin: true });
  assert.equal(extra.status, 400);
});

test('no presented JWT appears in the audit trail or the logs', async () => {
  const text = await auditText(f.b);
  const logs = f.b.logs.join('\n');
  for (const jwt of presented) {
    const signature = jwt.split('.')[2];
    assert.ok(!text.includes(jwt), 'raw JWT in audit');
    if (signature && signature.length > 20) assert.ok(!text.includes(signature), 'JWT signature in audit');
    assert.ok(!logs.includes(jwt), 'raw JWT in logs');
  }
  const requests = (await auditEntries(f.b)).filter((e) => e.action === 'auth/login' && e.type === 'request');
  assert.ok(requests.length > 20);
  assert.ok(
    requests.every((e) => e.data?.jwt === undefined || String(e.data.jwt).startsWith('hmac-sha256:')),
  );
});
