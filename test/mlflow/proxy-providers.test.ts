import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { CreateSecretCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import pino from 'pino';
import { Agent, request } from 'undici';
import { type RunningBroker, startBroker } from '../../src/broker.js';
import {
  type ManagedIdentityEndpoint,
  startManagedIdentityEndpoint,
} from '../../src/compat/azure/managed-identity.js';
import { resolveServerConfig } from '../../src/config.js';
import { type MlflowServer, mlflowRequest, startMlflow } from '../support/mlflow.js';
import { freePort, runProcess as run } from '../support/process.js';
import { ensureVenv } from '../support/python-venv.js';

/**
 * Issue 7, test (c): a real Python `mlflow` script logs params, metrics and an artifact to a real
 * MLflow server with basic auth, through `custody proxy --provider-env`, with the credential stored
 * in each provider the mlflow-secrets-auth variables select — Custody, HashiCorp Vault (Custody's
 * Vault door), Azure Key Vault (Custody's Azure door, official SDK, managed identity) and AWS Secrets
 * Manager (moto's server) — and no MLflow credential in the script's environment. Then failover
 * between providers, and the configuration errors `--provider-env` reports.
 *
 * Each provider's secret names its own MLflow user; the experiment the script creates is owned
 * (MANAGE) by that user, which shows whose credential the proxy sent.
 */

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const CUSTODY = path.join(REPO, 'bin/custody');
const DOMAIN = 'vault.custody.test';

const SCRIPT = `
import os, sys, mlflow
leaked = [k for k in os.environ if k.startswith("MLFLOW_TRACKING_") and k != "MLFLOW_TRACKING_URI"]
assert not leaked, leaked
mlflow.set_experiment(sys.argv[2])
with mlflow.start_run() as run:
    mlflow.log_param("provider", sys.argv[3])
    mlflow.log_metric("loss", 0.25)
    art = os.path.join(sys.argv[1], "model-" + sys.argv[3] + ".txt")
    with open(art, "w") as f:
        f.write("weights via " + sys.argv[3])
    mlflow.log_artifact(art)
    print("RUN_ID=" + run.info.run_id)
    print("EXPERIMENT_ID=" + run.info.experiment_id)
`;

/**
 * Test-only name resolution for the proxy process: `*.custody.test` → 127.0.0.1, so the Azure SDK
 * talks to `https://dev.vault.custody.test:PORT` (a vault host the challenge-resource check accepts).
 */
const DNS_HOOK = `
import dns from 'node:dns';
const original = dns.lookup;
dns.lookup = function lookup(host, opts, cb) {
  if (typeof opts === 'function') [cb, opts] = [opts, {}];
  if (typeof host === 'string' && host.endsWith('.custody.test')) {
    const o = typeof opts === 'number' ? { family: opts } : (opts ?? {});
    if (o.all) return process.nextTick(cb, null, [{ address: '127.0.0.1', family: 4 }]);
    return process.nextTick(cb, null, '127.0.0.1', 4);
  }
  return original.call(dns, host, opts, cb);
};
`;

const STACK = /^\s+at .+[(:]\d+/m;

interface RunningProxy {
  uri: string;
  /** stdout + stderr so far. */
  output(): string;
  stop(): Promise<void>;
}

describe('custody proxy --provider-env: the MLflow credential from each provider', () => {
  let ml: MlflowServer;
  let broker: RunningBroker;
  let brokerCa: string;
  let rootToken: string;
  let dispatcher: Agent;
  let mi: ManagedIdentityEndpoint;
  let moto: ChildProcess;
  let motoUrl: string;
  let python: string;
  let dir: string;
  let dnsHook: string;
  const proxies = new Set<ChildProcess>();

  const users = {
    custody: { username: 'via-custody', password: `pw-custody-${randomBytes(10).toString('hex')}` },
    vault: { username: 'via-vault', password: `pw-vault-${randomBytes(10).toString('hex')}` },
    azure: { username: 'via-azure', password: `pw-azure-${randomBytes(10).toString('hex')}` },
    aws: { username: 'via-aws', password: `pw-aws-${randomBytes(10).toString('hex')}` },
  };
  const admin = () => ({ username: ml.adminUser, password: ml.adminPassword });

  async function call(method: string, urlPath: string, body?: unknown): Promise<any> {
    const res = await request(`${broker.url}${urlPath}`, {
      method: method as 'GET',
      headers: { authorization: `Bearer ${rootToken}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      dispatcher,
    });
    const text = await res.body.text();
    assert.ok(res.statusCode < 300, `${method} ${urlPath}: ${res.statusCode} ${text}`);
    return text ? JSON.parse(text) : null;
  }

  async function startMoto(): Promise<void> {
    const venv = await ensureVenv();
    const port = await freePort();
    motoUrl = `http://127.0.0.1:${port}`;
    moto = spawn(path.join(venv.bin, 'moto_server'), ['-H', '127.0.0.1', '-p', String(port)], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    moto.stderr!.on('data', (c) => (stderr += c));
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        const r = await fetch(`${motoUrl}/moto-api/`);
        if (r.status < 500) return;
      } catch {}
      if (Date.now() > deadline || moto.exitCode !== null)
        throw new Error(`moto_server did not start: ${stderr}`);
      await sleep(100);
    }
  }

  async function startAzureBroker(): Promise<void> {
    const dataDir = path.join(dir, 'broker');
    const config = resolveServerConfig(
      { dataDir, listen: '127.0.0.1:0', logLevel: 'warn' },
      { CUSTODY_AZURE_DOMAINS: DOMAIN },
    );
    broker = await startBroker(config, pino({ level: 'warn' }, { write: () => {} }));
    brokerCa = broker.caCertPath!;
    rootToken = (await readFile(broker.rootTokenPath!, 'utf8')).trim();
    dispatcher = new Agent({ connect: { ca: await readFile(brokerCa, 'utf8') } });
    mi = await startManagedIdentityEndpoint({
      getToken: async () => ({ token: rootToken, expiresAt: Date.now() + 3_600_000 }),
    });
  }

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'custody-proxy-providers-'));
    dnsHook = path.join(dir, 'dns-hook.mjs');
    await writeFile(dnsHook, DNS_HOOK);
    await writeFile(path.join(dir, 'train.py'), SCRIPT);
    python = (await ensureVenv()).python;
    [ml] = await Promise.all([startMlflow(), startAzureBroker(), startMoto()]);

    for (const u of Object.values(users)) {
      const r = await mlflowRequest(ml, '2.0/mlflow/users/create', { body: u, auth: admin() });
      assert.equal(r.status, 200, r.text);
    }
    await call('POST', '/v1/envs', { name: 'dev' });
    // Custody: a JSON {"username","password"} secret.
    await call('PUT', '/v1/secrets/dev/mlflow-custody', { value: JSON.stringify(users.custody) });
    // Vault (KV v2 through the Vault door): the two fields, read as a JSON object.
    await call('POST', '/vault/v1/secret/data/mlflow/vault-cred', { data: users.vault });
    // Azure Key Vault (the Azure door serves environment dev as vault "dev"): plain user:pass.
    await call('PUT', '/v1/secrets/dev/mlflow-azure', {
      value: `${users.azure.username}:${users.azure.password}`,
    });
    // AWS Secrets Manager: user:pass as SecretBinary.
    const aws = new SecretsManagerClient({
      region: 'us-east-1',
      endpoint: motoUrl,
      credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
    });
    try {
      await aws.send(
        new CreateSecretCommand({
          Name: 'mlflow/aws-cred',
          SecretBinary: Buffer.from(`${users.aws.username}:${users.aws.password}`),
        }),
      );
    } finally {
      aws.destroy();
    }
  });

  after(async () => {
    for (const p of proxies) p.kill('SIGKILL');
    moto?.kill('SIGTERM');
    await Promise.allSettled([ml?.stop(), mi?.close(), broker?.close(), dispatcher?.close()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** Each provider's variables, as the mlflow-secrets-auth plugin names them. */
  const envFor = {
    custody: (): NodeJS.ProcessEnv => ({
      MLFLOW_SECRETS_AUTH_ENABLE: 'custody',
      CUSTODY_ADDR: broker.url,
      CUSTODY_TOKEN: rootToken,
      CUSTODY_CACERT: brokerCa,
      CUSTODY_MLFLOW_SECRET: 'dev/mlflow-custody',
      MLFLOW_CUSTODY_AUTH_MODE: 'basic',
    }),
    vault: (secretPath = 'secret/mlflow/vault-cred'): NodeJS.ProcessEnv => ({
      MLFLOW_SECRETS_AUTH_ENABLE: 'vault',
      VAULT_ADDR: `${broker.url}/vault`,
      VAULT_TOKEN: rootToken,
      VAULT_CACERT: brokerCa,
      MLFLOW_VAULT_SECRET_PATH: secretPath,
      MLFLOW_VAULT_AUTH_MODE: 'basic',
    }),
    azure: (): NodeJS.ProcessEnv => ({
      MLFLOW_SECRETS_AUTH_ENABLE: 'azure-key-vault',
      AZURE_KEY_VAULT_URL: `https://dev.${DOMAIN}:${new URL(broker.url).port}`,
      MLFLOW_AZURE_SECRET_NAME: 'mlflow-azure',
      MLFLOW_AZURE_AUTH_MODE: 'basic',
      // DefaultAzureCredential → managed identity (App Service style) from Custody's endpoint.
      ...mi.env,
      NODE_EXTRA_CA_CERTS: brokerCa,
      NODE_OPTIONS: `--import ${dnsHook}`,
    }),
    aws: (): NodeJS.ProcessEnv => ({
      MLFLOW_SECRETS_AUTH_ENABLE: 'aws-secrets-manager',
      AWS_REGION: 'us-east-1',
      AWS_ENDPOINT_URL: motoUrl,
      AWS_ACCESS_KEY_ID: 'testing',
      AWS_SECRET_ACCESS_KEY: 'testing',
      AWS_EC2_METADATA_DISABLED: 'true',
      MLFLOW_AWS_SECRET_ID: 'mlflow/aws-cred',
      MLFLOW_AWS_AUTH_MODE: 'basic',
    }),
  };

  /** `custody proxy --provider-env` with only `env` (and PATH/HOME) in its environment. */
  async function startProxy(env: NodeJS.ProcessEnv): Promise<RunningProxy> {
    const p = spawn(
      process.execPath,
      [
        CUSTODY,
        'proxy',
        '--provider-env',
        '--upstream',
        ml.url,
        '--listen',
        '127.0.0.1:0',
        '--strict',
        '--allow-host',
        '127.0.0.1',
      ],
      { env: { PATH: process.env.PATH, HOME: dir, ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    proxies.add(p);
    let output = '';
    p.stderr!.on('data', (d) => (output += d));
    const exited = new Promise<void>((resolve) => p.once('exit', () => resolve()));
    const uri = await new Promise<string>((resolve, reject) => {
      p.stdout!.on('data', (d) => {
        output += d;
        const m = /MLFLOW_TRACKING_URI=(\S+)\n/.exec(output);
        if (m) resolve(m[1]);
      });
      p.once('exit', (code) => reject(new Error(`the proxy exited ${code}:\n${output}`)));
    });
    return {
      uri,
      output: () => output,
      async stop() {
        p.kill('SIGTERM');
        await exited;
        proxies.delete(p);
      },
    };
  }

  /** A user's effective permission on an experiment (MLflow 3's permission API, as the admin). */
  async function permission(experimentId: string, username: string): Promise<string> {
    const r = await mlflowRequest(ml, '3.0/mlflow/users/permissions/get', {
      query: { username, resource_type: 'experiment', resource_id: experimentId },
      auth: admin(),
    });
    assert.equal(r.status, 200, r.text);
    return r.json.permission;
  }

  /** Runs the script through the proxy and checks, as the admin, what reached the server. */
  async function logRunThrough(
    proxy: RunningProxy,
    provider: string,
    user: { username: string; password: string },
  ) {
    const experiment = `providers-${provider}`;
    const r = await run(python, [path.join(dir, 'train.py'), dir, experiment, provider], {
      PATH: process.env.PATH,
      HOME: dir,
      MLFLOW_TRACKING_URI: proxy.uri,
      MLFLOW_HTTP_REQUEST_MAX_RETRIES: '0',
    });
    assert.equal(r.code, 0, `${r.out}\n${r.err}\n--- proxy:\n${proxy.output()}`);
    const runId = /RUN_ID=(\S+)/.exec(r.out)?.[1];
    const experimentId = /EXPERIMENT_ID=(\S+)/.exec(r.out)?.[1];
    assert.ok(runId && experimentId, r.out);

    const got = await mlflowRequest(ml, '2.0/mlflow/runs/get', { query: { run_id: runId }, auth: admin() });
    assert.equal(got.status, 200, got.text);
    assert.deepEqual(got.json.run.data.params, [{ key: 'provider', value: provider }]);
    assert.deepEqual(
      got.json.run.data.metrics.map((m: { key: string; value: number }) => [m.key, m.value]),
      [['loss', 0.25]],
    );
    const arts = await mlflowRequest(ml, '2.0/mlflow/artifacts/list', {
      query: { run_id: runId },
      auth: admin(),
    });
    assert.equal(arts.status, 200, arts.text);
    assert.deepEqual(
      arts.json.files.map((f: { path: string }) => f.path),
      [`model-${provider}.txt`],
    );
    // The experiment was created with this provider's user (its creator gets MANAGE on it).
    assert.equal(await permission(experimentId, user.username), 'MANAGE');
    const other = Object.values(users).find((u) => u.username !== user.username)!;
    assert.notEqual(await permission(experimentId, other.username), 'MANAGE');

    // No secret in any output: the password (canary), nor the whole user:pass.
    for (const text of [r.out, r.err, proxy.output()]) {
      assert.ok(!text.includes(user.password), 'the MLflow password appears in an output');
    }
  }

  const cases = [
    { provider: 'custody', user: () => users.custody, env: () => envFor.custody() },
    { provider: 'vault', user: () => users.vault, env: () => envFor.vault() },
    { provider: 'azure-key-vault', user: () => users.azure, env: () => envFor.azure() },
    { provider: 'aws-secrets-manager', user: () => users.aws, env: () => envFor.aws() },
  ];
  for (const c of cases) {
    it(`${c.provider}: a Python mlflow run logs through the proxy with the stored credential`, async () => {
      const proxy = await startProxy(c.env());
      try {
        await logRunThrough(proxy, c.provider, c.user());
        assert.match(proxy.output(), new RegExp(`MLflow credential from provider ${c.provider}\\b`));
        assert.ok(!proxy.output().includes(rootToken), 'the provider token appears in the proxy output');
      } finally {
        await proxy.stop();
      }
    });
  }

  it('failover: Vault (first) has no such secret, AWS (second, its own auth mode) serves', async () => {
    const env = {
      ...envFor.vault('secret/mlflow/missing'),
      ...envFor.aws(),
      MLFLOW_SECRETS_AUTH_ENABLE: 'vault,aws-secrets-manager',
      // Vault's auth mode is bearer (the default): AWS's user:pass is parsed with AWS's basic mode.
      MLFLOW_VAULT_AUTH_MODE: '',
    };
    const proxy = await startProxy(env);
    try {
      await logRunThrough(proxy, 'failover', users.aws);
      const out = proxy.output();
      assert.match(out, /provider vault failed: .*404/);
      assert.match(out, /secret served by aws-secrets-manager after failover/);
      assert.match(out, /MLflow credential from provider aws-secrets-manager\b/);
      assert.ok(!out.includes(rootToken));
    } finally {
      await proxy.stop();
    }
  });

  it('failover: a provider whose secret does not fit its auth mode is skipped', async () => {
    // Custody's secret is a username/password, but Custody's mode says bearer: unusable, next.
    const env = {
      ...envFor.custody(),
      ...envFor.vault(),
      MLFLOW_SECRETS_AUTH_ENABLE: 'custody,vault',
      MLFLOW_CUSTODY_AUTH_MODE: 'bearer',
    };
    const r = await startProxy(env);
    try {
      const out = r.output();
      assert.match(out, /provider custody failed: .*auth mode is bearer/);
      assert.match(out, /MLflow credential from provider vault\b/);
      // The proxy sends Vault's user: the experiment it creates belongs to via-vault.
      const res = await request(`${r.uri}/api/2.0/mlflow/experiments/create`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'skipped-custody' }),
      });
      const created = (await res.body.json()) as { experiment_id: string };
      assert.equal(res.statusCode, 200, JSON.stringify(created));
      assert.equal(await permission(created.experiment_id, users.vault.username), 'MANAGE');
      assert.ok(!out.includes(users.custody.password) && !out.includes(users.vault.password));
    } finally {
      await r.stop();
    }
  });

  describe('configuration errors: exit 2, what is wrong, no stack trace', () => {
    const proxyArgs = [
      'proxy',
      '--provider-env',
      '--upstream',
      'http://127.0.0.1:1',
      '--allow-host',
      '127.0.0.1',
    ];
    const cli = (env: NodeJS.ProcessEnv) =>
      run(process.execPath, [CUSTODY, ...proxyArgs], { PATH: process.env.PATH, HOME: tmpdir(), ...env });

    const bad: { name: string; env: NodeJS.ProcessEnv; message: RegExp }[] = [
      {
        name: 'an unknown provider',
        env: { MLFLOW_SECRETS_AUTH_ENABLE: 'nonsense' },
        message: /MLFLOW_SECRETS_AUTH_ENABLE: unknown provider "nonsense"/,
      },
      {
        name: 'vault without VAULT_ADDR',
        env: {
          MLFLOW_SECRETS_AUTH_ENABLE: 'vault',
          VAULT_TOKEN: 'hvs.canary-token-1234567890',
          MLFLOW_VAULT_SECRET_PATH: 'secret/x',
        },
        message: /vault is enabled but VAULT_ADDR is not set/,
      },
      {
        name: 'no provider enabled',
        env: {},
        message: /--provider-env: no provider is enabled/,
      },
      {
        name: 'a bad auth mode and TTL',
        env: {
          MLFLOW_SECRETS_AUTH_ENABLE: 'aws-secrets-manager',
          MLFLOW_AWS_SECRET_ID: 'x',
          MLFLOW_AWS_AUTH_MODE: 'digest',
          MLFLOW_AWS_TTL_SEC: 'soon',
        },
        message:
          /MLFLOW_AWS_AUTH_MODE must be bearer.*basic, got "digest"[\s\S]*MLFLOW_AWS_TTL_SEC must be a whole number/,
      },
      {
        name: 'an http Key Vault URL',
        env: {
          MLFLOW_SECRETS_AUTH_ENABLE: 'azure-key-vault',
          AZURE_KEY_VAULT_URL: 'http://kv.vault.azure.net',
          MLFLOW_AZURE_SECRET_NAME: 'x',
        },
        message: /AZURE_KEY_VAULT_URL must be an https URL/,
      },
    ];
    for (const b of bad) {
      it(b.name, async () => {
        const r = await cli(b.env);
        assert.equal(r.code, 2, `${r.out}\n${r.err}`);
        assert.match(r.err, b.message);
        assert.doesNotMatch(r.err, STACK);
        assert.ok(!r.out.includes('MLFLOW_TRACKING_URI'));
        assert.ok(!`${r.out}${r.err}`.includes('canary-token'), 'a token value appears in the output');
      });
    }

    it('every provider failing at start: exit 1, each reason, no stack, no token', async () => {
      const r = await run(process.execPath, [CUSTODY, ...proxyArgs], {
        PATH: process.env.PATH,
        HOME: dir,
        ...envFor.vault('secret/mlflow/missing'),
      });
      assert.equal(r.code, 1, `${r.out}\n${r.err}`);
      assert.match(r.err, /could not get the MLflow credential: .*vault.*404/);
      assert.doesNotMatch(r.err, STACK);
      assert.ok(!r.out.includes('MLFLOW_TRACKING_URI'));
      assert.ok(!`${r.out}${r.err}`.includes(rootToken));
    });
  });
});
