import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { type PostgresCluster, startPostgres } from '../support/postgres.js';

let cluster: PostgresCluster;
let b: TestBroker;
let adminUrl: string;
let jobToken: string;

const pgUrl = (user: string, password: string) => {
  const u = new URL(adminUrl);
  u.username = user;
  u.password = password;
  return u.toString();
};

async function canLogin(user: string, password: string): Promise<boolean> {
  const c = new pg.Client({ connectionString: pgUrl(user, password), connectionTimeoutMillis: 5000 });
  try {
    await c.connect();
    await c.query('select 1');
    return true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => {});
  }
}

async function roleExists(user: string): Promise<boolean> {
  const c = new pg.Client({ connectionString: adminUrl });
  await c.connect();
  try {
    return (await c.query('select 1 from pg_roles where rolname = $1', [user])).rowCount === 1;
  } finally {
    await c.end();
  }
}

async function waitFor(what: string, check: () => Promise<boolean>, ms = 15_000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.fail(`timed out waiting for ${what}`);
}

before(async () => {
  cluster = await startPostgres();
  adminUrl = await cluster.createDatabase('warehouse');
  const c = new pg.Client({ connectionString: adminUrl });
  await c.connect();
  await c.query('create table features (id int primary key, v text)');
  await c.query("insert into features values (1, 'x')");
  await c.end();
  process.env.CUSTODY_REAPER_INTERVAL_MS = '200';
  b = await startTestBroker();
  delete process.env.CUSTODY_REAPER_INTERVAL_MS;
  await b.call('POST', '/v1/envs', { body: { name: 'prod' } });
  const u = new URL(adminUrl);
  const conf = await b.call('PUT', '/v1/engines/prod/warehouse', {
    body: {
      type: 'postgresql',
      config: {
        connection_url: `postgres://${u.host}${u.pathname}`,
        username: cluster.superuser,
        password: cluster.password,
      },
    },
  });
  assert.equal(conf.status, 200, JSON.stringify(conf.body));
  assert.ok(
    !JSON.stringify(conf.body).includes(cluster.password),
    'the engine config is shown without its password',
  );
  const role = await b.call('PUT', '/v1/engines/prod/warehouse/roles/reader', {
    body: { ttl: '1h', max_ttl: '2h', config: { grants: ['SELECT ON ALL TABLES IN SCHEMA public'] } },
  });
  assert.equal(role.status, 200, JSON.stringify(role.body));
  const { identities, tokens } = b.broker.services;
  const job = await identities.upsertFromLogin({
    env: 'prod',
    authMethod: 'jwt',
    loginRole: 't',
    kind: 'workload',
    name: `trainer"; DROP TABLE features; --`,
    metadata: {},
  });
  jobToken = (
    await tokens.create({
      policies: [],
      identityId: job.id,
      env: 'prod',
      authMethod: 'jwt',
      ttlSeconds: 3600,
    })
  ).token;
  await b.call('POST', '/v1/access/assignments', {
    body: {
      principal: job.id,
      role: 'credential-user',
      scope: 'prod/engines/warehouse/reader',
      reason: 'training job',
    },
  });
});

after(async () => {
  await b?.stop();
  await cluster?.stop();
});

