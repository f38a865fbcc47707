import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { freePort } from '../support/broker-process.js';
import { type MlflowServer, mlflowRequest, startMlflow } from '../support/mlflow.js';
import { ensureVenv } from '../support/python-venv.js';
import { check, doctor, hintOf, jsonChecks, noLeak } from './helpers.js';

/**
 * `custody doctor` with the AWS Secrets Manager provider against moto's server, with moto's IAM
 * enforcement on (after the setup): a user allowed secretsmanager:GetSecretValue, one allowed
 * nothing, and keys AWS does not know. Ends in a real authenticated MLflow request.
 */
let moto: ChildProcess;
let endpoint: string;
let mlflow: MlflowServer;
let keys: Record<'reader' | 'nobody', [string, string]>;
const USER = 'aws-doctor';
const PASSWORD = `aws-canary-${Math.random().toString(36).slice(2)}-pw`;

/** IAM users, their access keys and the secret, created before moto starts enforcing IAM. */
const SETUP = `
import boto3, json, sys
kw = dict(endpoint_url=sys.argv[1], region_name='us-east-1', aws_access_key_id='setup', aws_secret_access_key='setup')
iam = boto3.client('iam', **kw)
out = {}
for name, allow in (('reader', True), ('nobody', False)):
    iam.create_user(UserName=name)
    if allow:
        iam.put_user_policy(UserName=name, PolicyName='read-secrets', PolicyDocument=json.dumps({
            'Version': '2012-10-17',
            'Statement': [{'Effect': 'Allow', 'Action': 'secretsmanager:GetSecretValue', 'Resource': '*'}]}))
    k = iam.create_access_key(UserName=name)['AccessKey']
    out[name] = [k['AccessKeyId'], k['SecretAccessKey']]
boto3.client('secretsmanager', **kw).create_secret(Name='mlflow/doctor', SecretString=sys.argv[2])
print(json.dumps(out))
`;

const env = (extra: Record<string, string | undefined> = {}) => ({
  MLFLOW_SECRETS_AUTH_ENABLE: 'aws-secrets-manager',
  AWS_REGION: 'us-east-1',
  AWS_ENDPOINT_URL: endpoint,
  AWS_ACCESS_KEY_ID: keys.reader[0],
  AWS_SECRET_ACCESS_KEY: keys.reader[1],
  AWS_CONFIG_FILE: '/nonexistent/aws-config',
  AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/aws-credentials',
  AWS_EC2_METADATA_DISABLED: 'true',
  MLFLOW_AWS_SECRET_ID: 'mlflow/doctor',
  MLFLOW_AWS_AUTH_MODE: 'basic',
  MLFLOW_SECRETS_ALLOWED_HOSTS: '127.0.0.1',
  ...extra,
});
const secrets = () => [PASSWORD, keys.reader[1], keys.nobody[1]];

before(async () => {
  const startMoto = async () => {
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
        if ((await fetch(`${endpoint}/moto-api/`)).status < 500) break;
      } catch {}
      if (Date.now() > deadline || moto.exitCode !== null)
        throw new Error(`moto_server did not start: ${stderr}`);
      await sleep(100);
    }
    const { stdout } = await promisify(execFile)(venv.python, [
      '-c',
      SETUP,
      endpoint,
      JSON.stringify({ username: USER, password: PASSWORD }),
    ]);
    keys = JSON.parse(stdout);
    // From now on moto checks every request's signature and IAM policy.
    const r = await fetch(`${endpoint}/moto-api/reset-auth`, { method: 'POST', body: '0' });
    assert.equal(r.status, 200);
  };
  [, mlflow] = await Promise.all([startMoto(), startMlflow()]);
  const created = await mlflowRequest(mlflow, '2.0/mlflow/users/create', {
    body: { username: USER, password: PASSWORD },
    auth: { username: mlflow.adminUser, password: mlflow.adminPassword },
  });
  assert.equal(created.status, 200, created.text);
});

after(async () => {
  moto?.kill('SIGTERM');
  await mlflow?.stop();
});

