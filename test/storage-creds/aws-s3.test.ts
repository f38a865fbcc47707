import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import path, { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CreateAccessKeyCommand,
  CreateRoleCommand,
  CreateUserCommand,
  DeleteRolePolicyCommand,
  GetRolePolicyCommand,
  IAMClient,
  PutRolePolicyCommand,
  PutUserPolicyCommand,
} from '@aws-sdk/client-iam';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { parseAwsS3Role } from '../../src/engines/aws-s3/config.js';
import { sessionPolicy } from '../../src/engines/aws-s3/index.js';
import { apiOf, cliOf } from '../run/helpers.js';
import { type BrokerProcess, startBrokerProcess } from '../support/broker-process.js';
import { freePort, onProcessExit } from '../support/process.js';
import { ensureVenv, type PythonVenv } from '../support/python-venv.js';

/**
 * The aws-s3 engine against moto's server (STS, IAM and S3 wire protocols) with request
 * authorization ON (INITIAL_NO_AUTH_ACTION_COUNT): moto then enforces the IAM role's identity
 * policies — including the deny Custody adds on revocation — but, as found here, NOT session
 * policies passed to AssumeRole. So the session policy's effect cannot be shown on moto: its exact
 * document is asserted instead, and the duration, the lease terms and real use (boto3 in
 * `custody run`) are tested on the wire.
 */
