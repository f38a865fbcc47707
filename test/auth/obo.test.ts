import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  type AuthFixture,
  auditEntries,
  auditText,
  authFixture,
  jwtMethod,
  login,
  ok,
  putRole,
} from './helpers.js';

let f: AuthFixture;
let workload: any;
let alice: any;

const obo = (token: string | null, user_jwt: string, where = 'prod/oidc/people') =>
  f.b.call('POST', `/v1/auth/obo/${where}`, { token, body: { user_jwt } });
const userJwt = (sub = 'alice', extra: Record<string, unknown> = {}) =>
  f.issuer.sign({ sub, aud: 'custody', groups: ['ml'], ...extra });

async function assign(principal: string, scope: string) {
  await ok(
    f.b.call('POST', '/v1/access/assignments', {
      body: { principal, role: 'secrets-user', scope, reason: 'test: on-behalf-of' },
    }),
    `assign ${scope}`,
  );
}

before(async () => {
  f = await authFixture(['prod', 'dev']);
  for (const env of ['prod', 'dev']) {
    await jwtMethod(f, env, 'oidc', { audiences: ['custody'] });
    await putRole(f, env, 'oidc', 'job', { token_ttl: '2m', token_max_ttl: '10m' });
    await putRole(f, env, 'oidc', 'people', {
      identity_kind: 'user',
      groups_claim: 'groups',
      token_ttl: '1h',
    });
  }
  workload = await ok(
    login(f, 'prod', 'oidc', 'job', { jwt: await f.issuer.sign({ sub: 'notebook', aud: 'custody' }) }),
  );
  alice = await ok(login(f, 'prod', 'oidc', 'people', { jwt: await userJwt() }));
  assert.equal(alice.identity.kind, 'user');
  for (const [name, value] of [
    ['a/x', 'value-a'],
    ['b/y', 'value-b'],
  ]) {
    await ok(f.b.call('PUT', `/v1/secrets/prod/${name}`, { body: { value } }));
  }
  await assign(alice.identity.id, 'prod/secrets/a');
  await assign(alice.identity.id, 'prod/secrets/b');
  await assign(workload.identity.id, 'prod/secrets/a');
});
after(() => f.stop());

test('an on-behalf-of token can do only what both the user and the workload may do', async () => {
  const u = await ok(obo(workload.token, await userJwt()));
  assert.equal(u.identity.id, alice.identity.id);
  assert.equal(u.identity.kind, 'user');
  assert.equal(u.actor.id, workload.identity.id);
  assert.equal(u.actor.kind, 'workload');
  assert.deepEqual(u.policies, []);
  assert.equal(u.env, 'prod');

  assert.equal((await f.b.call('GET', '/v1/secrets/prod/a/x', { token: u.token })).body.value, 'value-a');
  const denied = await f.b.call('GET', '/v1/secrets/prod/b/y', { token: u.token });
  assert.equal(denied.status, 403, 'the workload may not read b, so neither may the exchange');
  assert.equal((await f.b.call('GET', '/v1/secrets/prod/b/y', { token: alice.token })).status, 200);
  assert.equal((await f.b.call('GET', '/v1/secrets/prod/b/y', { token: workload.token })).status, 403);

  const self = await ok(f.b.call('GET', '/v1/auth/token/lookup-self', { token: u.token }));
  assert.equal(self.identity_id, alice.identity.id);
  assert.deepEqual(self.meta, { role: 'people', on_behalf_of: 'true' });

  const entry = (await auditEntries(f.b))
    .filter((e) => e.action === 'auth/obo' && e.type === 'response')
    .at(-1);
  assert.equal(entry.outcome, 'ok');
  assert.equal(entry.data.identity, alice.identity.id);
  assert.equal(entry.data.actor, workload.identity.id);
  assert.equal(entry.data.parent_accessor, workload.accessor);
  const reads = (await auditEntries(f.b)).filter(
    (e) => e.action === 'secrets/get' && e.type === 'request' && e.auth?.accessor === u.accessor,
  );
  assert.equal(reads.length, 2);
  const read = reads[1];
  assert.equal(read.outcome, 'denied');
  assert.equal(read.auth.identity, alice.identity.id);
  assert.equal(read.auth.actor, workload.identity.id, 'later requests name both identities');
});

test("the exchanged token never outlives the workload's token, and dies with it", async () => {
  const jobToken = await ok(
    login(f, 'prod', 'oidc', 'job', { jwt: await f.issuer.sign({ sub: 'short-job', aud: 'custody' }) }),
  );
  const u = await ok(obo(jobToken.token, await userJwt()));
  assert.ok(Date.parse(u.expires_at) <= Date.parse(jobToken.expires_at), 'ttl capped by the workload token');
  assert.ok(Date.parse(u.max_expires_at) <= Date.parse(jobToken.expires_at), 'max ttl capped too');
  await ok(f.b.call('POST', '/v1/auth/token/revoke-self', { token: jobToken.token }));
  const after = await f.b.call('GET', '/v1/auth/token/lookup-self', { token: u.token });
  assert.equal(after.status, 401, "revoking the job's token revokes the exchanged one");
});

test('the caller must present a live workload token of the same environment', async () => {
  const jwt = await userJwt();
  const cases: [string | null, number, string][] = [
    [null, 401, 'InvalidToken'],
    ['cst_not-a-real-token-at-all', 401, 'InvalidToken'],
    [f.b.rootToken, 403, 'NotAWorkload'],
    [alice.token, 403, 'NotAWorkload'],
  ];
  const u = await ok(obo(workload.token, jwt));
  cases.push([u.token, 403, 'NotAWorkload']);
  const devJob = await ok(
    login(f, 'dev', 'oidc', 'job', { jwt: await f.issuer.sign({ sub: 'dev-job', aud: 'custody' }) }),
  );
  cases.push([devJob.token, 403, 'CrossEnvironment']);
  for (const [token, status, code] of cases) {
    const r = await obo(token, jwt);
    assert.equal(r.status, status, `${code}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.error.code, code);
  }
  const audited = (await auditEntries(f.b)).filter((e) => e.action === 'auth/obo' && e.type === 'response');
  for (const code of ['InvalidToken', 'NotAWorkload', 'CrossEnvironment']) {
    assert.ok(
      audited.some((e) => e.error_code === code && e.outcome !== 'ok'),
      `${code} audited`,
    );
  }
  assert.ok(!(await auditText(f.b)).includes(jwt), 'the user JWT is only digested');
});

test('the user JWT is verified against the named role, which must issue user identities', async () => {
  const wrongAud = await obo(workload.token, await userJwt('alice', { aud: 'other' }));
  assert.equal(wrongAud.status, 401);
  assert.equal(wrongAud.body.error.code, 'InvalidJwt');
  const workloadRole = await obo(workload.token, await userJwt(), 'prod/oidc/job');
  assert.equal(workloadRole.status, 400);
  assert.equal(workloadRole.body.error.code, 'NotAUserRole');
  const missing = await obo(workload.token, await userJwt(), 'prod/oidc/nobody');
  assert.equal(missing.status, 404);
  assert.equal(missing.body.error.code, 'LoginRoleNotFound');
});