describe('custody doctor: AWS Secrets Manager provider (moto)', () => {
  test('all PASS, ending in an authenticated MLflow request; JSON output; no secret in the output', async () => {
    const r = await doctor(['--dry-run', mlflow.url], env());
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    check(
      r.stdout,
      'aws-secrets-manager: reachable',
      'PASS',
      /Secrets Manager in us-east-1 \(http:\/\/127\.0\.0\.1:\d+\) answered/,
    );
    check(
      r.stdout,
      'aws-secrets-manager: authentication',
      'PASS',
      /credentials from the environment \(AWS_ACCESS_KEY_ID\) accepted/,
    );
    check(r.stdout, 'aws-secrets-manager: permission', 'PASS', /may read mlflow\/doctor/);
    check(r.stdout, 'aws-secrets-manager: secret format', 'PASS', /username \+ password \(mode: basic\)/);
    check(r.stdout, 'mlflow: authenticated request', 'PASS', /→ 200 with the aws-secrets-manager credential/);
    assert.doesNotMatch(r.stdout, /^(FAIL|WARN)/m);
    noLeak(r, secrets());

    const j = await doctor(['--dry-run', mlflow.url, '--format', 'json'], env());
    assert.equal(j.code, 0, j.stdout);
    const body = jsonChecks(j);
    assert.equal(body.ok, true);
    assert.equal(body.checks.at(-1)!.name, 'mlflow: authenticated request');
    noLeak(j, secrets());
  });

  test('missing secret id: not set is a configuration FAIL; unknown is ResourceNotFoundException with the region', async () => {
    const unset = await doctor([], env({ MLFLOW_AWS_SECRET_ID: undefined }));
    assert.equal(unset.code, 1, unset.stdout);
    check(
      unset.stdout,
      'configuration',
      'FAIL',
      /MLFLOW_AWS_SECRET_ID \(or MLFLOW_AWS_SECRET_NAME\) is not set/,
    );

    const r = await doctor(['--dry-run', mlflow.url], env({ MLFLOW_AWS_SECRET_ID: 'mlflow/missing' }));
    assert.equal(r.code, 1, r.stdout);
    check(r.stdout, 'aws-secrets-manager: authentication', 'PASS');
    check(
      r.stdout,
      'aws-secrets-manager: permission',
      'FAIL',
      /^no secret mlflow\/missing in us-east-1: ResourceNotFoundException: Secrets Manager can't find the specified secret/,
    );
    assert.match(
      hintOf(r.stdout, 'aws-secrets-manager: permission'),
      /MLFLOW_AWS_SECRET_ID .* and AWS_REGION \(secrets are per region\): `aws secretsmanager list-secrets --region us-east-1`/,
    );
    check(r.stdout, 'mlflow: authenticated request', 'WARN', /no usable credential/);
    noLeak(r, secrets());
  });

  test('access denied as moto reports it (an XML AccessDenied): permission FAIL naming the principal and the action', async () => {
    const r = await doctor(
      [],
      env({ AWS_ACCESS_KEY_ID: keys.nobody[0], AWS_SECRET_ACCESS_KEY: keys.nobody[1] }),
    );
    assert.equal(r.code, 1, r.stdout);
    check(r.stdout, 'aws-secrets-manager: authentication', 'PASS');
    check(
      r.stdout,
      'aws-secrets-manager: permission',
      'FAIL',
      /^GetSecretValue on mlflow\/doctor denied: AccessDenied: User: arn:aws:iam::\d+:user\/nobody is not authorized to perform: secretsmanager:GetSecretValue/,
    );
    assert.match(
      hintOf(r.stdout, 'aws-secrets-manager: permission'),
      /secretsmanager:GetSecretValue on arn:aws:secretsmanager:us-east-1:<account>:secret:mlflow\/doctor-\* .*kms:Decrypt/,
    );
    assert.doesNotMatch(r.stdout, /SyntaxError|Deserialization/);
    noLeak(r, secrets());

    const j = await doctor(
      ['--format', 'json'],
      env({ AWS_ACCESS_KEY_ID: keys.nobody[0], AWS_SECRET_ACCESS_KEY: keys.nobody[1] }),
    );
    assert.equal(j.code, 1);
    const body = jsonChecks(j);
    assert.equal(body.ok, false);
    assert.equal(body.checks.find((c) => c.name === 'aws-secrets-manager: permission')!.status, 'FAIL');
  });

  test('keys AWS does not know, or a wrong secret key: authentication FAIL with the reason', async () => {
    const wrongKey = 'canaryWrongSecretAccessKey0123456789abcd';
    const unknown = await doctor(
      [],
      env({ AWS_ACCESS_KEY_ID: 'AKIAUNKNOWNDOCTOR000', AWS_SECRET_ACCESS_KEY: wrongKey }),
    );
    assert.equal(unknown.code, 1, unknown.stdout);
    check(unknown.stdout, 'aws-secrets-manager: reachable', 'PASS');
    check(
      unknown.stdout,
      'aws-secrets-manager: authentication',
      'FAIL',
      /InvalidClientTokenId: The security token included in the request is invalid/,
    );
    assert.match(
      hintOf(unknown.stdout, 'aws-secrets-manager: authentication'),
      /access key id is unknown to AWS/,
    );
    assert.ok(!unknown.stdout.includes('aws-secrets-manager: permission'));

    const mismatch = await doctor([], env({ AWS_SECRET_ACCESS_KEY: wrongKey }));
    assert.equal(mismatch.code, 1, mismatch.stdout);
    check(mismatch.stdout, 'aws-secrets-manager: authentication', 'FAIL', /SignatureDoesNotMatch/);
    assert.match(
      hintOf(mismatch.stdout, 'aws-secrets-manager: authentication'),
      /does not belong to AWS_ACCESS_KEY_ID/,
    );
    noLeak(unknown, [wrongKey, ...secrets()]);
    noLeak(mismatch, [wrongKey, ...secrets()]);
  });

  test('no region, no credentials, nothing listening: FAIL on the step that breaks', async () => {
    const noRegion = await doctor([], env({ AWS_REGION: undefined }));
    assert.equal(noRegion.code, 1, noRegion.stdout);
    check(noRegion.stdout, 'aws-secrets-manager: region', 'FAIL', /^no AWS region/);
    assert.match(hintOf(noRegion.stdout, 'aws-secrets-manager: region'), /set AWS_REGION/);
    const noKeys = await doctor([], env({ AWS_ACCESS_KEY_ID: undefined, AWS_SECRET_ACCESS_KEY: undefined }));
    assert.equal(noKeys.code, 1, noKeys.stdout);
    check(noKeys.stdout, 'aws-secrets-manager: authentication', 'FAIL', /^no AWS credentials found/);
    assert.match(
      hintOf(noKeys.stdout, 'aws-secrets-manager: authentication'),
      /AWS_ACCESS_KEY_ID \+ AWS_SECRET_ACCESS_KEY, or AWS_PROFILE/,
    );

    const r = await doctor([], env({ AWS_ENDPOINT_URL: `http://127.0.0.1:${await freePort()}` }));
    assert.equal(r.code, 1, r.stdout);
    check(
      r.stdout,
      'aws-secrets-manager: reachable',
      'FAIL',
      /connection refused by Secrets Manager in us-east-1/,
    );
    assert.match(hintOf(r.stdout, 'aws-secrets-manager: reachable'), /is the server running/);
  });
});
