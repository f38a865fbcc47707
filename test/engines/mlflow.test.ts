import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { inspect } from 'node:util';
import type { Engine, IssueContext } from '../../src/engines/engine.js';
import { scrub } from '../../src/engines/mlflow/client.js';
import { type MlflowConfig, type MlflowRole, mlflowEngine } from '../../src/engines/mlflow/index.js';
import { renderUsername } from '../../src/engines/mlflow/username.js';
import { generatePassword } from '../../src/engines/password.js';
import { CustodyError } from '../../src/errors.js';
import { ensureTls } from '../../src/http/tls.js';
import { type MlflowServer, mlflowRequest, startMlflow } from '../support/mlflow.js';

const ctx = (identityName = 'job-1', role = 'reader'): IssueContext => ({
  env: 'dev',
  engine: 'mlflow',
  role,
  identityName,
  expiresAt: new Date(Date.now() + 3600_000),
});

/** Asserts a CustodyError with `code` (and `status`) whose message and hint hold none of `secrets`. */
function custodyError(code: string, status: number | undefined, secrets: string[] = []) {
  return (err: unknown) => {
    assert.ok(err instanceof CustodyError, `expected a CustodyError, got ${inspect(err)}`);
    assert.equal(err.code, code, err.message);
    if (status !== undefined) assert.equal(err.status, status, err.message);
    for (const s of secrets) {
      assert.ok(!err.message.includes(s), `message leaks a secret: ${err.message}`);
      assert.ok(!(err.hint ?? '').includes(s), 'hint leaks a secret');
    }
    return true;
  };
}

const USERNAME_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;

