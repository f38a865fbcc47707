import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { HostPolicy } from '../../src/client/mlflow/allowlist.js';
import { credentialFromSecret } from '../../src/client/mlflow/credentials.js';
import { fetchWithAuth } from '../../src/client/mlflow/fetch-with-auth.js';
import { staticSource } from '../../src/client/mlflow/source.js';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { type MlflowServer, mlflowRequest, startMlflow } from '../support/mlflow.js';
import { runProcess as run } from '../support/process.js';
import { ensureVenv } from '../support/python-venv.js';

const REPO = fileURLToPath(new URL('../..', import.meta.url));

const SCRIPT = `
import os, sys, mlflow
from mlflow.exceptions import MlflowException
assert "MLFLOW_TRACKING_USERNAME" not in os.environ and "MLFLOW_TRACKING_PASSWORD" not in os.environ
mlflow.set_experiment("proxy-test")
with mlflow.start_run() as run:
    mlflow.log_param("lr", "0.01")
    mlflow.log_metric("loss", 0.5)
    with open(sys.argv[1], "w") as f:
        f.write("artifact body")
    mlflow.log_artifact(sys.argv[1])
    leaked = "no"
    try:
        mlflow.log_param("key", os.environ["LEAK_VALUE"])
    except MlflowException as e:
        leaked = "refused: " + str(e)
    print("RUN_ID=" + run.info.run_id)
    print("LEAK=" + leaked.replace("\\n", " "))
`;

const REDACT_SCRIPT = `
import base64, os, mlflow
mlflow.set_experiment("proxy-redact-test")
with mlflow.start_run() as run:
    mlflow.log_param("lr", "0.01")
    mlflow.log_param("key", "api=" + os.environ["LEAK_VALUE"])
    mlflow.set_tag("enc", "b64:" + base64.b64encode(os.environ["LEAK_VALUE"].encode()).decode())
    print("RUN_ID=" + run.info.run_id)
`;