describe('PostgreSQL leases through the broker', () => {
  test('issue → the credentials work within their grants → revoke → refused, no leftover role', async () => {
    const res = await b.call('POST', '/v1/creds/prod/warehouse/reader', {
      token: jobToken,
      body: { ttl: '10m' },
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const { lease_id, username, password } = res.body;
    assert.match(lease_id, /^prod\/warehouse\/reader\/[A-Za-z0-9_-]{16}$/);
    assert.match(username, /^[a-z0-9_]{1,63}$/, 'a hostile identity name still gives a safe username');
    assert.ok(res.body.lease_duration > 590 && res.body.lease_duration <= 600);
    assert.ok(!res.body.data.connection_url.includes(password));

    const c = new pg.Client({ connectionString: pgUrl(username, password) });
    await c.connect();
    assert.equal((await c.query('select v from features')).rows[0].v, 'x');
    await assert.rejects(c.query("insert into features values (2, 'y')"), /permission denied/);
    await c.end();

    const look = await b.call('POST', '/v1/leases/lookup', { token: jobToken, body: { lease_id } });
    assert.equal(look.body.state, 'active');
    const renewed = await b.call('POST', '/v1/leases/renew', {
      token: jobToken,
      body: { lease_id, increment: '5h' },
    });
    assert.equal(renewed.status, 200);
    assert.equal(renewed.body.capped, true, 'the reply says the max TTL cut the increment');
    assert.equal(renewed.body.expires_at, renewed.body.max_expires_at);

    const rev = await b.call('POST', '/v1/leases/revoke', { token: jobToken, body: { lease_id } });
    assert.equal(rev.status, 200, JSON.stringify(rev.body));
    assert.equal(rev.body.state, 'revoked');
    assert.equal(await canLogin(username, password), false);
    assert.equal(await roleExists(username), false);
    const c2 = new pg.Client({ connectionString: adminUrl });
    await c2.connect();
    assert.equal(
      (await c2.query('select count(*)::int as n from features')).rows[0].n,
      1,
      'the injection attempt did nothing',
    );
    await c2.end();
  });

  test('a short lease is revoked by the reaper within seconds of expiry', async () => {
    const res = await b.call('POST', '/v1/creds/prod/warehouse/reader', {
      token: jobToken,
      body: { ttl: 2 },
    });
    const { username, password, lease_id } = res.body;
    assert.equal(await canLogin(username, password), true);
    await waitFor('the reaper to revoke the expired lease', async () => !(await roleExists(username)));
    const look = await b.call('POST', '/v1/leases/lookup', { body: { lease_id } });
    assert.equal(look.body.state, 'revoked');
    const audit = await readFile(path.join(b.dataDir, 'audit.log'), 'utf8');
    assert.ok(
      audit.split('\n').some((l) => l.includes('"door":"internal"') && l.includes(lease_id)),
      'reaper revocations are audited',
    );
    assert.ok(!audit.includes(password), 'the password is never in the audit trail');
  });

  test('revoking a token ends the leases it (or a child token) issued; no renewal after that', async () => {
    const { tokens } = b.broker.services;
    const self = await b.call('GET', '/v1/auth/token/lookup-self', { token: jobToken });
    // A parent token for the job and a child of it: revoking the parent ends the child's leases too.
    const parent = await tokens.create({
      policies: [],
      identityId: self.body.identity_id,
      env: 'prod',
      authMethod: 'jwt',
      ttlSeconds: 3600,
    });
    const child = await tokens.create({
      policies: [],
      identityId: self.body.identity_id,
      env: 'prod',
      authMethod: 'jwt',
      ttlSeconds: 600,
      parent: parent.info,
    });
    const issued = [];
    for (const t of [parent.token, child.token]) {
      const r = await b.call('POST', '/v1/creds/prod/warehouse/reader', { token: t, body: { ttl: '10m' } });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      issued.push(r.body);
    }
    // A lease of another token of the same identity is not touched.
    const other = await b.call('POST', '/v1/creds/prod/warehouse/reader', {
      token: jobToken,
      body: { ttl: '10m' },
    });
    const rev = await b.call('POST', '/v1/auth/token/revoke', { body: { token: parent.token } });
    assert.equal(rev.status, 200, JSON.stringify(rev.body));
    assert.equal(rev.body.revoked, 2);
    for (const l of issued) {
      await waitFor(
        'the lease of the revoked token to be revoked',
        async () => !(await roleExists(l.username)),
      );
      const look = await b.call('POST', '/v1/leases/lookup', { body: { lease_id: l.lease_id } });
      assert.equal(look.body.state, 'revoked');
      const renew = await b.call('POST', '/v1/leases/renew', {
        token: jobToken,
        body: { lease_id: l.lease_id },
      });
      assert.equal(renew.status, 400);
      assert.equal(renew.body.error.code, 'LeaseNotActive');
    }
    assert.equal(await canLogin(other.body.username, other.body.password), true);
    const kept = await b.call('POST', '/v1/leases/lookup', { body: { lease_id: other.body.lease_id } });
    assert.equal(kept.body.state, 'active');
    await b.call('POST', '/v1/leases/revoke', { body: { lease_id: other.body.lease_id } });
  });

  test('outage: revocations fail while the database is down, are retried, and complete when it is back', async () => {
    const issued = await Promise.all(
      [1, 2, 3].map(
        async () =>
          (await b.call('POST', '/v1/creds/prod/warehouse/reader', { token: jobToken, body: { ttl: 2 } }))
            .body,
      ),
    );
    await cluster.pause();
    try {
      // Each lease is in a retry cycle: failed at least once, still not revoked, error recorded.
      await waitFor(
        'revocations to fail',
        async () => {
          const list = await b.call('GET', '/v1/leases?prefix=prod/warehouse/');
          return issued.every((l) => {
            const item = list.body.items.find((i: any) => i.lease_id === l.lease_id);
            return item && item.attempts >= 1 && item.state !== 'revoked' && item.last_error;
          });
        },
        30_000,
      );
      const failed = await b.call('GET', '/v1/leases?prefix=prod/warehouse/');
      const one = failed.body.items.find((i: any) => i.lease_id === issued[0].lease_id);
      assert.ok(!one.last_error.includes(cluster.password));
      const stuck = await b.call('GET', '/v1/leases?prefix=prod/warehouse/&state=revoke-failed');
      assert.equal(stuck.status, 200);
      const metrics = await b.call('GET', '/metrics', { token: null });
      assert.match(metrics.body, /custody_lease_revocations_total\{outcome="failed"\} [1-9]/);
    } finally {
      await cluster.resume();
    }
    await waitFor(
      'retries to revoke every lease',
      async () => {
        for (const l of issued) if (await roleExists(l.username)) return false;
        return true;
      },
      40_000,
    );
  });

  test('revoke --force on a gone engine says what it leaves behind; prefix revocation; owner-or-action rule', async () => {
    const issuedA = await b.call('POST', '/v1/creds/prod/warehouse/reader', { token: jobToken });
    assert.equal(issuedA.status, 200, JSON.stringify(issuedA.body));
    const a = issuedA.body;
    const other = await b.broker.services.identities.upsertFromLogin({
      env: 'prod',
      authMethod: 'jwt',
      loginRole: 't',
      kind: 'workload',
      name: `other-${randomBytes(3).toString('hex')}`,
      metadata: {},
    });
    const otherToken = (
      await b.broker.services.tokens.create({
        policies: [],
        identityId: other.id,
        env: 'prod',
        ttlSeconds: 600,
      })
    ).token;
    const denied = await b.call('POST', '/v1/leases/revoke', {
      token: otherToken,
      body: { lease_id: a.lease_id },
    });
    assert.equal(denied.status, 403, "someone else's lease needs leases/revoke");
    const forced = await b.call('POST', '/v1/leases/revoke', { body: { lease_id: a.lease_id, force: true } });
    assert.equal(forced.body.state, 'revoked');
    assert.match(forced.body.left_behind, new RegExp(a.username));
    assert.equal(await roleExists(a.username), true, 'force does not touch the backend');
    // clean up what force left behind
    const c = new pg.Client({ connectionString: adminUrl });
    await c.connect();
    await c.query(`drop owned by "${a.username}"; drop role "${a.username}"`);
    await c.end();

    const many = await Promise.all(
      [1, 2].map(
        async () => (await b.call('POST', '/v1/creds/prod/warehouse/reader', { token: jobToken })).body,
      ),
    );
    const bulk = await b.call('POST', '/v1/leases/revoke-prefix', {
      body: { prefix: 'prod/warehouse/reader/' },
    });
    assert.equal(bulk.status, 200, JSON.stringify(bulk.body));
    for (const l of many) assert.equal(await roleExists(l.username), false);
    assert.equal(bulk.body.states.revoked, bulk.body.leases.length);
  });

  test('bad lease input gets clear 4xx codes', async () => {
    const cases: [string, string, unknown, string][] = [
      ['POST', '/v1/leases/lookup', { lease_id: '../../etc' }, 'InvalidLeaseId'],
      ['POST', '/v1/leases/lookup', { lease_id: 'prod/warehouse/reader/AAAAAAAAAAAAAAAA' }, 'LeaseNotFound'],
      ['POST', '/v1/creds/prod/warehouse/nope', {}, 'RoleNotFound'],
      ['POST', '/v1/creds/prod/nope/reader', {}, 'EngineNotFound'],
      ['POST', '/v1/creds/prod/warehouse/reader', { ttl: 'long' }, 'InvalidDuration'],
      ['PUT', '/v1/engines/prod/bad', { type: 'oracle', config: {} }, 'UnknownEngineType'],
    ];
    for (const [m, p, body, code] of cases) {
      const res = await b.call(m, p, { body });
      assert.ok(res.status >= 400 && res.status < 500, `${p}: ${res.status} ${JSON.stringify(res.body)}`);
      assert.equal(res.body.error.code, code);
    }
    const wrongPw = await b.call('PUT', '/v1/engines/prod/bad', {
      body: {
        type: 'postgresql',
        config: {
          connection_url: `postgres://${new URL(adminUrl).host}/warehouse`,
          username: cluster.superuser,
          password: 'wrong-password-canary',
        },
      },
    });
    assert.ok(wrongPw.status >= 400 && wrongPw.status < 500);
    assert.ok(!JSON.stringify(wrongPw.body).includes('wrong-password-canary'));
  });
});
