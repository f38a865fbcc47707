import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import {
  CustodyClient,
  type CustodyClientError,
  CustodyProvider,
  type Lease,
} from '../../src/client/index.js';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { type PostgresCluster, startPostgres } from '../support/postgres.js';

let b: TestBroker;
let cluster: PostgresCluster;
let adminUrl: string;
const logs: string[] = [];

async function ok(p: Promise<{ status: number; body: any }>, what: string): Promise<any> {
  const r = await p;
  assert.equal(r.status, 200, `${what}: ${JSON.stringify(r.body)}`);
  return r.body;
}

/** An AppRole login role in prod with the given token TTLs; returns its role id and a secret id. */
async function appRole(name: string, tokenTtl: string, maxTtl: string) {
  await ok(
    b.call('PUT', `/v1/auth/methods/prod/approle/roles/${name}`, {
      body: { token_ttl: tokenTtl, token_max_ttl: maxTtl },
    }),
    'put role',
  );
  const roleId = (await ok(b.call('GET', `/v1/auth/methods/prod/approle/roles/${name}/role-id`), 'role id'))
    .role_id as string;
  const secretId = (
    await ok(
      b.call('POST', `/v1/auth/methods/prod/approle/roles/${name}/secret-id`, { body: {} }),
      'secret id',
    )
  ).secret_id as string;
  // Log in once to create the identity, then grant it secrets and credentials in prod.
  const login = await ok(
    b.call('POST', `/v1/auth/login/prod/approle/${name}`, {
      body: { role_id: roleId, secret_id: secretId },
      token: null,
    }),
    'login',
  );
  for (const [role, scope] of [
    ['secrets-user', 'prod/secrets/app'],
    ['credential-user', 'prod/engines/warehouse/reader'],
  ]) {
    await ok(
      b.call('POST', '/v1/access/assignments', {
        body: { principal: login.identity.id, role, scope, reason: 'client test' },
      }),
      `assign ${role}`,
    );
  }
  return { roleId, secretId };
}

const clientFor = (
  role: string,
  creds: { roleId: string; secretId: string },
  extra: Partial<ConstructorParameters<typeof CustodyClient>[0]> = {},
) =>
  new CustodyClient({
    addr: b.url,
    caCert: b.ca,
    login: { env: 'prod', method: 'approle', role, approle: creds },
    log: (_l, m) => logs.push(m),
    logLevel: 'debug',
    env: {},
    ...extra,
  });

