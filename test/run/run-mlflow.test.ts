import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { mlflowSecretVariables } from '../../src/runtime/specs.js';
import { type BrokerProcess, startBrokerProcess } from '../support/broker-process.js';
import { type MlflowServer, mlflowRequest, startMlflow } from '../support/mlflow.js';
import { ensureVenv, type PythonVenv } from '../support/python-venv.js';
import { apiOf, cliOf, workloadToken } from './helpers.js';

/** `custody run --mlflow` / `--mlflow-secret` with a real MLflow server and the real Python client. */
describe('custody run --mlflow: the Python mlflow client logs a run with leased credentials', () => {
  let mlflow: MlflowServer;
  let broker: BrokerProcess;
  let venv: PythonVenv;
  let api: Awaited<ReturnType<typeof apiOf>>;
  let cli: ReturnType<typeof cliOf>;
  let jobToken: string;
  let work: string;
  let experimentId: string;

  const script = (out: string) => `
import json, os, mlflow
mlflow.set_experiment(experiment_id=os.environ["EXP_ID"])
with mlflow.start_run() as run:
    mlflow.log_param("lr", 0.001)
    for step in range(3):
        mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
    p = os.path.join(os.environ["WORK"], "model.txt")
    open(p, "w").write("weights")
    mlflow.log_artifact(p)
    rid = run.info.run_id
open(${JSON.stringify(out)}, "w").write(json.dumps({
    "run_id": rid,
    "uri": os.environ["MLFLOW_TRACKING_URI"],
    "user": os.environ.get("MLFLOW_TRACKING_USERNAME"),
    "password": os.environ.get("MLFLOW_TRACKING_PASSWORD"),
}))
print("logged run", rid, "as", os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD"))
`;

  before(async () => {
    [mlflow, venv] = await Promise.all([startMlflow(), ensureVenv()]);
    const exp = await mlflowRequest(mlflow, '2.0/mlflow/experiments/create', {
      method: 'POST',
      body: { name: 'custody-run' },
      auth: { username: mlflow.adminUser, password: mlflow.adminPassword },
    });
    experimentId = exp.json.experiment_id;
    broker = await startBrokerProcess({ env: { CUSTODY_REAPER_INTERVAL_MS: '200' } });
    api = await apiOf(broker);
    cli = cliOf(broker);
    work = await mkdtemp(path.join(tmpdir(), 'custody-run-mlflow-'));
    await api.ok('POST', '/v1/envs', { name: 'ml' });
    await api.ok('PUT', '/v1/engines/ml/tracking', {
      type: 'mlflow',
      config: { tracking_uri: mlflow.url, username: mlflow.adminUser, password: mlflow.adminPassword },
    });
    await api.ok('PUT', '/v1/engines/ml/tracking/roles/trainer', {
      ttl: '1h',
      config: {
        experiments: [{ id: experimentId, permission: 'EDIT' }],
        username_template: 'run-{{random}}',
      },
    });
    jobToken = await workloadToken(broker, 'ml', 'trainer', [
      ['credential-user', 'ml/engines/tracking'],
      ['secrets-user', 'ml/secrets/mlflow'],
    ]);
  });

  after(async () => {
    await api?.close();
    await broker?.cleanup();
    await mlflow?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  const asUser = (user: string, password: string) =>
    mlflowRequest(mlflow, '2.0/mlflow/experiments/get', {
      query: { experiment_id: experimentId },
      auth: { username: user, password },
    });

  it('logs params, metrics and an artifact; the password is masked; afterwards the credentials get 401', async () => {
    const out = path.join(work, 'result.json');
    await writeFile(path.join(work, 'job.py'), script(out));
    const r = await cli(
      ['run', '--mlflow', 'ml/tracking/trainer', '--', venv.python, path.join(work, 'job.py')],
      {
        env: { CUSTODY_TOKEN: jobToken, EXP_ID: experimentId, WORK: work },
        timeoutMs: 120_000,
      },
    );
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    const got = JSON.parse(await readFile(out, 'utf8'));
    assert.equal(got.uri, mlflow.url);
    assert.match(got.user, /^run-/);
    assert.match(r.stdout, /logged run \w+ as run-\S+ <redacted:MLFLOW_PASSWORD>/);
    assert.ok(!r.stdout.includes(got.password));

    const admin = { username: mlflow.adminUser, password: mlflow.adminPassword };
    const run = await mlflowRequest(mlflow, '2.0/mlflow/runs/get', {
      query: { run_id: got.run_id },
      auth: admin,
    });
    assert.equal(run.status, 200, run.text);
    assert.equal(run.json.run.data.params.find((p: { key: string }) => p.key === 'lr').value, '0.001');
    assert.ok(run.json.run.data.metrics.some((m: { key: string }) => m.key === 'loss'));
    const arts = await mlflowRequest(mlflow, '2.0/mlflow/artifacts/list', {
      query: { run_id: got.run_id },
      auth: admin,
    });
    assert.ok(JSON.stringify(arts.json).includes('model.txt'), arts.text);

    const after = await asUser(got.user, got.password);
    assert.equal(after.status, 401, 'the leased credentials are refused after the run');
  });

  it('--mlflow-secret: username/password and token formats', async () => {
    assert.deepEqual(mlflowSecretVariables('{"token":"tok-1234567"}', 'x'), [
      ['MLFLOW_TRACKING_TOKEN', 'tok-1234567'],
    ]);
    assert.deepEqual(mlflowSecretVariables('u:p:q', 'x'), [
      ['MLFLOW_TRACKING_USERNAME', 'u'],
      ['MLFLOW_TRACKING_PASSWORD', 'p:q'],
    ]);
    assert.deepEqual(mlflowSecretVariables('plain-token', 'x'), [['MLFLOW_TRACKING_TOKEN', 'plain-token']]);
    assert.throws(() => mlflowSecretVariables('{"nope":1}', 'ml/mlflow/creds'), /neither token/);

    await api.ok('PUT', '/v1/secrets/ml/mlflow/creds', {
      value: JSON.stringify({ username: mlflow.adminUser, password: mlflow.adminPassword }),
      content_type: 'application/json',
    });
    const r = await cli(
      [
        'run',
        '--no-mask',
        '--mlflow-secret',
        'ml/mlflow/creds',
        '--',
        venv.python,
        '-c',
        'import os; print(os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] == os.environ["WANT"])',
      ],
      { env: { CUSTODY_TOKEN: jobToken, WANT: mlflow.adminPassword } },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${mlflow.adminUser} True\n`);
  });

  it('--mlflow-provider-env: the mlflow-secrets-auth settings unchanged (Vault provider → the Vault door)', async () => {
    await api.ok('PUT', '/v1/secrets/ml/mlflow/creds', {
      value: JSON.stringify({ username: mlflow.adminUser, password: mlflow.adminPassword }),
      content_type: 'application/json',
    });
    const out = path.join(work, 'provider-result.json');
    await writeFile(path.join(work, 'provider-job.py'), script(out));
    // What a team on the plugin already sets; only `custody run --mlflow-provider-env` is new.
    const pluginEnv = {
      CUSTODY_TOKEN: jobToken,
      MLFLOW_SECRETS_AUTH_ENABLE: 'vault',
      VAULT_ADDR: `${broker.url}/vault`,
      VAULT_TOKEN: jobToken,
      VAULT_CACERT: broker.caCertPath!,
      MLFLOW_VAULT_SECRET_PATH: 'ml/mlflow/creds',
      MLFLOW_VAULT_AUTH_MODE: 'basic',
      MLFLOW_TRACKING_URI: mlflow.url,
      EXP_ID: experimentId,
      WORK: work,
    };
    const job = ['--', venv.python, path.join(work, 'provider-job.py')];
    const r = await cli(['run', '--mlflow-provider-env', ...job], { env: pluginEnv, timeoutMs: 120_000 });
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stderr, /MLflow credential from provider vault/);
    assert.match(
      r.stdout,
      new RegExp(`logged run \\w+ as ${mlflow.adminUser} <redacted:MLFLOW_TRACKING_PASSWORD>`),
    );
    assert.ok(!r.stdout.includes(mlflow.adminPassword) && !r.stderr.includes(mlflow.adminPassword));
    const got = JSON.parse(await readFile(out, 'utf8'));
    const run = await mlflowRequest(mlflow, '2.0/mlflow/runs/get', {
      query: { run_id: got.run_id },
      auth: { username: mlflow.adminUser, password: mlflow.adminPassword },
    });
    assert.equal(run.status, 200, run.text);
    assert.ok(run.json.run.data.metrics.some((m: { key: string }) => m.key === 'loss'));

    // The allowlist is checked against the job's MLFLOW_TRACKING_URI: no credential, no command.
    const refused = await cli(['run', '--mlflow-provider-env', ...job], {
      env: { ...pluginEnv, MLFLOW_SECRETS_ALLOWED_HOSTS: 'mlflow.example.com' },
    });
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, /\(HostNotAllowed\)/);
    assert.doesNotMatch(refused.stdout, /logged run/);
    // Invalid settings are usage errors that say what is wrong.
    const bad = await cli(['run', '--mlflow-provider-env', ...job], {
      env: { ...pluginEnv, MLFLOW_VAULT_AUTH_MODE: 'digest' },
    });
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /MLFLOW_VAULT_AUTH_MODE/);
    const both = await cli(['run', '--mlflow-provider-env', '--mlflow-secret', 'ml/mlflow/creds', ...job], {
      env: pluginEnv,
    });
    assert.equal(both.code, 2);
    assert.match(both.stderr, /Only one of --mlflow, --mlflow-secret and --mlflow-provider-env/);
  });
});
