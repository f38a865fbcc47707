import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import https from 'node:https';
import { createRequire } from 'node:module';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { type PostgresCluster, startPostgres } from '../support/postgres.js';

/**
 * The official Node client, node-vault 0.12, unmodified, against the Vault door; permission parity
 * between the native API and the Vault door; and the raw wire details clients depend on (exact
 * Content-Type, error shapes, the LIST verb on a kept-alive connection, sealed answers).
 */

type Json = Record<string, any>;
interface VaultClient {
  token: string | undefined;
  read(path: string): Promise<Json>;
  write(path: string, data: Json): Promise<Json>;
  update(path: string, data: Json): Promise<Json>;
  list(path: string): Promise<Json>;
  delete(path: string): Promise<Json>;
  health(args?: Json): Promise<Json>;
  status(): Promise<Json>;
  tokenLookupSelf(): Promise<Json>;
  tokenRenewSelf(args?: Json): Promise<Json>;
  tokenCreate(args?: Json): Promise<Json>;
  tokenRevokeSelf(): Promise<Json>;
  approleLogin(args: Json): Promise<Json>;
  generateDatabaseCredentials(args: Json): Promise<Json>;
  renew(args: Json): Promise<Json>;
  revoke(args: Json): Promise<Json>;
  revokePrefix(args: Json): Promise<Json>;
}
type VaultError = Error & { response: { statusCode: number; body: any } };
const nodeVault = createRequire(import.meta.url)('node-vault') as (config: Json) => VaultClient;

let b: TestBroker;
let cluster: PostgresCluster;
let adminUrl: string;

const vault = (token: string | undefined, extra: Json = {}) =>
  nodeVault({ endpoint: `${b.url}/vault`, token, requestOptions: { ca: b.ca }, ...extra });

async function ok(p: Promise<{ status: number; body: any }>, what: string): Promise<any> {
  const r = await p;
  assert.equal(r.status, 200, `${what}: ${JSON.stringify(r.body)}`);
  return r.body;
}

async function rejected(p: Promise<unknown>, status: number): Promise<VaultError> {
  try {
    await p;
  } catch (err) {
    const e = err as VaultError;
    assert.equal(e.response?.statusCode, status, `${e.message} ${JSON.stringify(e.response?.body)}`);
    return e;
  }
  assert.fail(`expected a ${status} rejection`);
}

async function identityToken(env: string, name: string) {
  const { identities, tokens } = b.broker.services;
  const identity = await identities.upsertFromLogin({
    env,
    authMethod: 'jwt',
    loginRole: 'job',
    kind: 'workload',
    name,
    metadata: {},
  });
  const { token } = await tokens.create({
    policies: [],
    identityId: identity.id,
    env,
    authMethod: 'jwt',
    ttlSeconds: 3600,
  });
  return { id: identity.id, token };
}

const assign = (principal: string, role: string, scope: string) =>
  ok(
    b.call('POST', '/v1/access/assignments', { body: { principal, role, scope, reason: 'test' } }),
    'assign',
  );

async function auditEntries(): Promise<any[]> {
  const text = await readFile(path.join(b.dataDir, 'audit.log'), 'utf8');
  return text
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}

/** One raw HTTPS request (any method, LIST included) on the given agent. */
function raw(
  method: string,
  urlPath: string,
  opts: { headers?: Record<string, string>; agent?: https.Agent; body?: string } = {},
): Promise<{ status: number; headers: Record<string, any>; body: any; reused: boolean }> {
  const u = new URL(b.url);
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: u.hostname,
        port: u.port,
        method,
        path: urlPath,
        ca: b.ca,
        headers: opts.headers,
        agent: opts.agent,
      },
      (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => {
          let body: any = text;
          try {
            body = text ? JSON.parse(text) : null;
          } catch {}
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, reused: req.reusedSocket });
        });
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

async function canLogin(user: string, password: string): Promise<boolean> {
  const u = new URL(adminUrl);
  u.username = user;
  u.password = password;
  const c = new pg.Client({ connectionString: u.toString(), connectionTimeoutMillis: 5000 });
  try {
    await c.connect();
    await c.query('select v from features');
    return true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => {});
  }
}