async function canLogin(user: string, password: string): Promise<boolean> {
  const u = new URL(adminUrl);
  u.username = user;
  u.password = password;
  const c = new pg.Client({ connectionString: u.toString(), connectionTimeoutMillis: 5000 });
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

let v1: string;
before(async () => {
  [b, cluster] = await Promise.all([startTestBroker(), startPostgres()]);
  adminUrl = await cluster.createDatabase('warehouse');
  await ok(b.call('POST', '/v1/envs', { body: { name: 'prod' } }), 'env');
  await ok(b.call('POST', '/v1/auth/methods/prod', { body: { type: 'approle' } }), 'approle method');
  v1 = (await ok(b.call('PUT', '/v1/secrets/prod/app/db', { body: { value: 'first-value' } }), 'set'))
    .version;
  await ok(
    b.call('PUT', '/v1/secrets/prod/app/db', {
      body: { value: '{"user":"svc","password":"s3cr3t-pw","port":5432}' },
    }),
    'set 2',
  );
  await ok(b.call('PUT', '/v1/secrets/prod/other/x', { body: { value: 'not yours' } }), 'set other');
  const u = new URL(adminUrl);
  await ok(
    b.call('PUT', '/v1/engines/prod/warehouse', {
      body: {
        type: 'postgresql',
        config: {
          connection_url: `postgres://${u.host}${u.pathname}`,
          username: cluster.superuser,
          password: cluster.password,
        },
      },
    }),
    'engine',
  );
  await ok(
    b.call('PUT', '/v1/engines/prod/warehouse/roles/reader', {
      body: { ttl: '3s', max_ttl: '5s', config: { grants: ['SELECT ON ALL TABLES IN SCHEMA public'] } },
    }),
    'engine role',
  );
});

after(async () => {
  await b?.stop();
  await cluster?.stop();
});

describe('CustodyClient against a real broker', () => {
  test('AppRole login, getSecret latest / version / #field, cached, errors with code and status', async () => {
    const creds = await appRole('trainer', '10m', '1h');
    const c = clientFor('trainer', creds);
    try {
      assert.equal(await c.getSecret('prod/app/db#user'), 'svc');
      assert.equal(await c.getSecret('prod/app/db#port'), '5432');
      assert.match(await c.getSecret('prod/app/db'), /^\{"user"/);
      assert.equal(await c.getSecret('prod/app/db', { version: v1 }), 'first-value');
      const self = await c.lookupSelf();
      assert.equal(self.display_name.includes('trainer') || self.meta.role === 'trainer', true);

      // Single flight through the client: ten concurrent reads of a new key, one audited broker read.
      await ok(b.call('PUT', '/v1/secrets/prod/app/hot', { body: { value: 'h' } }), 'set hot');
      const values = await Promise.all(Array.from({ length: 10 }, () => c.getSecret('prod/app/hot')));
      assert.deepEqual(values, Array(10).fill('h'));
      const reads = (await readFile(path.join(b.dataDir, 'audit.log'), 'utf8'))
        .split('\n')
        .filter((l) => l.includes('secrets/get') && l.includes('prod/app/hot') && l.includes('"request"'));
      assert.equal(reads.length, 1, `one broker read for ten concurrent reads (saw ${reads.length})`);

      await assert.rejects(c.getSecret('prod/app/missing'), (e: CustodyClientError) => {
        assert.equal(e.status, 404);
        assert.ok(e.code.length > 0);
        return true;
      });
      await assert.rejects(c.getSecret('prod/other/x'), (e: CustodyClientError) => e.status === 403);
      await assert.rejects(c.getSecret('prod/app/db#nope'), /has no field "nope"/);
      await assert.rejects(c.getSecret('prod/app/db#nope'), (e: Error) => !e.message.includes('s3cr3t-pw'));

      // A revoked token (401) → log in again and retry once.
      const token = await c.token();
      await ok(b.call('POST', '/v1/auth/token/revoke-self', { token }), 'revoke-self');
      assert.equal(await c.getSecret('prod/app/db#password', { noCache: true }), 's3cr3t-pw');
      assert.notEqual(await c.token(), token);
    } finally {
      await c.close();
    }
    assert.ok(logs.length > 0);
    assert.ok(
      logs.every((l) => !l.includes(creds.secretId) && !/cst_[A-Za-z0-9]{6}/.test(l)),
      'logs redacted',
    );
  });

  test('automatic renewal at ~2/3 TTL, then a new login before the max TTL', async () => {
    const creds = await appRole('short', '2s', '4s');
    const c = clientFor('short', creds);
    const events: string[] = [];
    c.on('renewed', () => events.push('renewed'));
    c.on('login', () => events.push('login'));
    try {
      const first = await c.token();
      await sleep(5000);
      assert.ok(events.includes('renewed'), events.join(','));
      assert.ok(events.filter((e) => e === 'login').length >= 2, `logged in again: ${events.join(',')}`);
      assert.notEqual(await c.token(), first);
      // Past the first token's max TTL the client still works.
      assert.equal(await c.getSecret('prod/app/db#user'), 'svc');
      assert.equal((await b.call('GET', '/v1/auth/token/lookup-self', { token: first })).status, 401);
    } finally {
      await c.close();
    }
  });

  test('issueCredentials on PostgreSQL: a lease that renews itself, warns at max TTL, revoked on close()', async () => {
    const creds = await appRole('etl', '10m', '1h');
    const c = clientFor('etl', creds);
    const warnings: string[] = [];
    c.on('warning', (m: string) => warnings.push(m));
    let lease: Lease | undefined;
    let second: Lease | undefined;
    try {
      lease = await c.issueCredentials('prod/warehouse/reader');
      assert.match(lease.id, /^prod\/warehouse\/reader\//);
      assert.ok(lease.username && lease.password);
      assert.ok(await canLogin(lease.username, lease.password));
      const renewed: Date[] = [];
      lease.on('renewed', (d: Date) => renewed.push(d));
      const firstExpiry = lease.expiresAt.getTime();
      await sleep(3500);
      assert.ok(renewed.length >= 1, 'renewed at least once');
      assert.ok(lease.expiresAt.getTime() > firstExpiry);
      assert.ok(
        warnings.some((w) => w.includes('max TTL')),
        warnings.join('\n'),
      );
      assert.ok(await canLogin(lease.username, lease.password), 'still valid after its first TTL');

      await lease.close();
      const look = await b.call('POST', '/v1/leases/lookup', { body: { lease_id: lease.id } });
      assert.equal(look.body.state, 'revoked');
      assert.equal(await canLogin(lease.username, lease.password), false);

      second = await c.issueCredentials('prod/warehouse/reader', { ttl: '3s' });
      assert.deepEqual(
        c.openLeases().map((l) => l.id),
        [second.id],
      );
    } finally {
      await c.close();
    }
    const look2 = await b.call('POST', '/v1/leases/lookup', { body: { lease_id: second!.id } });
    assert.equal(look2.body.state, 'revoked', 'client.close() revokes open leases');
    assert.equal(await canLogin(second!.username, second!.password), false);
    await assert.rejects(c.getSecret('prod/app/db'), /closed/);
  });

  test('token from options/env; CustodyProvider; a denial is not retried', async () => {
    const creds = await appRole('plain', '10m', '1h');
    const login = await ok(
      b.call('POST', '/v1/auth/login/prod/approle/plain', {
        body: { role_id: creds.roleId, secret_id: creds.secretId },
        token: null,
      }),
      'login',
    );
    const p = new CustodyProvider({
      env: { CUSTODY_ADDR: b.url, CUSTODY_TOKEN: login.token },
      caCert: b.ca,
    });
    try {
      assert.equal(await p.get('prod/app/db#user'), 'svc');
      const beforeLogs = b.logs.length;
      await assert.rejects(p.get('prod/other/x'), (e: CustodyClientError) => e.status === 403);
      const denials = b.logs.slice(beforeLogs).filter((l) => l.includes('/v1/secrets/prod/other/x'));
      assert.ok(denials.length <= 2, 'one request (one request + one response log line at most)');
    } finally {
      await p.close();
    }
    assert.throws(() => new CustodyClient({ env: {} }), /CUSTODY_ADDR/);
    assert.throws(() => new CustodyClient({ env: { CUSTODY_ADDR: b.url } }), /CUSTODY_TOKEN/);
  });

  test('a token given as is is looked up and renewed in the background', async () => {
    const creds = await appRole('given', '2s', '1h');
    const login = await ok(
      b.call('POST', '/v1/auth/login/prod/approle/given', {
        body: { role_id: creds.roleId, secret_id: creds.secretId },
        token: null,
      }),
      'login',
    );
    const c = new CustodyClient({ addr: b.url, caCert: b.ca, token: login.token, env: {}, cacheTtlMs: 0 });
    let renewed = 0;
    c.on('renewed', () => renewed++);
    try {
      assert.equal(await c.getSecret('prod/app/db#user'), 'svc');
      await sleep(2600);
      assert.ok(renewed >= 1, 'renewed before expiry');
      assert.equal(await c.getSecret('prod/app/db#user'), 'svc', 'still valid past its first TTL');
    } finally {
      await c.close();
    }
  });
});
