import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CreateSecretCommand,
  PutSecretValueCommand,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import {
  AwsSecretsManagerProvider,
  loadConfig,
  type ProviderError,
  providersFromConfig,
} from '../../src/client/index.js';
import { ensureVenv } from '../support/python-venv.js';

/** The AWS Secrets Manager provider (official SDK) against moto's server on loopback. */
let moto: ChildProcess;
let endpoint: string;
const credentials = { accessKeyId: 'testing', secretAccessKey: 'testing' };
let admin: SecretsManagerClient;
let v1: string;

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });

before(async () => {
  const venv = await ensureVenv();
  const port = await freePort();
  endpoint = `http://127.0.0.1:${port}`;
  moto = spawn(join(venv.bin, 'moto_server'), ['-H', '127.0.0.1', '-p', String(port)], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  moto.stderr!.on('data', (c) => (stderr += c));
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const r = await fetch(`${endpoint}/moto-api/`);
      if (r.status < 500) break;
    } catch {}
    if (Date.now() > deadline || moto.exitCode !== null)
      throw new Error(`moto_server did not start: ${stderr}`);
    await sleep(100);
  }
  admin = new SecretsManagerClient({ region: 'us-east-1', endpoint, credentials });
  const created = await admin.send(
    new CreateSecretCommand({ Name: 'mlflow/auth', SecretString: '{"token":"aws-tok-1"}' }),
  );
  v1 = created.VersionId!;
  await admin.send(
    new PutSecretValueCommand({ SecretId: 'mlflow/auth', SecretString: '{"token":"aws-tok-2"}' }),
  );
  await admin.send(
    new CreateSecretCommand({ Name: 'binary-cred', SecretBinary: Buffer.from('alice:wonder-pw', 'utf8') }),
  );
});

after(() => {
  admin?.destroy();
  moto?.kill('SIGTERM');
});

test('SecretString, #field, VersionId, VersionStage, SecretBinary', async () => {
  const p = new AwsSecretsManagerProvider({ region: 'us-east-1', endpoint, credentials });
  try {
    assert.equal(await p.get('mlflow/auth'), '{"token":"aws-tok-2"}');
    assert.equal(await p.get('mlflow/auth#token'), 'aws-tok-2');
    assert.equal(await p.get('mlflow/auth#token', { version: v1 }), 'aws-tok-1', 'VersionId');
    assert.equal(await p.get('mlflow/auth#token', { version: 'AWSPREVIOUS' }), 'aws-tok-1', 'VersionStage');
    assert.equal(await p.get('mlflow/auth#token', { version: 'stage:AWSCURRENT' }), 'aws-tok-2');
    assert.equal(await p.get('binary-cred'), 'alice:wonder-pw');
    await assert.rejects(p.get('nope'), (e: ProviderError) => {
      assert.ok(e.status === 400 || e.status === 404, String(e.status));
      assert.match(e.message, /ResourceNotFoundException/);
      return true;
    });
    await assert.rejects(p.get('mlflow/auth#token', { version: 'AWSNOSUCHSTAGE' }));
  } finally {
    await p.close();
  }
});

test('region and credentials from the SDK default chain, selected by the plugin env vars', async () => {
  const saved = { ...process.env };
  Object.assign(process.env, {
    AWS_ACCESS_KEY_ID: 'testing',
    AWS_SECRET_ACCESS_KEY: 'testing',
    AWS_REGION: 'eu-west-1',
  });
  try {
    const config = loadConfig({
      MLFLOW_SECRETS_AUTH_ENABLE: 'aws-secrets-manager',
      AWS_REGION: 'eu-west-1',
      MLFLOW_AWS_SECRET_ID: 'mlflow/auth',
    });
    const [p] = providersFromConfig(config, { awsEndpoint: endpoint });
    try {
      // moto keeps secrets per region: eu-west-1 has none.
      await assert.rejects(p.get(config.aws.secretId!), /ResourceNotFoundException/);
    } finally {
      await p.close();
    }
    const east = new AwsSecretsManagerProvider({ region: 'us-east-1', endpoint });
    try {
      assert.equal(await east.get('mlflow/auth#token'), 'aws-tok-2', 'keys from the environment');
    } finally {
      await east.close();
    }
  } finally {
    for (const k of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_REGION']) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  }
});
