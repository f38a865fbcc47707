import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { IdentityKind } from '../../src/auth/identity-service.js';
import { startTestBroker, type TestBroker } from '../support/broker.js';

let b: TestBroker;

/** A logged-in identity: what an auth method's login produces (identity + env-bound token). */
async function login(env: string, name: string, kind: IdentityKind = 'workload', claimGroups?: string[]) {
  const { identities, tokens } = b.broker.services;
  const identity = await identities.upsertFromLogin({
    env,
    authMethod: 'jwt',
    loginRole: 'test',
    kind,
    name,
    metadata: {},
    claimGroups,
  });
  const { token } = await tokens.create({
    policies: [],
    identityId: identity.id,
    env,
    authMethod: 'jwt',
    ttlSeconds: 600,
  });
  return { id: identity.id, token, ref: `${env}/${name}` };
}

const assign = (body: Record<string, unknown>, token?: string) =>
  b.call('POST', '/v1/access/assignments', { body: { reason: 'test', ...body }, token });

before(async () => {
  b = await startTestBroker();
  for (const env of ['prod', 'dev']) await b.call('POST', '/v1/envs', { body: { name: env } });
  for (const n of ['db/password', 'db-admin/password', 'db/replica/password', 'api/key']) {
    await b.call('PUT', `/v1/secrets/prod/${n}`, { body: { value: `v:${n}` } });
  }
  await b.call('PUT', '/v1/secrets/dev/db/password', { body: { value: 'dev-value' } });
});
after(async () => {
  await b.stop();
});