describe('custody proxy with a real MLflow client', () => {
  let ml: MlflowServer;
  let tb: TestBroker;
  const proxies: ChildProcess[] = [];
  let proxyErr = '';
  let dir: string;
  const password = `pw-${randomBytes(12).toString('hex')}`;
  const user = 'trainer';

  before(async () => {
    [ml, tb] = await Promise.all([startMlflow({ defaultPermission: 'EDIT' }), startTestBroker()]);
    dir = await mkdtemp(path.join(tmpdir(), 'custody-proxy-'));
    const admin = { username: ml.adminUser, password: ml.adminPassword };
    const created = await mlflowRequest(ml, '2.0/mlflow/users/create', {
      body: { username: user, password },
      auth: admin,
    });
    assert.equal(created.status, 200, created.text);
    assert.equal((await tb.call('POST', '/v1/envs', { body: { name: 'prod' } })).status < 300, true);
    const put = await tb.call('PUT', '/v1/secrets/prod/mlflow/creds', {
      body: { value: JSON.stringify({ username: user, password }) },
    });
    assert.ok(put.status < 300, JSON.stringify(put.body));
  });
  /** `custody proxy --secret prod/mlflow/creds` (plus `extra`); resolves with its tracking URI. */
  async function startProxy(extra: string[]): Promise<string> {
    proxyErr = '';
    const proxy = spawn(
      process.execPath,
      [
        path.join(REPO, 'bin/custody'),
        'proxy',
        '--upstream',
        ml.url,
        '--listen',
        '127.0.0.1:0',
        '--secret',
        'prod/mlflow/creds',
        '--allow-host',
        '127.0.0.1',
        '--strict',
        ...extra,
      ],
      {
        env: {
          PATH: process.env.PATH,
          CUSTODY_ADDR: tb.url,
          CUSTODY_TOKEN: tb.rootToken,
          CUSTODY_CACERT: tb.broker.caCertPath!,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    proxies.push(proxy);
    proxy.stderr!.on('data', (d) => (proxyErr += d));
    return new Promise<string>((resolve, reject) => {
      let out = '';
      proxy.stdout!.on('data', (d) => {
        out += d;
        proxyErr += d;
        const m = /MLFLOW_TRACKING_URI=(\S+)\n/.exec(out);
        if (m) resolve(m[1]);
      });
      proxy.on('exit', (code) => reject(new Error(`proxy exited ${code}: ${proxyErr}`)));
    });
  }

  after(async () => {
    for (const p of proxies) p.kill('SIGTERM');
    await Promise.allSettled([ml?.stop(), tb?.stop()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('logs params, metrics and an artifact with no credentials in the script; a secret param is refused', async () => {
    const uri = await startProxy([]);
    assert.match(uri, /^http:\/\/127\.0\.0\.1:\d+$/);

    const venv = await ensureVenv();
    const script = path.join(dir, 'train.py');
    await writeFile(script, SCRIPT);
    const r = await run(venv.python, [script, path.join(dir, 'model.txt')], {
      PATH: process.env.PATH,
      HOME: dir,
      MLFLOW_TRACKING_URI: uri,
      LEAK_VALUE: password,
      MLFLOW_HTTP_REQUEST_MAX_RETRIES: '0',
    });
    assert.equal(r.code, 0, `${r.err}\n--- proxy:\n${proxyErr}`);
    const runId = /RUN_ID=(\S+)/.exec(r.out)?.[1];
    assert.ok(runId, r.out);
    assert.match(r.out, /LEAK=refused: .*Custody refused: field value contains a secret value/);
    assert.ok(!r.out.includes(password) && !r.err.includes(password));

    // On the server: the params, the metric and the artifact; the secret param is absent.
    const admin = { username: ml.adminUser, password: ml.adminPassword };
    const got = await mlflowRequest(ml, '2.0/mlflow/runs/get', { query: { run_id: runId! }, auth: admin });
    assert.equal(got.status, 200, got.text);
    const params = got.json.run.data.params ?? [];
    assert.deepEqual(params, [{ key: 'lr', value: '0.01' }]);
    assert.equal(got.json.run.data.metrics[0].key, 'loss');
    assert.ok(!got.text.includes(password));
    const arts = await mlflowRequest(ml, '2.0/mlflow/artifacts/list', {
      query: { run_id: runId! },
      auth: admin,
    });
    assert.equal(arts.status, 200, arts.text);
    assert.deepEqual(
      arts.json.files.map((f: { path: string }) => f.path),
      ['model.txt'],
    );
    assert.ok(!proxyErr.includes(password));
  });

  it('--leak-guard redact: a secret param and a base64 tag are accepted but stored redacted', async () => {
    const uri = await startProxy(['--leak-guard', 'redact']);
    const venv = await ensureVenv();
    const script = path.join(dir, 'redact.py');
    await writeFile(script, REDACT_SCRIPT);
    const encoded = Buffer.from(password).toString('base64');
    const r = await run(venv.python, [script], {
      PATH: process.env.PATH,
      HOME: dir,
      MLFLOW_TRACKING_URI: uri,
      LEAK_VALUE: password,
      MLFLOW_HTTP_REQUEST_MAX_RETRIES: '0',
    });
    assert.equal(r.code, 0, `${r.err}\n--- proxy:\n${proxyErr}`);
    const runId = /RUN_ID=(\S+)/.exec(r.out)?.[1];
    assert.ok(runId, r.out);

    const admin = { username: ml.adminUser, password: ml.adminPassword };
    const got = await mlflowRequest(ml, '2.0/mlflow/runs/get', { query: { run_id: runId! }, auth: admin });
    assert.equal(got.status, 200, got.text);
    const params = Object.fromEntries(
      (got.json.run.data.params ?? []).map((p: { key: string; value: string }) => [p.key, p.value]),
    );
    const tags = Object.fromEntries(
      (got.json.run.data.tags ?? []).map((t: { key: string; value: string }) => [t.key, t.value]),
    );
    assert.equal(params.lr, '0.01', 'a harmless param is stored as sent');
    assert.match(params.key, /<redacted/, 'the secret param is stored, redacted');
    assert.match(params.key, /^api=/, 'the rest of the value is kept');
    assert.match(tags.enc, /<redacted/, 'the base64 form in the tag is redacted');
    assert.match(tags.enc, /^b64:/);
    for (const form of [password, encoded]) {
      assert.ok(!got.text.includes(form), 'a secret form is stored on the server');
    }
    assert.ok(!encoded.includes(password));
    assert.match(
      proxyErr,
      /redacted a secret value in field \S+ of POST \/api\/2\.0\/mlflow\/runs\/log-parameter/,
    );
    assert.ok(
      !proxyErr.includes(password) && !proxyErr.includes(encoded),
      'a secret form appears in the proxy output',
    );
    assert.ok(!r.out.includes(password) && !r.err.includes(password));
  });

  it('fetchWithAuth talks to the real server (401 without, 200 with the credential)', async () => {
    const source = staticSource(credentialFromSecret(JSON.stringify({ username: user, password })));
    const policy = new HostPolicy({ allowedHosts: ['127.0.0.1'] });
    const url = `${ml.url}/api/2.0/mlflow/experiments/get-by-name?experiment_name=proxy-test`;
    assert.equal((await fetch(url)).status, 401);
    const res = await fetchWithAuth(url, {}, { source, policy });
    assert.equal(res.status, 200, await res.clone().text());
  });
});