describe('mlflow engine: config and role validation', () => {
  const base = { username: 'admin', password: 'secret-admin-password' };

  it('normalizes a loopback http tracking uri and keeps defaults', () => {
    const c = mlflowEngine.parseConfig({ ...base, tracking_uri: 'http://127.0.0.1:5000/' });
    assert.deepEqual(c, {
      tracking_uri: 'http://127.0.0.1:5000',
      username: 'admin',
      password: 'secret-admin-password',
      insecure_tls: false,
      allow_insecure_http: false,
    });
    for (const uri of [
      'http://localhost:5000',
      'http://[::1]:5000',
      'http://127.1.2.3',
      'https://mlflow.example.com/x/',
    ]) {
      assert.ok(
        mlflowEngine.parseConfig({ ...base, tracking_uri: uri }).tracking_uri.startsWith(uri.slice(0, 8)),
      );
    }
    assert.equal(
      mlflowEngine.parseConfig({ ...base, tracking_uri: 'https://mlflow.example.com/prefix///' })
        .tracking_uri,
      'https://mlflow.example.com/prefix',
    );
  });

  it('refuses plain http to a host that is not loopback unless allow_insecure_http', () => {
    for (const uri of [
      'http://mlflow.example.com',
      'http://10.0.0.5:5000',
      'http://127.0.0.1.nip.io',
      'http://[::2]',
    ]) {
      assert.throws(
        () => mlflowEngine.parseConfig({ ...base, tracking_uri: uri }),
        custodyError('InvalidEngineConfig', 400),
      );
    }
    const c = mlflowEngine.parseConfig({
      ...base,
      tracking_uri: 'http://10.0.0.5:5000',
      allow_insecure_http: true,
    });
    assert.equal(c.allow_insecure_http, true);
  });

  it('rejects bad configs with a clear 400 and no password in the message', () => {
    const bad: Record<string, unknown>[] = [
      { ...base },
      { ...base, tracking_uri: 'not a url' },
      { ...base, tracking_uri: 'ftp://mlflow.example.com' },
      { ...base, tracking_uri: 'https://admin:pw@mlflow.example.com' },
      { ...base, tracking_uri: 'https://mlflow.example.com?x=1' },
      { ...base, tracking_uri: 'https://mlflow.example.com', username: '' },
      { ...base, tracking_uri: 'https://mlflow.example.com', username: 'a:b' },
      { ...base, tracking_uri: 'https://mlflow.example.com', password: '' },
      { ...base, tracking_uri: 'https://mlflow.example.com', password: 42 },
      { ...base, tracking_uri: 'https://mlflow.example.com', ca_pem: 'nope' },
      {
        ...base,
        tracking_uri: 'https://mlflow.example.com',
        ca_pem: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----',
      },
      { ...base, tracking_uri: 'https://mlflow.example.com', insecure_tls: 'yes' },
      { ...base, tracking_uri: 'https://mlflow.example.com', token: 'x' },
    ];
    for (const raw of bad) {
      assert.throws(
        () => mlflowEngine.parseConfig(raw),
        custodyError('InvalidEngineConfig', 400, ['secret-admin-password']),
        JSON.stringify(raw),
      );
    }
  });

  it('redactConfig shows no password', () => {
    const c = mlflowEngine.parseConfig({ ...base, tracking_uri: 'https://mlflow.example.com' });
    const shown = mlflowEngine.redactConfig(c);
    assert.ok(!JSON.stringify(shown).includes('secret-admin-password'));
    assert.equal(shown.tracking_uri, 'https://mlflow.example.com');
    assert.equal(shown.username, 'admin');
  });

  it('parses roles: permissions, ids, names, templates', () => {
    const r = mlflowEngine.parseRole({
      experiments: [
        { id: '12', permission: 'read' },
        { id: 7, permission: 'EDIT' },
      ],
      registered_models: [{ name: 'churn model', permission: 'MANAGE' }],
    });
    assert.deepEqual(r, {
      experiments: [
        { id: '12', permission: 'READ' },
        { id: '7', permission: 'EDIT' },
      ],
      registered_models: [{ name: 'churn model', permission: 'MANAGE' }],
      username_template: 'custody-{{env}}-{{role}}-{{identity}}-{{random}}',
    });
    assert.deepEqual(mlflowEngine.parseRole({}).experiments, []);
    const bad: Record<string, unknown>[] = [
      { experiments: 'x' },
      { experiments: [{ id: 'abc', permission: 'READ' }] },
      { experiments: [{ id: '1', permission: 'OWNER' }] },
      { experiments: [{ id: '1', permission: 'NO_PERMISSIONS' }] },
      { experiments: [{ id: '1' }] },
      { experiments: [{ id: '1', permission: 'READ', extra: 1 }] },
      {
        experiments: [
          { id: '1', permission: 'READ' },
          { id: '1', permission: 'EDIT' },
        ],
      },
      { registered_models: [{ name: '', permission: 'READ' }] },
      { registered_models: [{ name: 'a\nb', permission: 'READ' }] },
      { username_template: '{{nope}}-{{random}}' },
      { username_template: 'Custody_{{random}}' },
      { username_template: 'a b {{random}}' },
      { username_template: 'x'.repeat(200) },
      { scopes: [] },
    ];
    for (const raw of bad) {
      assert.throws(
        () => mlflowEngine.parseRole(raw),
        custodyError('InvalidEngineRole', 400),
        JSON.stringify(raw),
      );
    }
  });

  it('keeps server messages short, without SQL echo or secrets', () => {
    const sqlEcho =
      "User (username=u2) already exists. Error: (sqlite3.IntegrityError) UNIQUE constraint failed\n[parameters: ('u2', 'scrypt:32768:8:1$abc')]";
    assert.equal(scrub(sqlEcho, []), 'User (username=u2) already exists.');
    assert.equal(
      scrub('bad password hunter2-hunter2 here', ['hunter2-hunter2']),
      'bad password [redacted] here',
    );
    assert.ok(scrub('x'.repeat(1000), []).length <= 301);
  });

  it('renders safe, bounded, random usernames from hostile identity names', () => {
    const hostile = [
      "job'; DROP TABLE users; --",
      'Ünïcødé 🚀 jöb',
      '../../etc/passwd',
      'a'.repeat(500),
      '',
      '----',
      'ADMIN',
      'x:y@z',
      '\u0000\n\r\t',
      '{{random}}{{env}}',
    ];
    const seen = new Set<string>();
    for (const identity of hostile) {
      const name = renderUsername('custody-{{env}}-{{role}}-{{identity}}-{{random}}', {
        env: 'dev',
        engine: 'mlflow',
        role: 'reader',
        identity,
      });
      assert.match(name, USERNAME_RE, `${JSON.stringify(identity)} → ${name}`);
      assert.match(name, /-[a-z0-9]{10}$/, name);
      assert.ok(!seen.has(name));
      seen.add(name);
    }
    const fixed = renderUsername(
      '{{env}}.{{identity}}-{{random}}',
      { env: 'Prod', engine: 'e', role: 'r', identity: 'Jöb Runner' },
      '0123456789',
    );
    assert.equal(fixed, 'prod.job-runner-0123456789');
    // A template without {{random}} still gets the random part; a long one keeps all of it.
    assert.match(
      renderUsername('svc', { env: 'd', engine: 'e', role: 'r', identity: 'i' }),
      /^svc-[a-z0-9]{10}$/,
    );
    const long = renderUsername(
      '{{random}}-{{identity}}-{{role}}-{{engine}}-{{env}}',
      { env: 'e'.repeat(40), engine: 'g'.repeat(40), role: 'r'.repeat(40), identity: 'i'.repeat(40) },
      'abcdefghij',
    );
    assert.ok(long.length <= 64, long);
    assert.ok(long.includes('abcdefghij'), long);
  });
});

