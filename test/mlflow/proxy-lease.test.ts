import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Agent, request } from 'undici';
import { type BrokerProcess, CUSTODY_BIN, startBrokerProcess } from '../support/broker-process.js';
import { type MlflowServer, mlflowRequest, startMlflow } from '../support/mlflow.js';
import { runProcess as run } from '../support/process.js';
import { ensureVenv } from '../support/python-venv.js';

// Logs one metric a second for SECONDS seconds (longer than the lease TTL); every call must succeed.
const SECONDS = 8;
const SCRIPT = `
import os, sys, time, mlflow
assert "MLFLOW_TRACKING_USERNAME" not in os.environ and "MLFLOW_TRACKING_PASSWORD" not in os.environ
mlflow.set_experiment(experiment_id=sys.argv[1])
failures = 0
with mlflow.start_run() as run:
    print("RUN_ID=" + run.info.run_id, flush=True)
    for step in range(${SECONDS} + 1):
        try:
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
            print("OK step=%d t=%.1f" % (step, time.time()), flush=True)
        except Exception as e:
            failures += 1
            print("FAIL step=%d t=%.1f %s" % (step, time.time(), str(e).replace("\\n", " ")), flush=True)
        time.sleep(1)
print("FAILURES=%d" % failures, flush=True)
sys.exit(1 if failures else 0)
`;

describe('custody proxy --creds: a run longer than the lease TTL', () => {
  let ml: MlflowServer;
  let bp: BrokerProcess;
  let agent: Agent;
  let proxy: ChildProcess | undefined;
  let proxyErr = '';
  let dir: string;
  let experimentId: string;

  async function call(method: string, p: string, body?: unknown) {
    const res = await request(`${bp.url}${p}`, {
      method: method as 'GET',
      dispatcher: agent,
      headers: { authorization: `Bearer ${bp.rootToken}`, 'content-type': 'application/json' },
      body: JSON.stringify(body ?? {}),
    });
    return { status: res.statusCode, body: (await res.body.json()) as any };
  }

  before(async () => {
    [ml, bp] = await Promise.all([
      startMlflow(),
      // A fast reaper: an expired lease's MLflow user is deleted within moments.
      startBrokerProcess({ env: { CUSTODY_REAPER_INTERVAL_MS: '200' } }),
    ]);
    agent = new Agent({ connect: { ca: await readFile(bp.caCertPath!, 'utf8') } });
    dir = await mkdtemp(path.join(tmpdir(), 'custody-proxy-lease-'));
    const admin = { username: ml.adminUser, password: ml.adminPassword };
    const exp = await mlflowRequest(ml, '2.0/mlflow/experiments/create', {
      body: { name: 'long-run' },
      auth: admin,
    });
    assert.equal(exp.status, 200, exp.text);
    experimentId = exp.json.experiment_id;
    assert.equal((await call('POST', '/v1/envs', { name: 'ml' })).status < 300, true);
    const eng = await call('PUT', '/v1/engines/ml/tracking', {
      type: 'mlflow',
      config: { tracking_uri: ml.url, username: ml.adminUser, password: ml.adminPassword },
    });
    assert.equal(eng.status, 200, JSON.stringify(eng.body));
    const role = await call('PUT', '/v1/engines/ml/tracking/roles/trainer', {
      ttl: '3s',
      max_ttl: '60s',
      config: {
        experiments: [{ id: experimentId, permission: 'EDIT' }],
        username_template: 'mlp-{{random}}',
      },
    });
    assert.ok(role.status < 300, JSON.stringify(role.body));
  });

  after(async () => {
    proxy?.kill('SIGTERM');
    await agent?.close();
    await bp?.cleanup();
    if (bp) await rm(bp.dataDir, { recursive: true, force: true });
    await ml?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('every metric call through the proxy succeeds for longer than the TTL; the metrics are on the server', async () => {
    proxy = spawn(
      process.execPath,
      [
        CUSTODY_BIN,
        'proxy',
        '--upstream',
        ml.url,
        '--listen',
        '127.0.0.1:0',
        '--creds',
        'ml/tracking/trainer',
        '--allow-host',
        '127.0.0.1',
        '--strict',
      ],
      {
        env: {
          PATH: process.env.PATH,
          CUSTODY_ADDR: bp.url,
          CUSTODY_TOKEN: bp.rootToken,
          CUSTODY_CACERT: bp.caCertPath!,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    proxy.stderr!.on('data', (d) => (proxyErr += d));
    const uri = await new Promise<string>((resolve, reject) => {
      let out = '';
      proxy!.stdout!.on('data', (d) => {
        out += d;
        const m = /MLFLOW_TRACKING_URI=(\S+)\n/.exec(out);
        if (m) resolve(m[1]);
      });
      proxy!.on('exit', (code) => reject(new Error(`proxy exited ${code}: ${proxyErr}`)));
    });

    const venv = await ensureVenv();
    const script = path.join(dir, 'train.py');
    await writeFile(script, SCRIPT);
    const started = Date.now();
    const r = await run(venv.python, [script, experimentId], {
      PATH: process.env.PATH,
      HOME: dir,
      MLFLOW_TRACKING_URI: uri,
      // No client-side retries: a failed call must show up as a failure.
      MLFLOW_HTTP_REQUEST_MAX_RETRIES: '0',
    });
    const elapsed = (Date.now() - started) / 1000;
    assert.equal(r.code, 0, `${r.out}\n${r.err}\n--- proxy:\n${proxyErr}`);
    assert.match(r.out, /FAILURES=0/);
    assert.ok(elapsed > 3, `the run lasted ${elapsed}s, longer than the 3 s TTL`);
    const runId = /RUN_ID=(\S+)/.exec(r.out)?.[1];
    assert.ok(runId, r.out);

    const got = await mlflowRequest(ml, '2.0/mlflow/metrics/get-history', {
      query: { run_id: runId!, metric_key: 'loss' },
      auth: { username: ml.adminUser, password: ml.adminPassword },
    });
    assert.equal(got.status, 200, got.text);
    const steps = (got.json.metrics ?? []).map((m: { step: string | number }) => Number(m.step));
    steps.sort((a: number, b: number) => a - b);
    assert.deepEqual(
      steps,
      Array.from({ length: SECONDS + 1 }, (_, i) => i),
    );
    process.stderr.write(`script (${elapsed}s):\n${r.out}\nproxy log:\n${proxyErr}\n`);
  });
});
