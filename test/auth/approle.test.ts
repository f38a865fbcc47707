import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type AuthFixture, auditText, authFixture, login, ok, putRole } from './helpers.js';

let f: AuthFixture;
const secrets: string[] = [];

before(async () => {
  f = await authFixture(['prod', 'dev']);
  for (const env of ['prod', 'dev']) {
    const m = await ok(f.b.call('POST', `/v1/auth/methods/${env}`, { body: { type: 'approle' } }));
    assert.equal(m.name, 'approle');
  }
});
after(() => f.stop());

const base = (env: string, role: string) => `/v1/auth/methods/${env}/approle/roles/${role}`;
const roleId = async (env: string, role: string) =>
  (await ok(f.b.call('GET', `${base(env, role)}/role-id`))).role_id as string;
async function secretId(env: string, role: string, body: Record<string, unknown> = {}) {
  const s = await ok(f.b.call('POST', `${base(env, role)}/secret-id`, { body }));
  secrets.push(s.secret_id);
  return s;
}
const appLogin = (env: string, role: string, role_id: string, secret_id: string) =>
  login(f, env, 'approle', role, { role_id, secret_id });

test('AppRole login: role id + secret id → workload identity and token with the role TTLs', async () => {
  const r = await putRole(f, 'prod', 'approle', 'trainer', { token_ttl: '10m', token_max_ttl: '1h' });
  assert.equal(r.config.secret_id_ttl, 86_400);
  assert.equal(r.config.secret_id_num_uses, 0);
  const rid = await roleId('prod', 'trainer');
  assert.match(rid, /^rid_/);
  const s = await secretId('prod', 'trainer', { metadata: { job: 'nightly' } });
  assert.match(s.secret_id, /^sid_/);
  assert.match(s.secret_id_accessor, /^sida_/);
  assert.ok(Math.abs(Date.parse(s.expires_at) - Date.now() - 86_400_000) < 10_000);
  assert.equal(s.uses_left, null);
  const a = await ok(appLogin('prod', 'trainer', rid, s.secret_id));
  assert.equal(a.identity.name, 'trainer');
  assert.equal(a.identity.kind, 'workload');
  assert.ok(Math.abs(Date.parse(a.expires_at) - Date.now() - 600_000) < 10_000);
  const self = await ok(f.b.call('GET', '/v1/auth/token/lookup-self', { token: a.token }));
  assert.deepEqual(self.meta, { job: 'nightly', role: 'trainer', secret_id_accessor: s.secret_id_accessor });
  const b = await ok(appLogin('prod', 'trainer', rid, s.secret_id));
  assert.equal(b.identity.id, a.identity.id, 'one identity per role');

  // Replacing the role keeps its role id.
  await putRole(f, 'prod', 'approle', 'trainer', { token_ttl: '5m' });
  assert.equal(await roleId('prod', 'trainer'), rid);
});

test('wrong role id or secret id is refused with 401', async () => {
  await putRole(f, 'prod', 'approle', 'etl', {});
  await putRole(f, 'prod', 'approle', 'other', {});
  const rid = await roleId('prod', 'etl');
  const s = await secretId('prod', 'etl');
  const other = await secretId('prod', 'other');
  const wrongRole = await appLogin('prod', 'etl', await roleId('prod', 'other'), s.secret_id);
  assert.equal(wrongRole.status, 401);
  assert.equal(wrongRole.body.error.code, 'InvalidRoleId');
  const wrongSecret = await appLogin('prod', 'etl', rid, `${s.secret_id.slice(0, -2)}xx`);
  assert.equal(wrongSecret.status, 401);
  assert.equal(wrongSecret.body.error.code, 'InvalidSecretId');
  const crossRole = await appLogin('prod', 'etl', rid, other.secret_id);
  assert.equal(crossRole.status, 401, "another role's secret id");
  assert.equal(crossRole.body.error.code, 'InvalidSecretId');
  const jwtInstead = await login(f, 'prod', 'approle', 'etl', { jwt: 'a.b.c' });
  assert.equal(jwtInstead.status, 400);
  assert.equal(jwtInstead.body.error.code, 'WrongCredentials');
});

test("another environment's role id and secret id never log in here", async () => {
  await putRole(f, 'prod', 'approle', 'same-name', {});
  await putRole(f, 'dev', 'approle', 'same-name', {});
  const devRid = await roleId('dev', 'same-name');
  const devSecret = await secretId('dev', 'same-name');
  assert.equal((await appLogin('dev', 'same-name', devRid, devSecret.secret_id)).status, 200);
  const r1 = await appLogin('prod', 'same-name', devRid, devSecret.secret_id);
  assert.equal(r1.body.error.code, 'InvalidRoleId');
  const r2 = await appLogin('prod', 'same-name', await roleId('prod', 'same-name'), devSecret.secret_id);
  assert.equal(r2.status, 401);
  assert.equal(r2.body.error.code, 'InvalidSecretId');
});

