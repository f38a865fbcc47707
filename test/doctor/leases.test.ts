import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { type PostgresCluster, startPostgres } from '../support/postgres.js';
import { check, doctor, hintOf, jsonChecks, noLeak, ok } from './helpers.js';

/**
 * `custody doctor --creds ENV/ENGINE/ROLE [--expect D]` against a real PostgreSQL engine: doctor
 * issues a lease as the job's identity (an AppRole workload, which may not read engine roles),
 * revokes it at once, and judges the lease's TTL and max TTL (and the token's) against --expect.
 */
let b: TestBroker;
let cluster: PostgresCluster;
let adminUrl: string;
let caFile: string;
let job: { roleId: string; secretId: string };
const MLFLOW_TOKEN = `mlflow-canary-${Math.random().toString(36).slice(2)}-token`;

const env = (extra: Record<string, string | undefined> = {}) => ({
  CUSTODY_ADDR: b.url,
  CUSTODY_CACERT: caFile,
  CUSTODY_LOGIN: 'prod/approle/etl',
  CUSTODY_ROLE_ID: job.roleId,
  CUSTODY_SECRET_ID: job.secretId,
  ...extra,
});

/** Leases of a role and whether their users still exist in PostgreSQL. */
async function leasesOf(role: string): Promise<{ state: string; username: string; exists: boolean }[]> {
  const items = (await ok(b.call('GET', `/v1/leases?prefix=prod/warehouse/${role}`), 'leases')).items as {
    state: string;
    username: string;
  }[];
  const c = new pg.Client({ connectionString: adminUrl });
  await c.connect();
  try {
    const out = [];
    for (const l of items) {
      const r = await c.query('select 1 from pg_roles where rolname = $1', [l.username]);
      out.push({ state: l.state, username: l.username, exists: r.rowCount === 1 });
    }
    return out;
  } finally {
    await c.end();
  }
}

before(async () => {
  [b, cluster] = await Promise.all([startTestBroker(), startPostgres()]);
  adminUrl = await cluster.createDatabase('warehouse');
  caFile = path.join(b.dataDir, 'leases-ca.pem');
  await writeFile(caFile, b.ca);
  await ok(b.call('POST', '/v1/envs', { body: { name: 'prod' } }), 'env');
  await ok(
    b.call('PUT', '/v1/engines/prod/warehouse', {
      body: {
        type: 'postgresql',
        config: {
          connection_url: `postgres://127.0.0.1:${cluster.port}/warehouse`,
          username: cluster.superuser,
          password: cluster.password,
        },
      },
    }),
    'engine',
  );
  // A second engine on the same cluster, granted whole (so a missing role there is a 404, not a 403).
  await ok(
    b.call('PUT', '/v1/engines/prod/reports', {
      body: {
        type: 'postgresql',
        config: {
          connection_url: `postgres://127.0.0.1:${cluster.port}/warehouse`,
          username: cluster.superuser,
          password: cluster.password,
        },
      },
    }),
    'engine reports',
  );
  const grants = ['SELECT ON ALL TABLES IN SCHEMA public'];
  for (const [role, ttl, maxTtl] of [
    ['long', '1h', '48h'],
    ['short', '10m', '1h'],
    ['locked', '1h', '2h'],
  ])
    await ok(
      b.call('PUT', `/v1/engines/prod/warehouse/roles/${role}`, {
        body: { ttl, max_ttl: maxTtl, config: { grants } },
      }),
      `role ${role}`,
    );
  await ok(b.call('POST', '/v1/auth/methods/prod', { body: { type: 'approle' } }), 'approle');
  await ok(
    b.call('PUT', '/v1/auth/methods/prod/approle/roles/etl', {
      body: { token_ttl: '1h', token_max_ttl: '72h' },
    }),
    'auth role',
  );
  const roleId = (await ok(b.call('GET', '/v1/auth/methods/prod/approle/roles/etl/role-id'), 'rid')).role_id;
  const sid = await ok(
    b.call('POST', '/v1/auth/methods/prod/approle/roles/etl/secret-id', { body: {} }),
    'sid',
  );
  job = { roleId, secretId: sid.secret_id };
  const login = await ok(
    b.call('POST', '/v1/auth/login/prod/approle/etl', {
      body: { role_id: roleId, secret_id: sid.secret_id },
      token: null,
    }),
    'login',
  );
  await ok(
    b.call('PUT', '/v1/secrets/prod/mlflow', { body: { value: JSON.stringify({ token: MLFLOW_TOKEN }) } }),
    'secret',
  );
  await ok(
    b.call('POST', '/v1/access/assignments', {
      body: {
        principal: login.identity.id,
        role: 'secrets-user',
        scope: 'prod/secrets/mlflow',
        reason: 'doctor test',
      },
    }),
    'assign secret',
  );
  for (const scope of ['warehouse/long', 'warehouse/short', 'reports'])
    await ok(
      b.call('POST', '/v1/access/assignments', {
        body: {
          principal: login.identity.id,
          role: 'credential-user',
          scope: `prod/engines/${scope}`,
          reason: 'doctor test',
        },
      }),
      'assign',
    );
});

