import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { type OidcIssuer, startOidcIssuer } from '../support/oidc-issuer.js';
import { type PostgresCluster, startPostgres } from '../support/postgres.js';
import { ensureVenv, type PythonVenv } from '../support/python-venv.js';

/**
 * The official Python client, hvac 2.4.0, unmodified, against the Vault door: the script
 * test/compat/vault/hvac_flow.py asserts what the client sees; this file sets up the broker,
 * identities, engines and a real PostgreSQL, and checks what the broker did.
 */

const SCRIPT = fileURLToPath(new URL('./vault/hvac_flow.py', import.meta.url));

let b: TestBroker;
let venv: PythonVenv;
let cluster: PostgresCluster;
let issuer: OidcIssuer;
let adminUrl: string;
let dir: string;
let caFile: string;

async function ok(p: Promise<{ status: number; body: any }>, what: string): Promise<any> {
  const r = await p;
  assert.equal(r.status, 200, `${what}: ${JSON.stringify(r.body)}`);
  return r.body;
}

/** Runs one mode of the hvac script (asynchronously: the broker runs in this process). */
function hvac(mode: string, env: Record<string, string> = {}): Promise<any> {
  return new Promise((resolve, reject) => {
    execFile(
      venv.python,
      [SCRIPT, mode],
      {
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          HOME: dir,
          PYTHONNOUSERSITE: '1',
          PYTHONWARNINGS: 'ignore',
          VAULT_ADDR: `${b.url}/vault`,
          REQUESTS_CA_BUNDLE: caFile,
          ...env,
        },
        timeout: 120_000,
      },
      (err, stdout, stderr) => {
        if (err)
          return reject(new Error(`hvac_flow.py ${mode} failed: ${err.message}\n${stderr}\n${stdout}`));
        const last = stdout.trim().split('\n').pop() ?? '';
        try {
          resolve(JSON.parse(last));
        } catch {
          reject(new Error(`hvac_flow.py ${mode} printed no JSON:\n${stdout}\n${stderr}`));
        }
      },
    );
  });
}

/** An identity as an auth method's login would create it, with a token of its own. */
async function identityToken(env: string, method: string, role: string, name: string) {
  const { identities, tokens } = b.broker.services;
  const identity = await identities.upsertFromLogin({
    env,
    authMethod: method,
    loginRole: role,
    kind: 'workload',
    name,
    metadata: {},
  });
  const { token } = await tokens.create({
    policies: [],
    identityId: identity.id,
    env,
    authMethod: method,
    ttlSeconds: 3600,
  });
  return { id: identity.id, token };
}

const assign = (principal: string, role: string, scope: string) =>
  ok(
    b.call('POST', '/v1/access/assignments', { body: { principal, role, scope, reason: 'vault door test' } }),
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
  [venv, cluster, issuer] = await Promise.all([ensureVenv(), startPostgres(), startOidcIssuer()]);
  adminUrl = await cluster.createDatabase('warehouse');
  const c = new pg.Client({ connectionString: adminUrl });
  await c.connect();
  await c.query('create table features (id int primary key, v text)');
  await c.query("insert into features values (1, 'x')");
  await c.end();
  b = await startTestBroker();
  dir = await mkdtemp(path.join(tmpdir(), 'custody-hvac-'));
  caFile = path.join(dir, 'ca.pem');
  await writeFile(caFile, b.ca);
  for (const name of ['dev', 'prod']) await ok(b.call('POST', '/v1/envs', { body: { name } }), `env ${name}`);
});