test('secret id TTL: refused once expired', async () => {
  await putRole(f, 'prod', 'approle', 'brief', { secret_id_ttl: 1 });
  const rid = await roleId('prod', 'brief');
  const s = await secretId('prod', 'brief');
  assert.equal((await appLogin('prod', 'brief', rid, s.secret_id)).status, 200);
  await sleep(1100);
  const r = await appLogin('prod', 'brief', rid, s.secret_id);
  assert.equal(r.status, 401);
  assert.equal(r.body.error.code, 'InvalidSecretId');
  assert.match(r.body.error.message, /expiry/);
});

test('secret id use count: exhausted after N, also under concurrency', async () => {
  await putRole(f, 'prod', 'approle', 'counted', { secret_id_num_uses: 3, secret_id_ttl: 0 });
  const rid = await roleId('prod', 'counted');
  const s = await secretId('prod', 'counted');
  assert.equal(s.uses_left, 3);
  assert.equal(s.expires_at, null);
  for (let i = 0; i < 3; i++) assert.equal((await appLogin('prod', 'counted', rid, s.secret_id)).status, 200);
  const fourth = await appLogin('prod', 'counted', rid, s.secret_id);
  assert.equal(fourth.status, 401);
  assert.equal(fourth.body.error.code, 'InvalidSecretId');

  await putRole(f, 'prod', 'approle', 'counted', { secret_id_num_uses: 5 });
  const c = await secretId('prod', 'counted');
  const replies = await Promise.all(
    Array.from({ length: 12 }, () => appLogin('prod', 'counted', rid, c.secret_id)),
  );
  assert.equal(replies.filter((r) => r.status === 200).length, 5, 'exactly N logins succeed');
  assert.ok(replies.filter((r) => r.status !== 200).every((r) => r.body.error.code === 'InvalidSecretId'));
});

test('CIDR binding: role and secret id CIDRs are checked against the caller address', async () => {
  await putRole(f, 'prod', 'approle', 'netbound', { secret_id_bound_cidrs: ['10.0.0.0/8', 'fd00::/8'] });
  const rid = await roleId('prod', 'netbound');
  const s = await secretId('prod', 'netbound');
  const r = await appLogin('prod', 'netbound', rid, s.secret_id);
  assert.equal(r.status, 403);
  assert.equal(r.body.error.code, 'AddressNotAllowed');

  await putRole(f, 'prod', 'approle', 'netbound', {
    secret_id_bound_cidrs: ['127.0.0.0/8'],
    secret_id_num_uses: 1,
  });
  const narrow = await secretId('prod', 'netbound', { cidrs: ['192.168.0.0/16'] });
  const r2 = await appLogin('prod', 'netbound', rid, narrow.secret_id);
  assert.equal(r2.status, 403, 'the secret id CIDRs apply too');
  const fits = await secretId('prod', 'netbound', { cidrs: ['127.0.0.1/32'] });
  assert.equal((await appLogin('prod', 'netbound', rid, fits.secret_id)).status, 200);

  await putRole(f, 'prod', 'approle', 'tokbound', { token_bound_cidrs: ['10.1.0.0/16'] });
  const t = await secretId('prod', 'tokbound');
  const r3 = await appLogin('prod', 'tokbound', await roleId('prod', 'tokbound'), t.secret_id);
  assert.equal(r3.status, 403, 'a login from outside token_bound_cidrs is refused');

  const bad = await f.b.call('PUT', base('prod', 'badcidr'), {
    body: { secret_id_bound_cidrs: ['10.0.0.0/33'] },
  });
  assert.equal(bad.status, 400);
  assert.equal(bad.body.error.code, 'InvalidCidr');
});

test('destroying a secret id by accessor', async () => {
  await putRole(f, 'prod', 'approle', 'destroyable', {});
  const rid = await roleId('prod', 'destroyable');
  const s = await secretId('prod', 'destroyable');
  await ok(
    f.b.call('POST', `${base('prod', 'destroyable')}/secret-id/destroy`, {
      body: { secret_id_accessor: s.secret_id_accessor },
    }),
  );
  assert.equal((await appLogin('prod', 'destroyable', rid, s.secret_id)).status, 401);
  const again = await f.b.call('POST', `${base('prod', 'destroyable')}/secret-id/destroy`, {
    body: { secret_id_accessor: s.secret_id_accessor },
  });
  assert.equal(again.status, 404);
  assert.equal(again.body.error.code, 'SecretIdNotFound');
});

test('secret ids and role ids are stored only hashed and audited only as digests', async () => {
  const files = ['custody.db', 'custody.db-wal'].map((n) => path.join(f.b.dataDir, n));
  const raw = Buffer.concat(await Promise.all(files.map((p) => readFile(p).catch(() => Buffer.alloc(0)))));
  const audit = await auditText(f.b);
  assert.ok(secrets.length > 5);
  for (const s of secrets) {
    assert.ok(!raw.includes(Buffer.from(s)), 'secret id stored in clear');
    assert.ok(!audit.includes(s), 'secret id in the audit trail');
  }
  assert.ok(!audit.includes(await roleId('prod', 'trainer')), 'role id in the audit trail');
});