describe('aws-s3 engine on moto', () => {
  let moto: ChildProcess;
  let endpoint: string;
  let venv: PythonVenv;
  let broker: BrokerProcess;
  let api: Awaited<ReturnType<typeof apiOf>>;
  let cli: ReturnType<typeof cliOf>;
  let adminKey: { id: string; secret: string };
  let roleArn: string;
  const region = 'us-east-1';

  const s3As = (d: Record<string, string>) =>
    new S3Client({
      region,
      endpoint,
      forcePathStyle: true,
      credentials: {
        accessKeyId: d.AWS_ACCESS_KEY_ID,
        secretAccessKey: d.AWS_SECRET_ACCESS_KEY,
        sessionToken: d.AWS_SESSION_TOKEN,
      },
    });
  /**
   * moto evaluates the deny Custody writes on revocation WITHOUT its conditions (session name,
   * issue time), so on moto it blocks every session of the role: tests that read start clean.
   */
  const clearRevocations = async () => {
    const iam = new IAMClient({
      region,
      endpoint,
      credentials: { accessKeyId: adminKey.id, secretAccessKey: adminKey.secret },
    });
    await iam
      .send(new DeleteRolePolicyCommand({ RoleName: 'ml-data', PolicyName: 'custody-revoked-sessions' }))
      .catch(() => {});
    iam.destroy();
  };
  const read = async (s3: S3Client, key: string) =>
    s3.send(new GetObjectCommand({ Bucket: 'datasets', Key: key })).then(
      async (r) => `ok:${await r.Body!.transformToString()}`,
      (e: { name?: string }) => `denied:${e.name}`,
    );

  before(async () => {
    venv = await ensureVenv();
    const port = await freePort();
    endpoint = `http://127.0.0.1:${port}`;
    // The first three requests (making the admin user and its key) go unauthenticated; every
    // request after them is authorized against IAM policies.
    moto = spawn(join(venv.bin, 'moto_server'), ['-H', '127.0.0.1', '-p', String(port)], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, INITIAL_NO_AUTH_ACTION_COUNT: '3' },
    });
    onProcessExit(() => moto.exitCode === null && moto.kill('SIGKILL'));
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
    const boot = new IAMClient({
      region,
      endpoint,
      credentials: { accessKeyId: 'AKIABOOTSTRAP0000000', secretAccessKey: 'boot' },
    });
    await boot.send(new CreateUserCommand({ UserName: 'custody' }));
    await boot.send(
      new PutUserPolicyCommand({
        UserName: 'custody',
        PolicyName: 'broker',
        PolicyDocument: JSON.stringify({
          Version: '2012-10-17',
          Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }],
        }),
      }),
    );
    const k = (await boot.send(new CreateAccessKeyCommand({ UserName: 'custody' }))).AccessKey!;
    boot.destroy();
    adminKey = { id: k.AccessKeyId!, secret: k.SecretAccessKey! };
    const credentials = { accessKeyId: adminKey.id, secretAccessKey: adminKey.secret };
    const iam = new IAMClient({ region, endpoint, credentials });
    const role = await iam.send(
      new CreateRoleCommand({
        RoleName: 'ml-data',
        AssumeRolePolicyDocument: JSON.stringify({
          Version: '2012-10-17',
          Statement: [{ Effect: 'Allow', Principal: { AWS: '*' }, Action: 'sts:AssumeRole' }],
        }),
      }),
    );
    roleArn = role.Role!.Arn!;
    await iam.send(
      new PutRolePolicyCommand({
        RoleName: 'ml-data',
        PolicyName: 's3',
        PolicyDocument: JSON.stringify({
          Version: '2012-10-17',
          Statement: [{ Effect: 'Allow', Action: 's3:*', Resource: '*' }],
        }),
      }),
    );
    iam.destroy();
    const s3 = new S3Client({ region, endpoint, forcePathStyle: true, credentials });
    await s3.send(new CreateBucketCommand({ Bucket: 'datasets' }));
    for (const [key, body] of [
      ['train/a.csv', 'train-data'],
      ['eval/b.csv', 'eval-data'],
    ])
      await s3.send(new PutObjectCommand({ Bucket: 'datasets', Key: key, Body: body }));
    s3.destroy();

    broker = await startBrokerProcess();
    api = await apiOf(broker);
    cli = cliOf(broker);
    await api.ok('POST', '/v1/envs', { name: 'dev' });
    await api.ok('PUT', '/v1/engines/dev/s3', {
      type: 'aws-s3',
      config: {
        region,
        access_key_id: adminKey.id,
        secret_access_key: adminKey.secret,
        sts_endpoint: endpoint,
        iam_endpoint: endpoint,
        s3_endpoint: endpoint,
        max_session_duration: 3600,
        revoke_sessions: true,
      },
    });
    await api.ok('PUT', '/v1/engines/dev/s3/roles/train', {
      ttl: '30m',
      max_ttl: '1h',
      config: { role_arn: roleArn, bucket: 'datasets', prefix: 'train', actions: ['read', 'list'] },
    });
  });

  after(async () => {
    await api?.close();
    await broker?.cleanup();
    moto?.kill('SIGTERM');
  });

  it('the session policy is exactly the role: bucket, prefix, actions (moto does not enforce session policies)', () => {
    const role = parseAwsS3Role({
      role_arn: roleArn,
      bucket: 'datasets',
      prefix: 'train',
      actions: 'list,read',
    });
    assert.deepEqual(sessionPolicy(role), {
      Version: '2012-10-17',
      Statement: [
        {
          Sid: 'CustodyObjects',
          Effect: 'Allow',
          Action: ['s3:GetObject', 's3:GetObjectVersion'],
          Resource: ['arn:aws:s3:::datasets/train/*'],
        },
        {
          Sid: 'CustodyList',
          Effect: 'Allow',
          Action: ['s3:ListBucket'],
          Resource: ['arn:aws:s3:::datasets'],
          Condition: { StringLike: { 's3:prefix': ['train/*'] } },
        },
      ],
    });
    const rw = parseAwsS3Role({
      role_arn: 'arn:aws-cn:iam::123456789012:role/x',
      bucket: 'ckpt',
      actions: ['write', 'delete'],
    });
    assert.deepEqual(sessionPolicy(rw).Statement, [
      {
        Sid: 'CustodyObjects',
        Effect: 'Allow',
        Action: [
          's3:PutObject',
          's3:AbortMultipartUpload',
          's3:ListMultipartUploadParts',
          's3:DeleteObject',
          's3:DeleteObjectVersion',
        ],
        Resource: ['arn:aws-cn:s3:::ckpt/*'],
      },
    ]);
  });

  it('issues STS credentials lasting exactly the lease; the lease is marked not revocable and not renewable', async () => {
    await clearRevocations();
    const r = await api.ok('POST', '/v1/creds/dev/s3/train', {});
    assert.equal(r.revocable, false);
    assert.equal(r.renewable, false);
    assert.equal(r.data.AWS_SECRET_ACCESS_KEY, r.password);
    assert.match(r.data.AWS_ACCESS_KEY_ID, /^ASIA/);
    assert.ok(r.data.AWS_SESSION_TOKEN);
    assert.equal(r.data.AWS_REGION, region);
    const drift = Math.abs(Date.parse(r.data.expiration) - Date.parse(r.expires_at));
    assert.ok(drift < 3_000, `STS expiry ${r.data.expiration} vs lease ${r.expires_at}`);
    assert.ok(Math.abs(Date.parse(r.expires_at) - Date.now() - 30 * 60_000) < 5_000, 'the role TTL (30m)');
    const lease = await api.ok('POST', '/v1/leases/lookup', { lease_id: r.lease_id });
    assert.equal(lease.revocable, false);
    assert.equal(lease.max_expires_at, lease.expires_at);
    const renew = await api.call('POST', '/v1/leases/renew', { lease_id: r.lease_id });
    assert.equal(renew.status, 400);
    const roleShown = await api.ok('GET', '/v1/engines/dev/s3/roles/train');
    assert.match(JSON.stringify(roleShown), /cannot be revoked/);
    assert.equal(await read(s3As(r.data), 'train/a.csv'), 'ok:train-data');
    await api.ok('POST', '/v1/leases/revoke', { lease_id: r.lease_id });
  });

  it('revoking adds a deny for that session (by session name, issued before the revocation) to the IAM role', async () => {
    await clearRevocations();
    const a = await api.ok('POST', '/v1/creds/dev/s3/train', {});
    const b = await api.ok('POST', '/v1/creds/dev/s3/train', {});
    assert.equal(await read(s3As(a.data), 'train/a.csv'), 'ok:train-data');
    const revoked = await api.ok('POST', '/v1/leases/revoke', { lease_id: a.lease_id });
    assert.equal(revoked.state, 'revoked');
    assert.equal(revoked.revocable, false, 'still says it could not be revoked early');
    const iam = new IAMClient({
      region,
      endpoint,
      credentials: { accessKeyId: adminKey.id, secretAccessKey: adminKey.secret },
    });
    const doc = JSON.parse(
      decodeURIComponent(
        (
          await iam.send(
            new GetRolePolicyCommand({ RoleName: 'ml-data', PolicyName: 'custody-revoked-sessions' }),
          )
        ).PolicyDocument!,
      ),
    );
    iam.destroy();
    const mine = doc.Statement.find((s: any) => s.Condition.StringLike['aws:userid'] === `*:${a.username}`);
    assert.ok(mine, JSON.stringify(doc));
    assert.equal(mine.Effect, 'Deny');
    assert.ok(mine.Condition.DateLessThan['aws:TokenIssueTime']);
    assert.deepEqual(Object.keys(mine.Condition).sort(), ['DateLessThan', 'StringLike']);
    assert.ok(Math.abs(Date.parse(mine.Condition.DateLessThan['aws:TokenIssueTime']) - Date.now()) < 10_000);
    assert.equal(await read(s3As(a.data), 'train/a.csv'), 'denied:AccessDenied', 'revoked session');
    // On AWS the other lease's session keeps working (its name does not match); moto ignores the
    // conditions and denies it too, so that half can only be shown by the document above.
    await api.ok('POST', '/v1/leases/revoke', { lease_id: b.lease_id });
    const doc2 = JSON.parse(
      decodeURIComponent(
        (
          await new IAMClient({
            region,
            endpoint,
            credentials: { accessKeyId: adminKey.id, secretAccessKey: adminKey.secret },
          }).send(new GetRolePolicyCommand({ RoleName: 'ml-data', PolicyName: 'custody-revoked-sessions' }))
        ).PolicyDocument!,
      ),
    );
    assert.equal(doc2.Statement.length, 2, 'one statement per revoked, unexpired session');
  });

  it('custody run --creds: boto3 reads an object with the exported AWS_* variables', async () => {
    await clearRevocations();
    const res = await cli(
      [
        'run',
        '--creds',
        'DATA=dev/s3/train',
        '--',
        venv.python,
        '-c',
        `import boto3, json, os
s3 = boto3.client("s3")  # region, keys, session token and endpoint all from the environment
body = s3.get_object(Bucket=os.environ["S3_BUCKET"], Key=os.environ["S3_PREFIX"] + "a.csv")["Body"].read().decode()
print(json.dumps({"body": body, "lease": os.environ["DATA_LEASE_ID"], "has_token": bool(os.environ.get("AWS_SESSION_TOKEN"))}))`,
      ],
      { timeoutMs: 60_000 },
    );
    assert.equal(res.code, 0, res.stderr);
    const line = JSON.parse(res.stdout.trim().split('\n').pop()!);
    assert.deepEqual([line.body, line.has_token], ['train-data', true]);
    const lease = await api.ok('POST', '/v1/leases/lookup', { lease_id: line.lease });
    assert.equal(lease.state, 'revoked');
  });

  it('custody run --files: an AWS shared credentials file instead of AWS_* secrets; boto3 reads it', async () => {
    await clearRevocations();
    const res = await cli(
      [
        'run',
        '--files',
        '--creds',
        'DATA=dev/s3/train',
        '--',
        venv.python,
        '-c',
        `import boto3, json, os
path = os.environ["AWS_SHARED_CREDENTIALS_FILE"]
body = boto3.client("s3").get_object(Bucket=os.environ["S3_BUCKET"], Key=os.environ["S3_PREFIX"] + "a.csv")["Body"].read().decode()
print(json.dumps({"body": body, "env_keys": [k for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN") if k in os.environ], "file": path, "mode": oct(os.stat(path).st_mode & 0o777), "profile": open(path).read().splitlines()[0]}))`,
      ],
      {
        timeoutMs: 60_000,
        env: { AWS_ACCESS_KEY_ID: 'AKIAPARENTSHOULDGO00', AWS_SECRET_ACCESS_KEY: 'parent-secret' },
      },
    );
    assert.equal(res.code, 0, res.stderr);
    const line = JSON.parse(res.stdout.trim().split('\n').pop()!);
    assert.equal(line.body, 'train-data');
    assert.deepEqual(line.env_keys, [], 'no AWS_* secrets in the environment (the parent’s are removed too)');
    assert.equal(line.mode, '0o600');
    assert.equal(line.profile, '[default]');
  });

  it('custody doctor --creds: lists the prefix with the STS credentials and says they cannot be revoked early', async () => {
    await clearRevocations();
    const r = await cli(['doctor', '--creds', 'dev/s3/train']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(
      r.stdout,
      /PASS storage dev\/s3\/train — the credential lists s3:\/\/datasets\/train\/ \(1 objects seen\)/,
    );
    assert.match(r.stdout, /not revocable early: the credential keeps working until/);
  });

  it('bad input: TTL beyond the STS limits, .. in a prefix, unknown actions — 400 with code and hint', async () => {
    const role = (body: Record<string, unknown>) => api.call('PUT', '/v1/engines/dev/s3/roles/bad', body);
    const over = await role({
      ttl: '1h',
      max_ttl: '13h',
      config: { role_arn: roleArn, bucket: 'datasets', actions: ['read'] },
    });
    assert.equal(over.status, 400);
    assert.equal(over.body.error.code, 'TtlAboveStsMaximum');
    const under = await role({
      ttl: '60s',
      max_ttl: '60s',
      config: { role_arn: roleArn, bucket: 'datasets', actions: ['read'] },
    });
    assert.equal(under.body.error.code, 'TtlBelowStsMinimum');
    const dots = await role({
      config: { role_arn: roleArn, bucket: 'datasets', prefix: 'a/../b', actions: ['read'] },
    });
    assert.equal(dots.status, 400);
    assert.ok(dots.body.error.hint);
    const action = await role({
      config: { role_arn: roleArn, bucket: 'datasets', actions: ['read', 's3:*'] },
    });
    assert.equal(action.status, 400);
    assert.match(action.body.error.hint, /read \(GetObject\)/);
    // Above the engine's max_session_duration (3600 s): refused at issue, not silently capped.
    const issueOver = await api.call('POST', '/v1/creds/dev/s3/train', { ttl: '2h' });
    assert.equal(issueOver.status, 400);
    assert.equal(issueOver.body.error.code, 'TtlAboveStsMaximum');
    assert.match(issueOver.body.error.hint, /MaxSessionDuration/);
  });

  it('canary: the engine secret key and issued session secrets are in no log, audit entry or broker file', async () => {
    const r = await api.ok('POST', '/v1/creds/dev/s3/train', {});
    await api.ok('POST', '/v1/leases/revoke', { lease_id: r.lease_id });
    const canaries = [adminKey.secret, r.password, r.data.AWS_SESSION_TOKEN];
    const logs = broker.stdout() + broker.stderr();
    for (const c of canaries) assert.equal(logs.includes(c), false, 'logs');
    const files: string[] = [];
    const walk = async (dir: string) => {
      for (const e of await readdir(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) await walk(p);
        else files.push(p);
      }
    };
    await walk(broker.dataDir);
    for (const f of files) {
      const bytes = await readFile(f);
      for (const c of canaries) assert.equal(bytes.includes(Buffer.from(c)), false, `${f} holds a secret`);
    }
  });
});