describe('mlflow engine: wire format (recording server)', () => {
  let srv: Server;
  let url: string;
  const seen: { method: string; path: string; contentType?: string; authorization?: string; body: string }[] =
    [];

  before(async () => {
    srv = createServer((req: IncomingMessage, res) => {
      let body = '';
      req.on('data', (c) => {
        body += c;
      });
      req.on('end', () => {
        const path = req.url ?? '';
        seen.push({
          method: req.method ?? '',
          path,
          contentType: req.headers['content-type'],
          authorization: req.headers.authorization,
          body,
        });
        res.setHeader('content-type', 'application/json');
        if (path.startsWith('/api/2.0/mlflow/users/get')) {
          res.end(JSON.stringify({ user: { id: 1, username: 'root', is_admin: true } }));
        } else if (path === '/api/2.0/mlflow/users/delete') {
          res.statusCode = 404;
          res.end(
            JSON.stringify({
              error_code: 'RESOURCE_DOES_NOT_EXIST',
              message: 'User with username=x not found',
            }),
          );
        } else if (path === '/api/3.0/mlflow/users/permissions/grant') {
          // An MLflow 3.12-style server: no such route (Flask's HTML 404).
          res.statusCode = 404;
          res.setHeader('content-type', 'text/html; charset=utf-8');
          res.end('<!doctype html><title>404 Not Found</title>');
        } else {
          res.end('{}');
        }
      });
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(srv.address() as { port: number }).port}`;
  });
  after(() => new Promise<void>((r) => srv.close(() => r())));

  it('sends JSON bodies with Content-Type application/json exactly, DELETE with a body, Basic auth', async () => {
    const engine = mlflowEngine.open(
      mlflowEngine.parseConfig({ tracking_uri: url, username: 'root', password: 'root-password-1' }),
    );
    let issuedPassword = '';
    try {
      await engine.verify();
      const role = mlflowEngine.parseRole({
        experiments: [{ id: '3', permission: 'READ' }],
        registered_models: [{ name: 'm/1', permission: 'EDIT' }],
      });
      const prepared = engine.prepare(role, ctx());
      const issued = await engine.create(role, prepared, ctx());
      issuedPassword = issued.password;
      assert.deepEqual(issued.data, {
        MLFLOW_TRACKING_URI: url,
        MLFLOW_TRACKING_USERNAME: prepared.username,
      });
      await engine.revoke(role, prepared.revocation);
    } finally {
      await engine.close();
    }
    const expectAuth = `Basic ${Buffer.from('root:root-password-1').toString('base64')}`;
    for (const r of seen) assert.equal(r.authorization, expectAuth);
    const withBody = seen.filter((r) => r.body);
    assert.ok(withBody.length >= 4);
    for (const r of withBody) assert.equal(r.contentType, 'application/json', `${r.method} ${r.path}`);
    for (const r of seen.filter((x) => !x.body)) assert.equal(r.contentType, undefined);
    const get = seen[0]!;
    assert.equal(get.method, 'GET');
    assert.equal(get.path, '/api/2.0/mlflow/users/get?username=root');
    const calls = seen.map((r) => `${r.method} ${r.path.split('?')[0]}`);
    assert.deepEqual(calls.slice(1), [
      'POST /api/2.0/mlflow/users/create',
      'POST /api/3.0/mlflow/users/permissions/grant',
      'POST /api/2.0/mlflow/experiments/permissions/create',
      'POST /api/2.0/mlflow/registered-models/permissions/create',
      'DELETE /api/2.0/mlflow/users/delete',
    ]);
    const create = JSON.parse(seen[1]!.body);
    const username = create.username;
    assert.equal(create.password, issuedPassword);
    assert.deepEqual(JSON.parse(seen[2]!.body), {
      username,
      resource_type: 'experiment',
      resource_id: '3',
      permission: 'READ',
    });
    assert.deepEqual(JSON.parse(seen[3]!.body), { experiment_id: '3', username, permission: 'READ' });
    assert.deepEqual(JSON.parse(seen[4]!.body), { name: 'm/1', username, permission: 'EDIT' });
    assert.deepEqual(JSON.parse(seen[5]!.body), { username });
  });
});

describe('mlflow engine against a real MLflow server (https)', () => {
  let ml: MlflowServer;
  let config: MlflowConfig;
  let engine: Engine<MlflowRole>;
  let adminPassword: string;
  let readExp: string;
  let otherExp: string;
  const admin = () => ({ username: ml.adminUser, password: adminPassword });

  before(async () => {
    const tlsDir = await mkdtemp(join(tmpdir(), 'custody-mlflow-tls-'));
    try {
      const tls = await ensureTls(tlsDir, { hosts: [] });
      ml = await startMlflow({ tls: { certPem: tls.certPem, keyPem: tls.keyPem, caPem: tls.caCertPem } });
    } finally {
      await rm(tlsDir, { recursive: true, force: true });
    }
    adminPassword = ml.adminPassword;
    config = mlflowEngine.parseConfig({
      tracking_uri: ml.url,
      username: ml.adminUser,
      password: adminPassword,
      ca_pem: ml.caPem,
    });
    engine = mlflowEngine.open(config);
    const mk = async (name: string) => {
      const res = await mlflowRequest(ml, '2.0/mlflow/experiments/create', { body: { name }, auth: admin() });
      assert.equal(res.status, 200, res.text);
      return String(res.json.experiment_id);
    };
    readExp = await mk('custody-granted');
    otherExp = await mk('custody-other');
  });
  after(async () => {
    await engine?.close();
    await ml?.stop();
  });

  const issue = async (raw: Record<string, unknown>, identity = 'job-1') => {
    const role = mlflowEngine.parseRole(raw);
    const prepared = engine.prepare(role, ctx(identity));
    const issued = await engine.create(role, prepared, ctx(identity));
    return { role, prepared, issued, auth: { username: issued.username, password: issued.password } };
  };

  it('verify accepts the admin', async () => {
    await engine.verify();
  });

  it('verify refuses a wrong admin password with a clear 400 and no password in the message', async () => {
    const wrong = 'wrong-password-123456';
    const e = mlflowEngine.open({ ...config, password: wrong });
    try {
      await assert.rejects(e.verify(), custodyError('EngineAuthFailed', 400, [wrong, adminPassword]));
    } finally {
      await e.close();
    }
  });

  it('verify refuses a user who is not an MLflow admin', async () => {
    const res = await mlflowRequest(ml, '2.0/mlflow/users/create', {
      body: { username: 'plain-user', password: 'plain-user-password' },
      auth: admin(),
    });
    assert.equal(res.status, 200, res.text);
    const e = mlflowEngine.open({ ...config, username: 'plain-user', password: 'plain-user-password' });
    try {
      await assert.rejects(e.verify(), (err: unknown) => {
        custodyError('EngineAuthFailed', 400, ['plain-user-password'])(err);
        assert.match((err as Error).message, /not an admin|not allowed/);
        return true;
      });
    } finally {
      await e.close();
    }
  });

  it('trusts only the configured CA: without ca_pem the server is refused with a TLS hint', async () => {
    assert.ok(ml.url.startsWith('https://127.0.0.1:'));
    const { ca_pem: _, ...noCa } = config;
    const untrusted = mlflowEngine.open(noCa);
    const insecure = mlflowEngine.open({ ...noCa, insecure_tls: true });
    try {
      await assert.rejects(untrusted.verify(), (err: unknown) => {
        custodyError('EngineUnreachable', 400, [adminPassword])(err);
        assert.match((err as CustodyError).hint ?? '', /ca_pem/);
        return true;
      });
      await insecure.verify();
    } finally {
      await untrusted.close();
      await insecure.close();
    }
  });

  it('verify reports an unreachable server and a wrong path clearly', async () => {
    const down = mlflowEngine.open({ ...config, tracking_uri: 'http://127.0.0.1:1' });
    const wrongPath = mlflowEngine.open({ ...config, tracking_uri: `${ml.url}/not-mlflow` });
    try {
      await assert.rejects(down.verify(), custodyError('EngineUnreachable', 400, [adminPassword]));
      await assert.rejects(wrongPath.verify(), (err: unknown) => {
        custodyError('EngineError', 400, [adminPassword])(err);
        assert.match((err as Error).message, /no MLflow basic-auth API/);
        return true;
      });
    } finally {
      await down.close();
      await wrongPath.close();
    }
  });

  it('READ role: the user reads its experiment and nothing else, and cannot write', async () => {
    const { issued, auth, prepared } = await issue({ experiments: [{ id: readExp, permission: 'READ' }] });
    assert.match(issued.username, /^custody-dev-reader-job-1-[a-z0-9]{10}$/);
    assert.equal(issued.password, prepared.password);
    assert.ok(issued.password.length >= 32);
    assert.deepEqual(issued.data, { MLFLOW_TRACKING_URI: ml.url, MLFLOW_TRACKING_USERNAME: issued.username });
    assert.ok(!JSON.stringify(prepared.revocation).includes(issued.password));
    assert.ok(!JSON.stringify(prepared.revocation).includes(adminPassword));

    const read = await mlflowRequest(ml, '2.0/mlflow/experiments/get', {
      query: { experiment_id: readExp },
      auth,
    });
    assert.equal(read.status, 200, read.text);
    assert.equal(read.json.experiment.name, 'custody-granted');
    const other = await mlflowRequest(ml, '2.0/mlflow/experiments/get', {
      query: { experiment_id: otherExp },
      auth,
    });
    assert.equal(other.status, 403);
    const run = await mlflowRequest(ml, '2.0/mlflow/runs/create', { body: { experiment_id: readExp }, auth });
    assert.equal(run.status, 403);
    // Not an admin: it cannot mint users of its own.
    const mint = await mlflowRequest(ml, '2.0/mlflow/users/create', {
      body: { username: 'sneaky', password: 'sneaky-password-1' },
      auth,
    });
    assert.equal(mint.status, 403);
  });

  it('EDIT role: the user logs a run and a metric', async () => {
    const { auth } = await issue({ experiments: [{ id: readExp, permission: 'EDIT' }] }, 'trainer');
    const run = await mlflowRequest(ml, '2.0/mlflow/runs/create', { body: { experiment_id: readExp }, auth });
    assert.equal(run.status, 200, run.text);
    const runId = run.json.run.info.run_id;
    const metric = await mlflowRequest(ml, '2.0/mlflow/runs/log-metric', {
      body: { run_id: runId, key: 'loss', value: 0.25, timestamp: Date.now(), step: 1 },
      auth,
    });
    assert.equal(metric.status, 200, metric.text);
    const other = await mlflowRequest(ml, '2.0/mlflow/runs/create', {
      body: { experiment_id: otherExp },
      auth,
    });
    assert.equal(other.status, 403);
  });

  it('registered model grants', async () => {
    for (const name of ['custody-model', 'custody-other-model']) {
      const res = await mlflowRequest(ml, '2.0/mlflow/registered-models/create', {
        body: { name },
        auth: admin(),
      });
      assert.equal(res.status, 200, res.text);
    }
    const { auth } = await issue({ registered_models: [{ name: 'custody-model', permission: 'READ' }] });
    const ok = await mlflowRequest(ml, '2.0/mlflow/registered-models/get', {
      query: { name: 'custody-model' },
      auth,
    });
    assert.equal(ok.status, 200, ok.text);
    const no = await mlflowRequest(ml, '2.0/mlflow/registered-models/get', {
      query: { name: 'custody-other-model' },
      auth,
    });
    assert.equal(no.status, 403);
    const rename = await mlflowRequest(ml, '2.0/mlflow/registered-models/update', {
      method: 'PATCH',
      body: { name: 'custody-model', description: 'x' },
      auth,
    });
    assert.equal(rename.status, 403);
  });

  it('revoke: the credentials stop working at once; revoking again succeeds', async () => {
    const { role, prepared, auth } = await issue({
      experiments: [{ id: readExp, permission: 'READ' }],
      registered_models: [{ name: 'custody-model', permission: 'READ' }],
    });
    const before = await mlflowRequest(ml, '2.0/mlflow/experiments/get', {
      query: { experiment_id: readExp },
      auth,
    });
    assert.equal(before.status, 200);
    await engine.revoke(role, prepared.revocation);
    const afterRevoke = await mlflowRequest(ml, '2.0/mlflow/experiments/get', {
      query: { experiment_id: readExp },
      auth,
    });
    assert.equal(afterRevoke.status, 401);
    assert.equal(afterRevoke.headers['www-authenticate'], 'Basic realm="mlflow"');
    await engine.revoke(role, prepared.revocation);
    await engine.revoke(null, prepared.revocation);
    const gone = await mlflowRequest(ml, '2.0/mlflow/users/get', {
      query: { username: prepared.username },
      auth: admin(),
    });
    assert.equal(gone.status, 404);
  });

  it('revoke of a credential that was prepared but never created succeeds', async () => {
    const role = mlflowEngine.parseRole({ experiments: [{ id: readExp, permission: 'READ' }] });
    const prepared = engine.prepare(role, ctx());
    await engine.revoke(role, prepared.revocation);
  });

  it('create is safe to retry with the same prepared credential', async () => {
    const role = mlflowEngine.parseRole({ experiments: [{ id: readExp, permission: 'READ' }] });
    const prepared = engine.prepare(role, ctx());
    await engine.create(role, prepared, ctx());
    const again = await engine.create(role, prepared, ctx());
    const auth = { username: again.username, password: again.password };
    const read = await mlflowRequest(ml, '2.0/mlflow/experiments/get', {
      query: { experiment_id: readExp },
      auth,
    });
    assert.equal(read.status, 200, read.text);
    await engine.revoke(role, prepared.revocation);
  });

  it('hostile identity names give safe usernames that work on the server', async () => {
    for (const identity of [
      'o\'brien"; DROP TABLE users; --',
      'Ünïcødé 🚀',
      '../../x?y=1&z#w',
      'A'.repeat(300),
    ]) {
      const { role, prepared, auth } = await issue(
        { experiments: [{ id: readExp, permission: 'READ' }] },
        identity,
      );
      assert.match(prepared.username, USERNAME_RE);
      const read = await mlflowRequest(ml, '2.0/mlflow/experiments/get', {
        query: { experiment_id: readExp },
        auth,
      });
      assert.equal(read.status, 200, `${identity}: ${read.text}`);
      await engine.revoke(role, prepared.revocation);
    }
  });

  it('refuses to revoke or re-password the admin itself', async () => {
    await assert.rejects(engine.revoke(null, { username: ml.adminUser }), custodyError('EngineError', 400));
    await assert.rejects(
      engine.setPassword(ml.adminUser, 'another-password-123'),
      custodyError('EngineError', 400),
    );
    const still = await mlflowRequest(ml, '2.0/mlflow/users/get', {
      query: { username: ml.adminUser },
      auth: admin(),
    });
    assert.equal(still.status, 200);
  });

  it('setPassword: static users get a new password; a missing user is a clear error', async () => {
    const res = await mlflowRequest(ml, '2.0/mlflow/users/create', {
      body: { username: 'static-svc', password: 'static-original-pw' },
      auth: admin(),
    });
    assert.equal(res.status, 200, res.text);
    await engine.setPassword('static-svc', 'static-rotated-password-1');
    const q = { query: { experiment_id: readExp } };
    const oldPw = await mlflowRequest(ml, '2.0/mlflow/experiments/get', {
      ...q,
      auth: { username: 'static-svc', password: 'static-original-pw' },
    });
    assert.equal(oldPw.status, 401);
    const newPw = await mlflowRequest(ml, '2.0/mlflow/users/get', {
      query: { username: 'static-svc' },
      auth: { username: 'static-svc', password: 'static-rotated-password-1' },
    });
    assert.equal(newPw.status, 200, newPw.text);
    await assert.rejects(
      engine.setPassword('no-such-user', 'whatever-password-1'),
      custodyError('EngineUserNotFound', 400, ['whatever-password-1']),
    );
  });

  it('an outage gives EngineUnreachable; revocation works once the server is back', async () => {
    const { role, prepared } = await issue({ experiments: [{ id: readExp, permission: 'READ' }] });
    await ml.pause();
    try {
      const role2 = mlflowEngine.parseRole({});
      await assert.rejects(
        engine.create(role2, engine.prepare(role2, ctx()), ctx()),
        custodyError('EngineUnreachable', 502),
      );
      await assert.rejects(engine.revoke(role, prepared.revocation), custodyError('EngineUnreachable', 502));
    } finally {
      await ml.resume();
    }
    await engine.revoke(role, prepared.revocation);
    const gone = await mlflowRequest(ml, '2.0/mlflow/users/get', {
      query: { username: prepared.username },
      auth: admin(),
    });
    assert.equal(gone.status, 404);
  });

  it('rotateRoot changes the admin password, verifies it and returns the new config', async () => {
    const old = adminPassword;
    const next = await engine.rotateRoot(generatePassword(32));
    const parsed = mlflowEngine.parseConfig(next);
    assert.notEqual(parsed.password, old);
    assert.ok(parsed.password.length >= 32);
    assert.deepEqual({ ...parsed, password: '' }, { ...config, password: '' });
    adminPassword = parsed.password;

    const oldLogin = await mlflowRequest(ml, '2.0/mlflow/users/get', {
      query: { username: ml.adminUser },
      auth: { username: ml.adminUser, password: old },
    });
    assert.equal(oldLogin.status, 401);
    // The same engine keeps working, and so does one opened from the returned config.
    const { role, prepared } = await issue({ experiments: [{ id: readExp, permission: 'READ' }] });
    await engine.revoke(role, prepared.revocation);
    const fresh = mlflowEngine.open(parsed);
    try {
      await fresh.verify();
    } finally {
      await fresh.close();
    }
    // An engine still holding the old password gets a clear error.
    const stale = mlflowEngine.open(config);
    try {
      await assert.rejects(stale.verify(), custodyError('EngineAuthFailed', 400, [old, adminPassword]));
    } finally {
      await stale.close();
    }
  });

  it('does not show passwords when inspected', () => {
    assert.ok(!inspect(engine).includes(adminPassword));
    assert.ok(!inspect(ml).includes(ml.adminPassword));
  });
});
