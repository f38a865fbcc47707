// Storage credentials: SAS (azure-blob on Azurite) and STS (aws-s3 on moto) issue+revoke rates
// through the broker vs the same backend work done with the raw SDK in the same run.
// Usage: node --import tsx bench/storage-creds.ts  (BENCH_STORAGE_SECONDS=3)
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import {
  BlobServiceClient,
  generateBlobSASQueryParameters,
  StorageSharedKeyCredential,
} from '@azure/storage-blob';
import pino from 'pino';
import { Agent, request } from 'undici';
import { type RunningBroker, startBroker } from '../src/broker.js';
import { resolveServerConfig } from '../src/config.js';
import { startAzurite } from '../test/support/azurite.js';
import { freePort } from '../test/support/process.js';
import { ensureVenv } from '../test/support/python-venv.js';

const SECONDS = Number(process.env.BENCH_STORAGE_SECONDS ?? 3);
const log = (m: string) => process.stderr.write(`${m}\n`);
const rate = async (fn: () => Promise<void>) => {
  let n = 0;
  const end = performance.now() + SECONDS * 1000;
  while (performance.now() < end) {
    await fn();
    n++;
  }
  return n / SECONDS;
};

const az = await startAzurite();
const venv = await ensureVenv();
const motoPort = await freePort();
const moto: ChildProcess = spawn(
  path.join(venv.bin, 'moto_server'),
  ['-H', '127.0.0.1', '-p', String(motoPort)],
  {
    stdio: 'ignore',
  },
);
const motoUrl = `http://127.0.0.1:${motoPort}`;
const dataDir = await mkdtemp(path.join(os.tmpdir(), 'custody-storage-bench-'));
let broker: RunningBroker | null = null;
try {
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${motoUrl}/moto-api/`)).status < 500) break;
    } catch {}
    if (i > 300) throw new Error('moto did not start');
    await sleep(100);
  }
  const key = new StorageSharedKeyCredential(az.account, az.key);
  const service = new BlobServiceClient(az.endpoint, key);
  await service.getContainerClient('bench').create();

  broker = await startBroker(
    resolveServerConfig({ dataDir, listen: '127.0.0.1:0', logLevel: 'warn' }, {}),
    pino({ level: 'warn' }),
  );
  const agent = new Agent({ connect: { ca: await readFile(broker.caCertPath!, 'utf8') }, connections: 4 });
  const root = (await readFile(broker.rootTokenPath!, 'utf8')).trim();
  const call = async (p: string, body?: unknown, method = 'POST') => {
    const res = await request(`${broker!.url}${p}`, {
      method: method as 'POST',
      dispatcher: agent,
      headers: { authorization: `Bearer ${root}`, 'content-type': 'application/json' },
      body: JSON.stringify(body ?? {}),
    });
    const json = (await res.body.json()) as any;
    if (res.statusCode >= 300) throw new Error(`${p}: ${res.statusCode} ${JSON.stringify(json)}`);
    return json;
  };
  await call('/v1/envs', { name: 'ml' });
  await call(
    '/v1/engines/ml/lake',
    { type: 'azure-blob', config: { account_name: az.account, account_key: az.key, endpoint: az.endpoint } },
    'PUT',
  );
  await call('/v1/engines/ml/lake/roles/read', { config: { container: 'bench', permissions: 'rl' } }, 'PUT');
  const creds = { accessKeyId: 'AKIABENCH00000000000', secretAccessKey: 'bench-secret' };
  await call(
    '/v1/engines/ml/s3',
    {
      type: 'aws-s3',
      config: {
        access_key_id: creds.accessKeyId,
        secret_access_key: creds.secretAccessKey,
        sts_endpoint: motoUrl,
      },
    },
    'PUT',
  );
  const roleArn = 'arn:aws:iam::123456789012:role/bench';
  await call(
    '/v1/engines/ml/s3/roles/read',
    {
      ttl: '15m',
      max_ttl: '1h',
      config: { role_arn: roleArn, bucket: 'bench', prefix: 'x', actions: ['read', 'list'] },
    },
    'PUT',
  );

  log('storage-creds: SAS issue+revoke…');
  const sasBroker = await rate(async () => {
    const l = await call('/v1/creds/ml/lake/read');
    await call('/v1/leases/revoke', { lease_id: l.lease_id });
  });
  // The same backend work by hand: add a stored access policy, sign a SAS naming it, remove the policy.
  const container = service.getContainerClient('bench');
  const sasRaw = await rate(async () => {
    const id = `raw-${randomBytes(6).toString('hex')}`;
    const cur = (await container.getAccessPolicy()).signedIdentifiers;
    await container.setAccessPolicy(undefined, [
      ...cur,
      { id, accessPolicy: { permissions: 'rl', expiresOn: new Date(Date.now() + 3_600_000) } },
    ]);
    generateBlobSASQueryParameters({ containerName: 'bench', identifier: id }, key).toString();
    await container.setAccessPolicy(undefined, cur);
  });

  log('storage-creds: STS issue+revoke…');
  const stsBroker = await rate(async () => {
    const l = await call('/v1/creds/ml/s3/read');
    await call('/v1/leases/revoke', { lease_id: l.lease_id });
  });
  const sts = new STSClient({ region: 'us-east-1', endpoint: motoUrl, credentials: creds });
  const stsRaw = await rate(async () => {
    await sts.send(
      new AssumeRoleCommand({
        RoleArn: roleArn,
        RoleSessionName: `raw-${randomBytes(4).toString('hex')}`,
        DurationSeconds: 900,
        Policy:
          '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::bench/x/*"}]}',
      }),
    );
  });
  sts.destroy();
  await agent.close();

  console.log('\nStorage credentials (one client, sequential; Azurite and moto on loopback)');
  console.log(
    `SAS issue+revoke through the broker: ${sasBroker.toFixed(1)} pairs/s; raw SDK (set policy, sign, remove policy): ${sasRaw.toFixed(1)} pairs/s; ratio ${(sasBroker / sasRaw).toFixed(3)}x`,
  );
  console.log(
    `STS issue+revoke through the broker: ${stsBroker.toFixed(1)} pairs/s; raw SDK AssumeRole: ${stsRaw.toFixed(1)} calls/s; ratio ${(stsBroker / stsRaw).toFixed(3)}x`,
  );
} finally {
  await broker?.close().catch(() => {});
  moto.kill('SIGTERM');
  await az.stop();
  await rm(dataDir, { recursive: true, force: true });
}