before(async () => {
  cluster = await startPostgres();
  adminUrl = await cluster.createDatabase('warehouse');
  const c = new pg.Client({ connectionString: adminUrl });
  await c.connect();
  await c.query('create table features (id int primary key, v text)');
  await c.query("insert into features values (1, 'x')");
  await c.end();
  b = await startTestBroker();
  for (const name of ['dev', 'prod']) await ok(b.call('POST', '/v1/envs', { body: { name } }), name);
});

after(async () => {
  await b?.stop();
  await cluster?.stop();
});

describe('node-vault 0.12 against the Vault door', () => {
  test('read, write, update, list (LIST verb and ?list=1), delete, health and token self-service', async () => {
    const v = vault(b.rootToken);
    const health = await v.health();
    assert.equal(health.sealed, false);
    assert.equal((await v.status()).sealed, false);

    const w = await v.write('secret/data/app/db', { data: { user: 'svc', password: 'pw-1' } });
    assert.equal(w.data.version, 1);
    await v.write('secret/data/app/api', { data: { key: 'k' } });
    await v.write('secret/data/app/nested/deep', { data: { x: '1' } });
    const r = await v.read('secret/data/app/db');
    assert.deepEqual(r.data.data, { user: 'svc', password: 'pw-1' });
    assert.equal(r.data.metadata.version, 1);

    const listed = await v.list('secret/metadata/app');
    assert.deepEqual(listed.data.keys, ['api', 'db', 'nested/']);
    const get = await vault(b.rootToken, { noCustomHTTPVerbs: true }).list('secret/metadata/app/');
    assert.deepEqual(get.data.keys, ['api', 'db', 'nested/'], 'GET ?list=1 answers the same');
    await rejected(v.list('secret/metadata/none'), 404);

    // A server-side JSON merge patch (null removes a key), as a check-and-set write.
    const patched = await v.update('secret/data/app/db', { data: { password: null, host: 'db.internal' } });
    assert.equal(patched.data.version, 2);
    assert.deepEqual((await v.read('secret/data/app/db')).data.data, { user: 'svc', host: 'db.internal' });

    await v.delete('secret/data/app/db');
    const gone = await rejected(v.read('secret/data/app/db'), 404);
    assert.equal(gone.response.body.data.data, null);
    assert.notEqual(gone.response.body.data.metadata.deletion_time, '');
    assert.equal((await v.read('secret/data/app/db?version=1')).data.data.password, 'pw-1');
    await v.write('secret/undelete/app/db', { versions: [2] });
    assert.equal((await v.read('secret/data/app/db')).data.data.host, 'db.internal');
    await v.delete('secret/metadata/app/api');
    await rejected(v.read('secret/data/app/api'), 404);
    const rewrite = await rejected(v.write('secret/data/app/api', { data: { key: 'k2' } }), 400);
    assert.match(rewrite.message, /deleted and awaiting purge: recover it/);
    const missing = await rejected(v.read('secret/data/app/never'), 404);
    assert.deepEqual(missing.response.body, { errors: [] });

    const self = await v.tokenLookupSelf();
    assert.ok(self.data.policies.includes('root'));
    const child = await v.tokenCreate({ ttl: '15m', display_name: 'node-child' });
    const cv = vault(child.auth.client_token);
    assert.equal((await cv.tokenLookupSelf()).data.display_name, 'node-child');
    const renewed = await cv.tokenRenewSelf({ increment: '30m' });
    assert.ok(renewed.auth.lease_duration > 900);
    await cv.tokenRevokeSelf();
    const denied = await rejected(cv.tokenLookupSelf(), 403);
    assert.equal(denied.message, 'permission denied');
  });

  test('approleLogin adopts the token; the role reads only its grant', async () => {
    await ok(b.call('POST', '/v1/auth/methods/prod', { body: { type: 'approle', name: 'ci' } }), 'method');
    await ok(b.call('PUT', '/v1/auth/methods/prod/ci/roles/deployer', { body: {} }), 'role');
    const { role_id } = await ok(b.call('GET', '/v1/auth/methods/prod/ci/roles/deployer/role-id'), 'role id');
    const { secret_id } = await ok(
      b.call('POST', '/v1/auth/methods/prod/ci/roles/deployer/secret-id', { body: {} }),
      'secret id',
    );
    const deployer = await b.broker.services.identities.upsertFromLogin({
      env: 'prod',
      authMethod: 'ci',
      loginRole: 'deployer',
      kind: 'workload',
      name: 'deployer',
      metadata: {},
    });
    await assign(deployer.id, 'secrets-user', 'prod/secrets/deploy');
    const root = vault(b.rootToken);
    await root.write('prod/data/deploy/registry', { data: { token: 'reg-token' } });
    await root.write('prod/data/other/thing', { data: { a: 'b' } });

    const v = vault(undefined);
    // `auth/<env>/<method>` reaches a method outside the default environment.
    const res = await v.approleLogin({ mount_point: 'prod/ci', role_id, secret_id });
    assert.equal(v.token, res.auth.client_token, 'node-vault adopts the login token');
    assert.equal(res.auth.metadata.role_name, 'deployer');
    assert.deepEqual((await v.read('prod/data/deploy/registry')).data.data, { token: 'reg-token' });
    const refused = await rejected(v.read('prod/data/other/thing'), 403);
    assert.equal(refused.message, 'permission denied');
    await rejected(
      vault(undefined).approleLogin({ mount_point: 'prod/ci', role_id, secret_id: 'wrong' }),
      400,
    );
  });

  test('generateDatabaseCredentials / read database/creds, renew, revoke, revokePrefix on PostgreSQL', async () => {
    const u = new URL(adminUrl);
    await ok(
      b.call('PUT', '/v1/engines/dev/analytics', {
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
      b.call('PUT', '/v1/engines/dev/analytics/roles/reader', {
        body: { ttl: '10m', max_ttl: '1h', config: { grants: ['SELECT ON ALL TABLES IN SCHEMA public'] } },
      }),
      'role',
    );
    const job = await identityToken('dev', 'nightly-etl');
    await assign(job.id, 'credential-user', 'dev/engines/analytics/reader');
    const v = vault(job.token);

    const creds = await v.read('database/creds/reader');
    assert.match(creds.lease_id, /^dev\/analytics\/reader\//);
    assert.equal(creds.renewable, true);
    assert.ok(creds.lease_duration > 590 && creds.lease_duration <= 600);
    assert.ok(await canLogin(creds.data.username, creds.data.password));
    const second = await v.generateDatabaseCredentials({ databasePath: 'analytics', name: 'reader' });
    assert.ok(await canLogin(second.data.username, second.data.password));

    const renewed = await v.renew({ lease_id: creds.lease_id, increment: 1200 });
    assert.equal(renewed.lease_id, creds.lease_id);
    assert.ok(renewed.lease_duration > 1100 && renewed.lease_duration <= 1200);

    await v.revoke({ lease_id: creds.lease_id });
    assert.equal(await canLogin(creds.data.username, creds.data.password), false, 'refused after revoke');
    assert.ok(await canLogin(second.data.username, second.data.password), 'the other lease is untouched');

    // Revoking by prefix needs leases/revoke on the engine role: the job (credential-user) may not.
    await rejected(v.revokePrefix({ path_prefix: 'analytics/creds/reader' }), 403);
    await vault(b.rootToken).revokePrefix({ path_prefix: 'analytics/creds/reader' });
    assert.equal(
      await canLogin(second.data.username, second.data.password),
      false,
      'refused after revoke-prefix',
    );

    // `database/` resolves only while exactly one database engine has the role.
    const root = vault(b.rootToken);
    await rejected(root.read('database/creds/nope'), 404);
    await ok(
      b.call('PUT', '/v1/engines/dev/replica', {
        body: {
          type: 'postgresql',
          config: {
            connection_url: `postgres://${u.host}${u.pathname}`,
            username: cluster.superuser,
            password: cluster.password,
          },
        },
      }),
      'second engine',
    );
    await ok(b.call('PUT', '/v1/engines/dev/replica/roles/reader', { body: { config: {} } }), 'second role');
    const ambiguous = await rejected(root.read('database/creds/reader'), 400);
    assert.match(ambiguous.message, /ambiguous.*analytics, replica/);
    const denied = await rejected(v.read('database/creds/reader'), 403);
    assert.equal(
      denied.message,
      'permission denied',
      'an unresolved alias tells a caller without grants nothing',
    );
    const explicit = await v.read('dev/analytics/creds/reader');
    assert.ok(await canLogin(explicit.data.username, explicit.data.password), '<env>/<engine>/creds/<role>');
    await root.revoke({ lease_id: explicit.lease_id });
  });
});

describe('permission parity between the native API and the Vault door', () => {
  test('the same identity is allowed and denied the same secrets, and both doors are audited', async () => {
    const job = await identityToken('dev', 'parity-job');
    await assign(job.id, 'secrets-user', 'dev/secrets/team-a');
    const root = vault(b.rootToken);
    await root.write('secret/data/team-a/db', { data: { p: 'a' } });
    await root.write('secret/data/team-b/db', { data: { p: 'b' } });

    const native = await b.call('GET', '/v1/secrets/dev/team-b/db', { token: job.token });
    assert.equal(native.status, 403);
    const viaVault = await rejected(vault(job.token).read('secret/data/team-b/db'), 403);
    assert.equal(viaVault.message, 'permission denied');
    assert.equal(
      viaVault.response.body.errors[1],
      native.body.error.message,
      'the same decision, same reason',
    );

    assert.equal((await b.call('GET', '/v1/secrets/dev/team-a/db', { token: job.token })).status, 200);
    assert.deepEqual((await vault(job.token).read('secret/data/team-a/db')).data.data, { p: 'a' });

    const nativeWrite = await b.call('PUT', '/v1/secrets/dev/team-a/db', {
      token: job.token,
      body: { value: 'x' },
    });
    assert.equal(nativeWrite.status, 403);
    await rejected(vault(job.token).write('secret/data/team-a/db', { data: { p: 'x' } }), 403);

    const entries = await auditEntries();
    const denials = entries.filter(
      (e) =>
        e.type === 'request' &&
        e.outcome === 'denied' &&
        e.action === 'secrets/get' &&
        e.resource === 'dev/team-b/db' &&
        e.auth?.identity === job.id,
    );
    assert.deepEqual(denials.map((e) => e.door).sort(), ['native', 'vault']);
    const writes = entries.filter(
      (e) =>
        e.type === 'request' &&
        e.outcome === 'denied' &&
        e.action === 'secrets/set' &&
        e.auth?.identity === job.id,
    );
    assert.deepEqual(writes.map((e) => e.door).sort(), ['native', 'vault']);
    const reads = entries.filter(
      (e) =>
        e.type === 'response' &&
        e.outcome === 'ok' &&
        e.action === 'secrets/get' &&
        e.resource === 'dev/team-a/db' &&
        e.auth?.identity === job.id,
    );
    assert.deepEqual(reads.map((e) => e.door).sort(), ['native', 'vault']);
    assert.equal(new Set(reads.map((e) => e.auth.granted_by)).size, 1, 'granted by the same assignment');
  });
});

describe('Vault wire details', () => {
  test('Content-Type is exactly application/json on answers and errors; unknown paths 404', async () => {
    const h = { 'x-vault-token': b.rootToken };
    const okRes = await raw('GET', '/vault/v1/auth/token/lookup-self', { headers: h });
    assert.equal(okRes.status, 200);
    assert.equal(okRes.headers['content-type'], 'application/json');
    for (const k of [
      'request_id',
      'lease_id',
      'renewable',
      'lease_duration',
      'data',
      'wrap_info',
      'warnings',
      'auth',
    ])
      assert.ok(k in okRes.body, k);
    const unknown = await raw('GET', '/vault/v1/pki/issue/web', { headers: h });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.headers['content-type'], 'application/json');
    assert.match(unknown.body.errors[0], /no handler for route/);
    const outside = await raw('GET', '/vault/nothing', { headers: h });
    assert.deepEqual([outside.status, outside.body], [404, { errors: [] }]);
    const badToken = await raw('GET', '/vault/v1/auth/token/lookup-self', {
      headers: { 'x-vault-token': 'nope-nope-nope' },
    });
    assert.equal(badToken.status, 403);
    assert.equal(badToken.body.errors[0], 'permission denied');
    const noToken = await raw('GET', '/vault/v1/secret/data/x');
    assert.equal(noToken.status, 403);
    const bearer = await raw('GET', '/vault/v1/auth/token/lookup-self', {
      headers: { authorization: `Bearer ${b.rootToken}` },
    });
    assert.equal(bearer.status, 200, 'Authorization: Bearer works like X-Vault-Token');
    const ns = await raw('GET', '/vault/v1/secret/data/x', {
      headers: { ...h, 'x-vault-namespace': 'team' },
    });
    assert.equal(ns.status, 400);
    assert.match(ns.body.errors[0], /namespaces are not supported/);
    const wrap = await raw('GET', '/vault/v1/secret/data/x', { headers: { ...h, 'x-vault-wrap-ttl': '60' } });
    assert.equal(wrap.status, 400);
    const badJson = await raw('POST', '/vault/v1/secret/data/x', {
      headers: { ...h, 'content-type': 'application/json' },
      body: '{nope',
    });
    assert.equal(badJson.status, 400);
    assert.match(badJson.body.errors[0], /failed to parse JSON/);
    const noData = await raw('POST', '/vault/v1/secret/data/x', { headers: h, body: '{"options":{}}' });
    assert.deepEqual([noData.status, noData.body.errors[0]], [400, 'no data provided']);
    const native = await raw('GET', '/v1/sys/health');
    assert.equal(native.status, 200);
    assert.ok('storage' in native.body, 'the native /v1 routes are untouched by the Vault door');
  });

  test('LIST works on a kept-alive connection, closes it, and is refused outside the Vault prefix', async () => {
    await vault(b.rootToken).write('secret/data/keepalive/one', { data: { a: '1' } });
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: b.ca });
    try {
      const h = { 'x-vault-token': b.rootToken };
      const first = await raw('GET', '/vault/v1/sys/health', { agent, headers: h });
      assert.equal(first.status, 200);
      const listed = await raw('LIST', '/vault/v1/secret/metadata/keepalive', { agent, headers: h });
      assert.equal(listed.reused, true, 'the LIST went over the kept-alive connection');
      assert.equal(listed.status, 200);
      assert.equal(listed.headers.connection, 'close');
      assert.equal(listed.headers['content-type'], 'application/json');
      assert.deepEqual(listed.body.data.keys, ['one']);
      const after = await raw('GET', '/vault/v1/sys/health', { agent, headers: h });
      assert.equal(after.status, 200, 'the client reconnects after the closed LIST connection');
      const denied = await raw('LIST', '/vault/v1/secret/metadata/keepalive', { agent });
      assert.equal(denied.status, 403);
      const nativeList = await raw('LIST', '/v1/secrets/dev', { agent, headers: h });
      assert.equal(nativeList.status, 405);
    } finally {
      agent.destroy();
    }
    const bogus = await raw('BREW', '/vault/v1/secret/metadata/');
    assert.equal(bogus.status, 400, 'other unknown methods still get the standard 400');
  });

  test('sealed: sys/health 503 (HEAD too), operations 503 with Vault is sealed', async () => {
    await ok(b.call('POST', '/v1/sys/seal'), 'seal');
    const health = await raw('GET', '/vault/v1/sys/health');
    assert.equal(health.status, 503);
    assert.equal(health.body.sealed, true);
    assert.equal((await raw('HEAD', '/vault/v1/sys/health')).status, 503);
    assert.equal((await raw('GET', '/vault/v1/sys/health?sealedcode=200')).status, 200);
    const read = await raw('GET', '/vault/v1/secret/data/app/db', {
      headers: { 'x-vault-token': b.rootToken },
    });
    assert.equal(read.status, 503);
    assert.equal(read.body.errors[0], 'Vault is sealed');
    assert.equal(
      (await vault(b.rootToken).health()).sealed,
      true,
      "node-vault's health() reads a 503 body too",
    );
  });
});