after(async () => {
  await b?.stop();
  await cluster?.stop();
});

describe('custody doctor --creds: leases against --expect (PostgreSQL engine)', () => {
  test('a lease that outlives the job: PASS; it was revoked and its database user dropped', async () => {
    const r = await doctor(['--creds', 'prod/warehouse/long', '--expect', '36h'], env());
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    check(r.stdout, 'configuration', 'WARN', /only the leases \(--creds\) are checked/);
    check(r.stdout, 'custody: authentication', 'PASS', /logged in via prod\/approle\/etl/);
    check(r.stdout, 'custody: token lifetime', 'PASS', /renews up to 72h/);
    check(
      r.stdout,
      'lease prod/warehouse/long',
      'PASS',
      /^ttl 60m, renewable up to 48h \(max TTL\) ≥ 36h \(a lease was issued and revoked at once\)$/,
    );
    check(
      r.stdout,
      'lifetimes',
      'PASS',
      /^lease prod\/warehouse\/long ends first, in 48h: all after the expected 36h$/,
    );
    const leases = await leasesOf('long');
    assert.equal(leases.length, 1);
    assert.equal(leases[0].state, 'revoked');
    assert.equal(leases[0].exists, false, 'the database user is gone');
    noLeak(r, [job.secretId]);
  });

  test('a lease whose max TTL ends before the job: WARN saying which ends first, with the fix', async () => {
    const r = await doctor(
      ['--creds', 'PG=prod/warehouse/short', '--creds', 'prod/warehouse/long', '--expect', '36h'],
      env(),
    );
    assert.equal(r.code, 0, `WARN is not a failure:\n${r.stdout}`);
    check(
      r.stdout,
      'lease prod/warehouse/short',
      'WARN',
      /^ttl 10m, renewable up to 60m \(max TTL\): it ends at its max TTL, 35h before the expected end of the job \(36h\)$/,
    );
    const hint = hintOf(r.stdout, 'lease prod/warehouse/short');
    assert.match(hint, /`custody engine role write prod\/warehouse\/short --max-ttl 36h`/);
    assert.match(hint, /custody run --files --on-rotate SIGHUP/);
    check(r.stdout, 'lease prod/warehouse/long', 'PASS');
    check(
      r.stdout,
      'lifetimes',
      'WARN',
      /^lease prod\/warehouse\/short ends first, in 60m; then lease prod\/warehouse\/long in 48h; 1 of them before the expected end of the job \(36h\)$/,
    );
    assert.ok((await leasesOf('short')).every((l) => l.state === 'revoked' && !l.exists));

    const j = await doctor(['--creds', 'prod/warehouse/short', '--expect', '36h', '--format', 'json'], env());
    assert.equal(j.code, 0);
    const body = jsonChecks(j);
    assert.equal(body.ok, true);
    assert.equal(body.checks.find((c) => c.name === 'lease prod/warehouse/short')!.status, 'WARN');
    assert.ok(!j.stdout.includes('"password"'), 'no credential field in the output');
  });

  test('a static token that ends before the job and before the lease: lifetimes FAIL naming the token', async () => {
    const login = await ok(
      b.call('POST', '/v1/auth/login/prod/approle/etl', {
        body: { role_id: job.roleId, secret_id: job.secretId },
        token: null,
      }),
      'login',
    );
    const r = await doctor(['--creds', 'prod/warehouse/long', '--expect', '100h'], {
      ...env({ CUSTODY_LOGIN: undefined, CUSTODY_ROLE_ID: undefined, CUSTODY_SECRET_ID: undefined }),
      CUSTODY_TOKEN: login.token,
    });
    assert.equal(r.code, 1, r.stdout);
    check(r.stdout, 'custody: token lifetime', 'FAIL', /before the expected 100h/);
    check(r.stdout, 'lease prod/warehouse/long', 'WARN', /52h before the expected end of the job \(100h\)/);
    check(
      r.stdout,
      'lifetimes',
      'FAIL',
      /^lease prod\/warehouse\/long ends first, in 48h; then the custody token \(max TTL\) in 72h; 2 of them before/,
    );
    noLeak(r, [login.token]);
  });

  test('no permission, no such role, a database that is down: FAIL with the fix', async () => {
    const locked = await doctor(['--creds', 'prod/warehouse/locked'], env());
    assert.equal(locked.code, 1, locked.stdout);
    check(
      locked.stdout,
      'lease prod/warehouse/locked',
      'FAIL',
      /^may not issue credentials: .*leases\/issue/,
    );
    assert.match(
      hintOf(locked.stdout, 'lease prod/warehouse/locked'),
      /`custody access assign <ENV\/IDENTITY> credential-user prod\/engines\/warehouse\/locked --reason/,
    );
    assert.equal((await leasesOf('locked')).length, 0, 'nothing was issued');

    const missing = await doctor(['--creds', 'prod/reports/nope', '--creds', 'prod/warehouse/long'], env());
    assert.equal(missing.code, 1, missing.stdout);
    check(missing.stdout, 'lease prod/reports/nope', 'FAIL', /^no such engine role: /);
    assert.match(
      hintOf(missing.stdout, 'lease prod/reports/nope'),
      /`custody engine role list prod\/reports`/,
    );
    check(
      missing.stdout,
      'lease prod/warehouse/long',
      'PASS',
      /^may issue \(a lease was issued and revoked at once\); ttl 60m/,
    );

    await cluster.pause();
    try {
      const down = await doctor(['--creds', 'prod/warehouse/long'], env());
      assert.equal(down.code, 1, down.stdout);
      check(
        down.stdout,
        'lease prod/warehouse/long',
        'FAIL',
        /^the engine could not create the credentials: /,
      );
      assert.match(hintOf(down.stdout, 'lease prod/warehouse/long'), /`custody engine show prod\/warehouse`/);
      noLeak(down, [cluster.password]);
    } finally {
      await cluster.resume();
    }
  });

  test('with the Custody provider: one login serves both; a broker that cannot be reached skips the leases', async () => {
    const custody = { MLFLOW_SECRETS_AUTH_ENABLE: 'custody', CUSTODY_MLFLOW_SECRET: 'prod/mlflow' };
    const r = await doctor(['--creds', 'prod/warehouse/long', '--expect', '36h'], env(custody));
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    check(r.stdout, 'custody: permission', 'PASS', /may read prod\/mlflow/);
    check(r.stdout, 'custody: secret format', 'PASS', /token \(mode: bearer\)/);
    check(r.stdout, 'lease prod/warehouse/long', 'PASS');
    check(r.stdout, 'lifetimes', 'PASS');
    assert.equal(
      r.stdout.match(/ custody: authentication — /g)?.length,
      1,
      'one login for the secret and the leases',
    );
    assert.equal(r.stdout.match(/ custody: token lifetime — /g)?.length, 1);
    noLeak(r, [MLFLOW_TOKEN, job.secretId]);

    const down = await doctor(
      ['--creds', 'prod/warehouse/long'],
      env({ ...custody, CUSTODY_ADDR: 'https://127.0.0.1:1' }),
    );
    assert.equal(down.code, 1, down.stdout);
    check(down.stdout, 'custody: reachable', 'FAIL', /connection refused/);
    check(down.stdout, 'lease prod/warehouse/long', 'FAIL', /skipped: no authenticated Custody session/);
  });

  test('malformed --creds: exit 2 with the expected shape, nothing sent', async () => {
    for (const bad of [
      'prod/warehouse',
      'prod/warehouse/long/extra',
      'prod//long',
      'prod/Ware house/long',
      'PG=',
    ]) {
      const r = await doctor(['--creds', bad], env());
      assert.equal(r.code, 2, `${bad}: ${r.stdout}${r.stderr}`);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, /--creds/);
      assert.match(r.stderr, /Example: --creds prod\/warehouse\/reader/);
    }
    const nothing = await doctor(['--creds', 'prod/warehouse/long'], { CUSTODY_ADDR: undefined });
    assert.equal(nothing.code, 1, nothing.stdout);
    check(nothing.stdout, 'leases', 'FAIL', /CUSTODY_ADDR and CUSTODY_TOKEN \(or CUSTODY_LOGIN\) not set/);
  });
});