describe('RBAC', () => {
  test('default deny: an identity with no assignment can do nothing', async () => {
    const job = await login('prod', 'no-grants');
    for (const [m, p] of [
      ['GET', '/v1/secrets/prod/db/password'],
      ['GET', '/v1/secrets/prod'],
      ['PUT', '/v1/secrets/prod/x'],
      ['GET', '/v1/envs'],
    ] as const) {
      const res = await b.call(m, p, { token: job.token, body: m === 'PUT' ? { value: 'x' } : undefined });
      assert.equal(res.status, 403, `${m} ${p}`);
      assert.equal(res.body.error.code, 'PermissionDenied');
    }
    const self = await b.call('GET', '/v1/auth/token/lookup-self', { token: job.token });
    assert.equal(self.status, 200, 'a token may always look itself up');
  });

  test('secrets-user at a prefix reads inside it, never a look-alike prefix or another environment', async () => {
    const job = await login('prod', 'trainer');
    const a = await assign({ principal: job.ref, role: 'secrets-user', scope: 'prod/secrets/db' });
    assert.equal(a.status, 200, JSON.stringify(a.body));
    assert.match(a.body.id, /^asg_/);
    assert.equal(
      (await b.call('GET', '/v1/secrets/prod/db/password', { token: job.token })).body.value,
      'v:db/password',
    );
    assert.equal(
      (await b.call('GET', '/v1/secrets/prod/db/replica/password', { token: job.token })).status,
      200,
    );
    const lookAlike = await b.call('GET', '/v1/secrets/prod/db-admin/password', { token: job.token });
    assert.equal(lookAlike.status, 403, 'prod/db does not cover prod/db-admin');
    assert.equal((await b.call('GET', '/v1/secrets/prod?prefix=db-admin', { token: job.token })).status, 403);
    const listed = await b.call('GET', '/v1/secrets/prod?prefix=db', { token: job.token });
    assert.deepEqual(
      listed.body.items.map((i: any) => i.name),
      ['db/password', 'db/replica/password'],
    );
    assert.equal(
      (await b.call('GET', '/v1/secrets/prod', { token: job.token })).status,
      403,
      'listing the whole env needs an env scope',
    );
    assert.equal(
      (await b.call('PUT', '/v1/secrets/prod/db/password', { token: job.token, body: { value: 'x' } }))
        .status,
      403,
    );
    const cross = await b.call('GET', '/v1/secrets/dev/db/password', { token: job.token });
    assert.equal(cross.status, 403, 'a prod token never reads dev');
    assert.match(cross.body.error.message, /belongs to environment prod/);
  });

  test('path tricks and encoded separators do not cross environments', async () => {
    const job = await login('prod', 'tricky');
    await assign({ principal: job.ref, role: 'secrets-user', scope: 'prod' });
    for (const p of [
      '/v1/secrets/prod/../dev/db/password',
      '/v1/secrets/prod/%2e%2e/dev/db/password',
      '/v1/secrets/prod%2F..%2Fdev/db/password',
      '/v1/secrets/prod/..%2Fdev%2Fdb%2Fpassword',
    ]) {
      const res = await new Promise<{ status: number; body: any }>((resolve, reject) => {
        const u = new URL(b.url);
        import('node:https').then(({ request }) => {
          const r = request(
            {
              host: u.hostname,
              port: u.port,
              path: p,
              ca: b.ca,
              headers: { authorization: `Bearer ${job.token}` },
            },
            (res) => {
              let t = '';
              res.on('data', (c) => (t += c));
              res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(t) }));
            },
          );
          r.on('error', reject);
          r.end();
        });
      });
      assert.ok(res.status === 400 || res.status === 403 || res.status === 404, `${p} → ${res.status}`);
      assert.notEqual(res.body.value, 'dev-value', p);
    }
  });

  test('a Reader sees metadata, never a value', async () => {
    const reader = await login('prod', 'reader-bot');
    await assign({ principal: reader.ref, role: 'reader', scope: 'prod' });
    const list = await b.call('GET', '/v1/secrets/prod', { token: reader.token });
    assert.equal(list.status, 200);
    assert.ok(list.body.items.length >= 4);
    assert.ok(list.body.items.every((i: any) => !('value' in i)));
    const read = await b.call('GET', '/v1/secrets/prod/api/key', { token: reader.token });
    assert.equal(read.status, 403);
  });

  test('nobody assigns to themselves or grants beyond what they hold', async () => {
    const admin = await login('prod', 'alice', 'user');
    const other = await login('prod', 'bob', 'user');
    await assign({ principal: admin.ref, role: 'access-administrator', scope: 'prod' });
    const self = await assign({ principal: admin.ref, role: 'secrets-user', scope: 'prod' }, admin.token);
    assert.equal(self.status, 403);
    assert.match(self.body.error.message, /themselves/);
    const beyond = await assign({ principal: other.ref, role: 'secrets-user', scope: 'prod' }, admin.token);
    assert.equal(beyond.status, 403, 'access-administrator alone holds no secrets/get to hand out');
    assert.match(beyond.body.error.message, /secrets\/get/);

    const held = await assign({ principal: admin.ref, role: 'secrets-user', scope: 'prod/secrets/api' });
    assert.equal(held.status, 200, JSON.stringify(held.body));
    const inside = await assign(
      { principal: other.ref, role: 'secrets-user', scope: 'prod/secrets/api' },
      admin.token,
    );
    assert.equal(
      inside.status,
      200,
      `granting what one holds, where one holds it, works: ${JSON.stringify(inside.body)}`,
    );
    const wider = await assign({ principal: other.ref, role: 'secrets-user', scope: 'prod' }, admin.token);
    assert.equal(wider.status, 403);
    const viaGroup = await b.call('POST', '/v1/groups', { body: { env: 'prod', name: 'ml-admins' } });
    assert.equal(viaGroup.status, 200);
    await b.call('PUT', '/v1/groups/prod/ml-admins/members', { body: { identity: admin.ref } });
    const toOwnGroup = await assign(
      { principal: 'group:prod/ml-admins', role: 'secrets-user', scope: 'prod/secrets/api' },
      admin.token,
    );
    assert.equal(toOwnGroup.status, 403, 'assigning to a group one belongs to is self-assignment');
  });

  test('a workload gets management actions only with --allow-management', async () => {
    const job = await login('prod', 'deployer');
    const refused = await assign({ principal: job.ref, role: 'secrets-officer', scope: 'prod/secrets/api' });
    assert.equal(refused.status, 403);
    assert.equal(refused.body.error.code, 'ManagementNotAllowed');
    const allowed = await assign({
      principal: job.ref,
      role: 'secrets-officer',
      scope: 'prod/secrets/api',
      allow_management: true,
    });
    assert.equal(allowed.status, 200);
    assert.equal(allowed.body.allow_management, true);
    assert.equal(
      (await b.call('PUT', '/v1/secrets/prod/api/key', { token: job.token, body: { value: 'rotated' } }))
        .status,
      200,
    );
    const user = await login('prod', 'carol', 'user');
    assert.equal(
      (await assign({ principal: user.ref, role: 'secrets-officer', scope: 'prod/secrets/api' })).status,
      200,
      'users need no flag',
    );
  });

  test('expired assignments grant nothing; revoked ones neither', async () => {
    const job = await login('prod', 'temp-job');
    const a = await assign({ principal: job.ref, role: 'secrets-user', scope: 'prod', expires: '1h' });
    assert.ok(a.body.expires_at);
    assert.equal((await b.call('GET', '/v1/secrets/prod/api/key', { token: job.token })).status, 200);
    await b.broker.services.storage.db
      .updateTable('assignments')
      .set({ expires_at: Date.now() - 1000 })
      .where('id', '=', a.body.id)
      .execute();
    assert.equal((await b.call('GET', '/v1/secrets/prod/api/key', { token: job.token })).status, 403);
    const b2 = await assign({ principal: job.ref, role: 'secrets-user', scope: 'prod' });
    assert.equal((await b.call('GET', '/v1/secrets/prod/api/key', { token: job.token })).status, 200);
    assert.equal((await b.call('DELETE', `/v1/access/assignments/${b2.body.id}`)).status, 200);
    assert.equal((await b.call('GET', '/v1/secrets/prod/api/key', { token: job.token })).status, 403);
  });

  test('groups from claims carry their assignments', async () => {
    await b.call('POST', '/v1/groups', { body: { env: 'prod', name: 'feature-team' } });
    await assign({ principal: 'group:prod/feature-team', role: 'secrets-user', scope: 'prod/secrets/db' });
    const member = await login('prod', 'feature-job', 'workload', ['feature-team']);
    assert.equal((await b.call('GET', '/v1/secrets/prod/db/password', { token: member.token })).status, 200);
    const outsider = await login('prod', 'other-job', 'workload', ['other-team']);
    assert.equal(
      (await b.call('GET', '/v1/secrets/prod/db/password', { token: outsider.token })).status,
      403,
    );
  });

  test('bad assignments get clear 4xx codes', async () => {
    const job = await login('prod', 'bad-input-job');
    const cases: [Record<string, unknown>, string][] = [
      [{ principal: job.ref, role: 'secrets-user', scope: 'prod', reason: ' ' }, 'ReasonRequired'],
      [{ principal: job.ref, role: 'no-such-role', scope: 'prod' }, 'RoleNotFound'],
      [{ principal: job.ref, role: 'secrets-user', scope: 'dev' }, 'CrossEnvironment'],
      [{ principal: job.ref, role: 'secrets-user', scope: 'prod/things/x' }, 'InvalidScope'],
      [{ principal: job.ref, role: 'secrets-user', scope: 'prod/secrets/../x' }, 'InvalidSecretName'],
      [{ principal: job.ref, role: 'credential-user', scope: 'prod/secrets/db' }, 'ScopeMismatch'],
      [{ principal: 'prod/nobody', role: 'secrets-user', scope: 'prod' }, 'IdentityNotFound'],
      [{ principal: job.ref, role: 'secrets-user', scope: 'prod', expires: 'soon' }, 'InvalidDuration'],
    ];
    for (const [body, code] of cases) {
      const res = await assign(body);
      assert.ok(res.status >= 400 && res.status < 500, `${code}: ${res.status}`);
      assert.equal(res.body.error.code, code);
    }
    assert.equal(
      (await b.call('DELETE', '/v1/access/assignments/asg_doesnotexist0000')).body.error.code,
      'AssignmentNotFound',
    );
    assert.equal(
      (await b.call('POST', '/v1/roles', { body: { name: 'x-role', actions: ['secrets/steal'] } })).body.error
        .code,
      'InvalidAction',
    );
  });

  test('custom roles, access check and effective permissions name their assignment', async () => {
    const role = await b.call('POST', '/v1/roles', {
      body: { name: 'db-reader', actions: ['secrets/get'], description: 'read db secrets' },
    });
    assert.equal(role.status, 200);
    const job = await login('prod', 'checker');
    const a = await assign({ principal: job.ref, role: 'db-reader', scope: 'prod/secrets/db' });
    const allow = await b.call('POST', '/v1/access/check', {
      body: { identity: job.ref, action: 'secrets/get', resource: 'prod/db/password' },
    });
    assert.deepEqual([allow.body.allowed, allow.body.assignment], [true, a.body.id]);
    const deny = await b.call('POST', '/v1/access/check', {
      body: { identity: job.ref, action: 'secrets/get', resource: 'prod/db-admin/password' },
    });
    assert.equal(deny.body.allowed, false);
    const eff = await b.call('GET', `/v1/access/effective?identity=${encodeURIComponent(job.ref)}`);
    assert.deepEqual(
      eff.body.items.map((p: any) => [p.action, p.scope, p.assignment]),
      [['secrets/get', 'prod/secrets/db', a.body.id]],
    );
    const roles = await b.call('GET', '/v1/roles', { token: job.token });
    assert.ok(roles.body.items.some((r: any) => r.name === 'administrator' && r.builtin));
  });

  test('every decision is audited with identity, action, resource, decision and assignment', async () => {
    const job = await login('prod', 'audited-job');
    const a = await assign({ principal: job.ref, role: 'secrets-user', scope: 'prod/secrets/db' });
    await b.call('GET', '/v1/secrets/prod/db/password', { token: job.token });
    await b.call('GET', '/v1/secrets/prod/api/key', { token: job.token });
    const entries = (await readFile(path.join(b.dataDir, 'audit.log'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .filter((e) => e.type === 'request' && e.auth?.identity === job.id);
    assert.deepEqual(
      entries.map((e) => [e.action, e.resource, e.outcome, e.auth.granted_by, e.auth.method, e.auth.env]),
      [
        ['secrets/get', 'prod/db/password', 'allowed', a.body.id, 'jwt', 'prod'],
        ['secrets/get', 'prod/api/key', 'denied', null, 'jwt', 'prod'],
      ],
    );
  });
});