after(async () => {
  await b?.stop();
  await cluster?.stop();
  await issuer?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('hvac 2.4.0 against the Vault door (VAULT_ADDR=https://…/vault)', () => {
  test('KV v2 life cycle, tokens, health, mounts and error shapes with the root token', async () => {
    await ok(
      b.call('PUT', '/v1/secrets/dev/native/plain', { body: { value: 'plain-text-value' } }),
      'native put',
    );
    const out = await hvac('kv', { VAULT_TOKEN: b.rootToken });
    assert.equal(out.ok, true);
    assert.deepEqual(out.mounts, ['dev/', 'prod/', 'secret/', 'sys/']);
    assert.match(out.destroy_error, /Destroying individual versions is not supported/);
    assert.match(out.unknown_path_error, /no handler for route/);

    // What hvac wrote is Custody's versioned secret, readable natively as JSON.
    const native = await ok(b.call('GET', '/v1/secrets/dev/ml/training/config'), 'native get');
    assert.equal(native.content_type, 'application/json');
    assert.deepEqual(JSON.parse(native.value), { lr: '0.02', epochs: 7, momentum: '0.9' });
    const versions = await ok(b.call('GET', '/v1/secret-versions/dev/ml/training/config'), 'versions');
    assert.deepEqual(
      versions.items.map((v: any) => [v.seq, v.enabled]),
      [
        [1, false],
        [2, true],
        [3, true],
      ],
      'Vault delete/undelete toggled the versions, nothing was purged',
    );
    const deleted = await b.call('GET', '/v1/deleted-secrets/dev/ml/eval/token');
    assert.equal(deleted.status, 200, 'metadata delete is a recoverable soft delete');

    const entries = await auditEntries();
    const vault = entries.filter((e) => e.door === 'vault');
    assert.ok(vault.some((e) => e.action === 'secrets/set' && e.resource === 'dev/ml/training/config'));
    assert.ok(vault.some((e) => e.action === 'secrets/update' && e.resource === 'dev/ml/training/config'));
    assert.ok(vault.some((e) => e.action === 'secrets/set' && e.resource === 'prod/serving/key'));
    const text = JSON.stringify(entries);
    assert.ok(
      !text.includes('prod-value') && !text.includes('momentum'),
      'no secret values in the audit trail',
    );
    assert.ok(!text.includes(b.rootToken), 'no token in the audit trail');
  });

  test('AppRole login: the role identity reads what it was granted and nothing else', async () => {
    await ok(b.call('POST', '/v1/auth/methods/dev', { body: { type: 'approle' } }), 'approle method');
    await ok(b.call('PUT', '/v1/auth/methods/dev/approle/roles/other', { body: {} }), 'other role');
    await ok(
      b.call('PUT', '/v1/auth/methods/dev/approle/roles/trainer', { body: { token_ttl: '1h' } }),
      'role',
    );
    const { role_id } = await ok(
      b.call('GET', '/v1/auth/methods/dev/approle/roles/trainer/role-id'),
      'role id',
    );
    const { secret_id } = await ok(
      b.call('POST', '/v1/auth/methods/dev/approle/roles/trainer/secret-id', { body: {} }),
      'secret id',
    );
    const { identities } = b.broker.services;
    const trainer = await identities.upsertFromLogin({
      env: 'dev',
      authMethod: 'approle',
      loginRole: 'trainer',
      kind: 'workload',
      name: 'trainer',
      metadata: {},
    });
    await assign(trainer.id, 'secrets-user', 'dev/secrets/ml/shared');
    await ok(
      b.call('PUT', '/v1/secrets/dev/ml/shared/config', {
        body: { value: '{"bucket":"s3://features"}', content_type: 'application/json' },
      }),
      'shared secret',
    );
    const out = await hvac('approle', { ROLE_ID: role_id, SECRET_ID: secret_id });
    assert.deepEqual(out.data, { bucket: 's3://features' });
    assert.match(out.bad_secret_error, /secret/i);
    assert.match(out.wrong_role_error, /invalid role or secret ID/);
    const logins = (await auditEntries()).filter(
      (e) => e.door === 'vault' && e.action === 'auth/login' && e.type === 'response',
    );
    assert.ok(logins.some((e) => e.outcome === 'ok' && e.data?.accessor === out.accessor));
    assert.ok(
      logins.some((e) => e.outcome === 'error'),
      'failed logins are audited too',
    );
  });

  test('JWT login with {role, jwt}', async () => {
    await ok(
      b.call('POST', '/v1/auth/methods/dev', {
        body: { type: 'jwt', config: { issuer: issuer.url, ca_pem: issuer.caPem, audiences: ['custody'] } },
      }),
      'jwt method',
    );
    await ok(b.call('PUT', '/v1/auth/methods/dev/jwt/roles/trainer', { body: {} }), 'jwt role');
    const jwt = await issuer.sign({ sub: 'notebook-7', aud: 'custody' });
    const out = await hvac('jwt', { JWT: jwt });
    const identity = await b.broker.services.identities.get(out.entity_id);
    assert.equal(identity.name, 'notebook-7');
    assert.equal(identity.env, 'dev');
    assert.ok(out.bad_jwt_error.length > 0);
  });

  test('RBAC: secrets-user on one prefix is refused elsewhere with 403 permission denied', async () => {
    const job = await identityToken('dev', 'jwt', 'job', 'team-a-job');
    await assign(job.id, 'secrets-user', 'dev/secrets/team-a');
    for (const p of ['dev/team-a/db', 'dev/team-b/db', 'prod/team-a/db'])
      await ok(
        b.call('PUT', `/v1/secrets/${p}`, {
          body: { value: `{"p":"${p}"}`, content_type: 'application/json' },
        }),
        p,
      );
    const out = await hvac('rbac', { VAULT_TOKEN: job.token });
    assert.deepEqual(out.allowed, { p: 'dev/team-a/db' });
    for (const k of ['read_other_prefix', 'write_own_prefix', 'list_env', 'read_prod', 'mounts'])
      assert.match(out[k], /permission denied/, k);
    assert.match(out.read_prod, /belongs to environment dev/);
  });

  test('database/creds: a leased PostgreSQL login that works until sys/leases/revoke', async () => {
    const u = new URL(adminUrl);
    await ok(
      b.call('PUT', '/v1/engines/dev/warehouse', {
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
    for (const [role, grants] of [
      ['reader', ['SELECT ON ALL TABLES IN SCHEMA public']],
      ['writer', ['SELECT, INSERT ON ALL TABLES IN SCHEMA public']],
    ] as const) {
      await ok(
        b.call('PUT', `/v1/engines/dev/warehouse/roles/${role}`, {
          body: { ttl: '1h', max_ttl: '2h', config: { grants } },
        }),
        role,
      );
    }
    const job = await identityToken('dev', 'jwt', 'job', 'etl-job');
    await assign(job.id, 'credential-user', 'dev/engines/warehouse/reader');

    const out = await hvac('creds', { VAULT_TOKEN: job.token });
    assert.match(out.lease_id, /^dev\/warehouse\/reader\/[A-Za-z0-9_-]{16}$/);
    assert.match(out.denied, /permission denied/);
    assert.ok(await canLogin(out.username, out.password), 'the leased credentials log in to PostgreSQL');

    const revoked = await hvac('revoke', { VAULT_TOKEN: job.token, LEASE_ID: out.lease_id });
    assert.equal(revoked.state, 'revoked');
    assert.equal(await canLogin(out.username, out.password), false, 'the login is refused after revoke');

    const prefix = await hvac('revoke-prefix', { VAULT_TOKEN: b.rootToken });
    assert.deepEqual([...prefix.listed].sort(), out.others.map((id: string) => id.split('/').pop()).sort());
    const leases = await ok(b.call('GET', '/v1/leases?prefix=dev/warehouse/reader/'), 'leases');
    assert.equal(leases.items.length, 3);
    assert.ok(
      leases.items.every((l: any) => l.state === 'revoked'),
      JSON.stringify(leases.items.map((l: any) => l.state)),
    );
    const issued = (await auditEntries()).filter(
      (e) => e.door === 'vault' && e.action === 'leases/issue' && e.type === 'response' && e.outcome === 'ok',
    );
    assert.equal(issued.length, 3);
    assert.ok(
      !JSON.stringify(issued).includes(out.password),
      'the password is only a digest in the audit trail',
    );
  });
});
