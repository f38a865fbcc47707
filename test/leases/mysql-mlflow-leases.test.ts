import assert from 'node:assert/strict';
import { readFile, rm } from 'node:fs/promises';
import { after, before, test } from 'node:test';
import mysql from 'mysql2/promise';
import { Agent, request } from 'undici';
import { type BrokerProcess, startBrokerProcess } from '../support/broker-process.js';
import { type MariadbServer, startMariadb } from '../support/mariadb.js';
import { type MlflowServer, mlflowRequest, startMlflow } from '../support/mlflow.js';

let maria: MariadbServer;
let mlflow: MlflowServer;
let bp: BrokerProcess;
let agent: Agent;
let experimentId: string;
const env = { CUSTODY_REAPER_INTERVAL_MS: '200' };

async function call(method: string, p: string, body?: unknown) {
  const res = await request(`${bp.url}${p}`, {
    method: method as 'GET',
    dispatcher: agent,
    headers: { authorization: `Bearer ${bp.rootToken}`, 'content-type': 'application/json' },
    body: JSON.stringify(body ?? {}),
  });
  return { status: res.statusCode, body: (await res.body.json()) as any };
}

async function mysqlLogin(user: string, password: string): Promise<boolean> {
  try {
    const c = await mysql.createConnection({
      host: maria.host,
      port: maria.port,
      user,
      password,
      database: 'features',
      connectTimeout: 5000,
    });
    await c.query('select count(*) from t');
    await c.end();
    return true;
  } catch {
    return false;
  }
}
const mysqlUsers = async (prefix: string) =>
  (await maria.query('select User from mysql.user where User like ?', [`${prefix}%`])).map(
    (r: any) => r.User,
  );
const mlflowCanRead = async (username: string, password: string) =>
  (
    await mlflowRequest(mlflow, '2.0/mlflow/experiments/get', {
      query: { experiment_id: experimentId },
      auth: { username, password },
    })
  ).status === 200;
async function mlflowUserExists(username: string): Promise<boolean> {
  const r = await mlflowRequest(mlflow, '2.0/mlflow/users/get', {
    query: { username },
    auth: { username: mlflow.adminUser, password: mlflow.adminPassword },
  });
  return r.status === 200;
}
async function until(what: string, check: () => Promise<boolean>, ms = 30_000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 300));
  }
  assert.fail(`timed out waiting for ${what}`);
}

before(async () => {
  [maria, mlflow] = await Promise.all([startMariadb(), startMlflow()]);
  await maria.createDatabase('features');
  await maria.query('create table features.t (id int primary key); insert into features.t values (1)');
  const exp = await mlflowRequest(mlflow, '2.0/mlflow/experiments/create', {
    method: 'POST',
    body: { name: 'churn' },
    auth: { username: mlflow.adminUser, password: mlflow.adminPassword },
  });
  experimentId = exp.json.experiment_id;
  bp = await startBrokerProcess({ env });
  agent = new Agent({ connect: { ca: await readFile(bp.caCertPath!, 'utf8') } });
  await call('POST', '/v1/envs', { name: 'ml' });
  const my = await call('PUT', '/v1/engines/ml/mariadb', {
    type: 'mysql',
    config: {
      connection_url: `mysql://${maria.host}:${maria.port}/features`,
      username: maria.adminUser,
      password: maria.adminPassword,
    },
  });
  assert.equal(my.status, 200, JSON.stringify(my.body));
  const ml = await call('PUT', '/v1/engines/ml/tracking', {
    type: 'mlflow',
    config: { tracking_uri: mlflow.url, username: mlflow.adminUser, password: mlflow.adminPassword },
  });
  assert.equal(ml.status, 200, JSON.stringify(ml.body));
  await call('PUT', '/v1/engines/ml/mariadb/roles/reader', {
    ttl: '1h',
    config: { grants: ['SELECT ON features.*'], username_template: 'mj_{{random}}' },
  });
  await call('PUT', '/v1/engines/ml/tracking/roles/reader', {
    ttl: '1h',
    config: { experiments: [{ id: experimentId, permission: 'READ' }], username_template: 'mlj-{{random}}' },
  });
});

after(async () => {
  await agent?.close();
  await bp?.cleanup();
  if (bp) await rm(bp.dataDir, { recursive: true, force: true });
  await Promise.all([maria?.stop(), mlflow?.stop()]);
});

test('MySQL/MariaDB and MLflow leases: issue → works → revoke → refused → no leftover user', async () => {
  const db = await call('POST', '/v1/creds/ml/mariadb/reader', {});
  assert.equal(db.status, 200, JSON.stringify(db.body));
  assert.equal(await mysqlLogin(db.body.username, db.body.password), true);
  const tr = await call('POST', '/v1/creds/ml/tracking/reader', {});
  assert.equal(tr.status, 200, JSON.stringify(tr.body));
  assert.equal(tr.body.data.MLFLOW_TRACKING_USERNAME, tr.body.username);
  assert.equal(await mlflowCanRead(tr.body.username, tr.body.password), true);

  for (const l of [db.body, tr.body])
    assert.equal((await call('POST', '/v1/leases/revoke', { lease_id: l.lease_id })).body.state, 'revoked');
  assert.equal(await mysqlLogin(db.body.username, db.body.password), false);
  assert.deepEqual(await mysqlUsers(db.body.username), []);
  assert.equal(await mlflowCanRead(tr.body.username, tr.body.password), false);
  assert.equal(await mlflowUserExists(tr.body.username), false);
});

test('crash: kill -9 with live MySQL and MLflow leases that expire while down; restart revokes them all', async () => {
  const issued: any[] = [];
  for (let i = 0; i < 4; i++) {
    issued.push((await call('POST', '/v1/creds/ml/mariadb/reader', { ttl: 12 })).body);
    issued.push((await call('POST', '/v1/creds/ml/tracking/reader', { ttl: 12 })).body);
  }
  assert.ok(issued.every((l) => l.lease_id));
  await bp.kill9();
  assert.equal((await mysqlUsers('mj_')).length, 4, 'still there while the broker is down');
  // Let every lease expire while nobody is running (however long issuing took on a busy machine).
  const lastExpiry = Math.max(...issued.map((l) => Date.parse(l.expires_at)));
  await new Promise((r) => setTimeout(r, Math.max(0, lastExpiry - Date.now()) + 500));
  assert.equal((await mysqlUsers('mj_')).length, 4, 'nothing revoked them while the broker was down');
  bp = await startBrokerProcess({ dataDir: bp.dataDir, env });
  await until('every MySQL user to be dropped', async () => (await mysqlUsers('mj_')).length === 0);
  await until('every MLflow user to be deleted', async () => {
    for (const l of issued.filter((x) => x.username.startsWith('mlj-')))
      if (await mlflowUserExists(l.username)) return false;
    return true;
  });
});
