import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { BlobServiceClient, ContainerClient, StorageSharedKeyCredential } from '@azure/storage-blob';
import { apiOf, cliOf } from '../run/helpers.js';
import { type Azurite, startAzurite } from '../support/azurite.js';
import { type BrokerProcess, startBrokerProcess } from '../support/broker-process.js';
import { ensureVenv, type PythonVenv } from '../support/python-venv.js';

/**
 * The azure-blob engine end to end: a broker process, Azurite (the real Blob wire protocol) and the
 * official SDKs — @azure/storage-blob here and azure-storage-blob in Python — using the SAS the
 * lease hands out, including from inside `custody run --creds`.
 */
const PY = fileURLToPath(new URL('./azure_blob_sas.py', import.meta.url));

describe('azure-blob engine on Azurite', () => {
  let az: Azurite;
  let broker: BrokerProcess;
  let api: Awaited<ReturnType<typeof apiOf>>;
  let cli: ReturnType<typeof cliOf>;
  let venv: PythonVenv;
  let admin: BlobServiceClient;

  const issue = async (role: string, body: Record<string, unknown> = {}) =>
    api.ok('POST', `/v1/creds/dev/lake/${role}`, body);
  const py = (env: Record<string, string>, ops: string[]) => {
    const r = spawnSync(venv.python, [PY, ...ops], { env: { ...process.env, ...env }, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout.trim()) as Record<string, string>;
  };
  const status = async (p: Promise<unknown>) =>
    p.then(
      () => 200,
      (e: { statusCode?: number }) => e.statusCode ?? -1,
    );

  before(async () => {
    [az, venv] = await Promise.all([startAzurite(), ensureVenv()]);
    admin = new BlobServiceClient(az.endpoint, new StorageSharedKeyCredential(az.account, az.key));
    for (const c of ['datasets', 'private']) await admin.getContainerClient(c).create();
    const put = (c: string, name: string, text: string) =>
      admin.getContainerClient(c).getBlockBlobClient(name).upload(text, Buffer.byteLength(text));
    await put('datasets', 'train/a.csv', 'x,y\n1,2\n');
    await put('datasets', 'eval/b.csv', 'eval-data');
    await put('private', 'secret.txt', 'not for the job');
    broker = await startBrokerProcess();
    api = await apiOf(broker);
    cli = cliOf(broker);
    await api.ok('POST', '/v1/envs', { name: 'dev' });
    await api.ok('PUT', '/v1/engines/dev/lake', {
      type: 'azure-blob',
      config: { account_name: az.account, account_key: az.key, endpoint: az.endpoint },
    });
    // Azurite speaks plain http, so these roles allow http; the HTTPS-only default is tested below.
    await api.ok('PUT', '/v1/engines/dev/lake/roles/reader', {
      ttl: '10m',
      config: { container: 'datasets', permissions: 'rl', https_only: false },
    });
    await api.ok('PUT', '/v1/engines/dev/lake/roles/writer', {
      ttl: '10m',
      config: { container: 'datasets', permissions: ['read', 'list', 'write', 'create'], https_only: false },
    });
    await api.ok('PUT', '/v1/engines/dev/lake/roles/short', {
      ttl: '2s',
      config: { container: 'datasets', permissions: 'r', https_only: false, revocation: 'expiry-only' },
    });
    await api.ok('PUT', '/v1/engines/dev/lake/roles/tls', {
      config: { container: 'datasets', permissions: 'r' },
    });
  });

  after(async () => {
    await api?.close();
    await broker?.cleanup();
    await az?.stop();
  });

  it('a read/list SAS reads and lists its container, cannot write, cannot reach another container (JS and Python SDKs)', async () => {
    const r = await issue('reader');
    assert.equal(r.revocable, true);
    assert.equal(r.renewable, true);
    assert.match(r.password, /(^|&)si=cst-/, 'bound to a stored access policy');
    assert.equal(r.data.AZURE_STORAGE_SAS_TOKEN, r.password);
    const c = new ContainerClient(r.data.AZURE_STORAGE_CONTAINER_SAS_URL);
    const names: string[] = [];
    for await (const b of c.listBlobsFlat()) names.push(b.name);
    assert.deepEqual(names.sort(), ['eval/b.csv', 'train/a.csv']);
    assert.equal((await c.getBlobClient('train/a.csv').downloadToBuffer()).toString(), 'x,y\n1,2\n');
    assert.equal(
      await status(c.getBlockBlobClient('train/new.csv').upload('z', 1)),
      403,
      'no write without w',
    );
    const other = new ContainerClient(`${az.endpoint}/private?${r.password}`);
    assert.equal(await status(other.getBlobClient('secret.txt').downloadToBuffer()), 403, 'other container');

    const out = py(
      { AZURE_STORAGE_ACCOUNT_URL: r.data.AZURE_STORAGE_ACCOUNT_URL, AZURE_STORAGE_SAS_TOKEN: r.password },
      [
        'list:datasets',
        'read:datasets/eval/b.csv',
        'write:datasets/eval/py.csv',
        'read:private/secret.txt',
        'list:private',
      ],
    );
    assert.deepEqual(out, {
      'list:datasets': 'ok:eval/b.csv,train/a.csv',
      'read:datasets/eval/b.csv': 'ok:eval-data',
      'write:datasets/eval/py.csv': 'denied:403',
      'read:private/secret.txt': 'denied:403',
      'list:private': 'denied:403',
    });
    await api.ok('POST', '/v1/leases/revoke', { lease_id: r.lease_id });
  });

  it('writes only when the role grants it', async () => {
    const r = await issue('writer');
    const out = py(
      { AZURE_STORAGE_ACCOUNT_URL: r.data.AZURE_STORAGE_ACCOUNT_URL, AZURE_STORAGE_SAS_TOKEN: r.password },
      ['write:datasets/out/model.bin', 'read:datasets/out/model.bin', 'write:private/x'],
    );
    assert.deepEqual(out, {
      'write:datasets/out/model.bin': 'ok:written',
      'read:datasets/out/model.bin': 'ok:written by python',
      'write:private/x': 'denied:403',
    });
    await api.ok('POST', '/v1/leases/revoke', { lease_id: r.lease_id });
  });

  it('revoking the lease kills the SAS at once, long before its expiry; other leases keep working', async () => {
    const a = await issue('reader');
    const b = await issue('reader');
    const ca = new ContainerClient(a.data.AZURE_STORAGE_CONTAINER_SAS_URL);
    const cb = new ContainerClient(b.data.AZURE_STORAGE_CONTAINER_SAS_URL);
    assert.equal(await status(ca.getBlobClient('train/a.csv').downloadToBuffer()), 200);
    const revoked = await api.ok('POST', '/v1/leases/revoke', { lease_id: a.lease_id });
    assert.equal(revoked.state, 'revoked');
    assert.equal(
      await status(ca.getBlobClient('train/a.csv').downloadToBuffer()),
      403,
      'dead right after revoke',
    );
    const pyOut = py(
      { AZURE_STORAGE_ACCOUNT_URL: a.data.AZURE_STORAGE_ACCOUNT_URL, AZURE_STORAGE_SAS_TOKEN: a.password },
      ['read:datasets/train/a.csv'],
    );
    assert.deepEqual(pyOut, { 'read:datasets/train/a.csv': 'denied:403' });
    assert.equal(
      await status(cb.getBlobClient('train/a.csv').downloadToBuffer()),
      200,
      'the other lease is untouched',
    );
    await api.ok('POST', '/v1/leases/revoke', { lease_id: b.lease_id });
    const policies = await admin.getContainerClient('datasets').getAccessPolicy();
    assert.deepEqual(
      policies.signedIdentifiers.filter((i) => i.id.startsWith('cst-')),
      [],
      'slots freed',
    );
  });

  it('five policies per container: a sixth concurrent lease gets 409 PolicySlotsExhausted; foreign policies are kept', async () => {
    await admin.getContainerClient('datasets').setAccessPolicy(undefined, [
      {
        id: 'team-policy',
        accessPolicy: { permissions: 'r', expiresOn: new Date(Date.now() + 86_400_000) },
      },
    ]);
    const leases = [];
    for (let i = 0; i < 4; i++) leases.push(await issue('reader'));
    const sixth = await api.call('POST', '/v1/creds/dev/lake/reader', {});
    assert.equal(sixth.status, 409);
    assert.equal(sixth.body.error.code, 'PolicySlotsExhausted');
    assert.match(sixth.body.error.hint, /expiry-only/);
    for (const l of leases) await api.ok('POST', '/v1/leases/revoke', { lease_id: l.lease_id });
    const ids = (await admin.getContainerClient('datasets').getAccessPolicy()).signedIdentifiers.map(
      (i) => i.id,
    );
    assert.deepEqual(ids, ['team-policy']);
    await admin.getContainerClient('datasets').setAccessPolicy(undefined, []);
  });

  it('an expiry-only SAS is marked not revocable and stops at its expiry', async () => {
    const r = await issue('short');
    assert.equal(r.revocable, false);
    assert.equal(r.renewable, false);
    assert.doesNotMatch(r.password, /(^|&)si=/);
    const lease = await api.ok('POST', '/v1/leases/lookup', { lease_id: r.lease_id });
    assert.equal(lease.revocable, false);
    const role = await api.ok('GET', '/v1/engines/dev/lake/roles/short');
    assert.equal(JSON.stringify(role).includes('Cannot be revoked early'), true, JSON.stringify(role));
    const c = new ContainerClient(r.data.AZURE_STORAGE_CONTAINER_SAS_URL);
    assert.equal(await status(c.getBlobClient('train/a.csv').downloadToBuffer()), 200);
    await sleep(2_500);
    assert.equal(await status(c.getBlobClient('train/a.csv').downloadToBuffer()), 403, 'expired');
  });

  it('HTTPS-only by default: the signed token refuses plain http', async () => {
    const r = await issue('tls');
    assert.match(r.password, /spr=https(&|$)/);
    const c = new ContainerClient(r.data.AZURE_STORAGE_CONTAINER_SAS_URL);
    assert.equal(await status(c.getBlobClient('train/a.csv').downloadToBuffer()), 403);
    await api.ok('POST', '/v1/leases/revoke', { lease_id: r.lease_id });
  });

  it('a prefix on an account without hierarchical namespace is refused, not silently widened', async () => {
    await api.ok('PUT', '/v1/engines/dev/lake/roles/train-only', {
      config: { container: 'datasets', prefix: 'train/', permissions: 'rl', https_only: false },
    });
    const r = await api.call('POST', '/v1/creds/dev/lake/train-only', {});
    assert.equal(r.status, 400);
    assert.equal(r.body.error.code, 'PrefixNeedsHierarchicalNamespace');
    assert.match(r.body.error.hint, /hierarchical namespace/);
  });

  it('custody run --creds: a Python job reads a blob; the SAS is dead after the job exits', async () => {
    const res = await cli(
      [
        'run',
        '--creds',
        'DATA=dev/lake/reader',
        '--',
        venv.python,
        '-c',
        `import os, json, subprocess, sys
out = subprocess.run([sys.executable, ${JSON.stringify(PY)}, "read:datasets/train/a.csv"], capture_output=True, text=True).stdout
print(json.dumps({"report": json.loads(out), "token": os.environ["AZURE_STORAGE_SAS_TOKEN"], "url": os.environ["AZURE_STORAGE_ACCOUNT_URL"], "lease": os.environ["DATA_LEASE_ID"]}))`,
      ],
      { timeoutMs: 60_000 },
    );
    assert.equal(res.code, 0, res.stderr);
    const line = JSON.parse(res.stdout.trim().split('\n').pop()!);
    assert.deepEqual(line.report, { 'read:datasets/train/a.csv': 'ok:x,y\n1,2\n' });
    const lease = await api.ok('POST', '/v1/leases/lookup', { lease_id: line.lease });
    assert.equal(lease.state, 'revoked');
    const after = py({ AZURE_STORAGE_ACCOUNT_URL: line.url, AZURE_STORAGE_SAS_TOKEN: line.token }, [
      'read:datasets/train/a.csv',
    ]);
    assert.deepEqual(after, { 'read:datasets/train/a.csv': 'denied:403' });
  });

  it('custody run --files: the SAS in AZURE_STORAGE_SAS_TOKEN_FILE, the account URL as a value', async () => {
    const res = await cli(
      [
        'run',
        '--files',
        '--creds',
        'DATA=dev/lake/reader',
        '--',
        venv.python,
        '-c',
        `import os, json
from azure.storage.blob import BlobServiceClient
sas = open(os.environ["AZURE_STORAGE_SAS_TOKEN_FILE"]).read()
svc = BlobServiceClient(os.environ["AZURE_STORAGE_ACCOUNT_URL"], credential=sas)
body = svc.get_container_client(os.environ["AZURE_STORAGE_CONTAINER"]).download_blob("train/a.csv").readall().decode()
print(json.dumps({"body": body, "token_in_env": "AZURE_STORAGE_SAS_TOKEN" in os.environ, "echo": sas}))`,
      ],
      { timeoutMs: 60_000 },
    );
    assert.equal(res.code, 0, res.stderr);
    const line = JSON.parse(res.stdout.trim().split('\n').pop()!);
    assert.equal(line.body, 'x,y\n1,2\n');
    assert.equal(line.token_in_env, false);
    assert.doesNotMatch(line.echo, /sig=/, 'the SAS printed by the job is masked in its output');
  });

  it('bad input: permission letters, .. in a prefix, a wrong account key — 400 with code and hint', async () => {
    const role = (config: Record<string, unknown>) =>
      api.call('PUT', '/v1/engines/dev/lake/roles/bad', { config });
    const letters = await role({ container: 'datasets', permissions: 'rlx' });
    assert.equal(letters.status, 400);
    assert.equal(letters.body.error.code, 'InvalidEngineRole');
    assert.match(letters.body.error.hint, /r \(read\), l \(list\)/);
    const dots = await role({ container: 'datasets', prefix: 'train/../private', permissions: 'r' });
    assert.equal(dots.status, 400);
    assert.match(dots.body.error.message, /\.\./);
    assert.ok(dots.body.error.hint);
    const badKey = Buffer.from('canary-wrong-account-key-0123456789').toString('base64');
    const wrong = await api.call('PUT', '/v1/engines/dev/lake2', {
      type: 'azure-blob',
      config: { account_name: az.account, account_key: badKey, endpoint: az.endpoint },
    });
    assert.equal(wrong.status, 400);
    assert.equal(wrong.body.error.code, 'EngineAuthFailed');
    assert.ok(wrong.body.error.hint);
    assert.equal(JSON.stringify(wrong.body).includes(badKey), false);
    const shown = await api.ok('GET', '/v1/engines/dev/lake');
    assert.equal(JSON.stringify(shown).includes(az.key), false, 'engine info never shows the key');
  });

  it('the CLI writes a role with --config and shows whether its leases can be revoked early', async () => {
    const w = await cli([
      'engine',
      'role',
      'write',
      'dev/lake/cli-role',
      '--ttl',
      '30m',
      '--config',
      'container=datasets',
      '--config',
      'permissions=rl',
      '--config',
      'revocation=expiry-only',
      '--format',
      'json',
    ]);
    assert.equal(w.code, 0, w.stderr);
    const shown = await cli(['engine', 'role', 'read', 'dev/lake/cli-role']);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /revocable_early:\s+false/);
    assert.match(shown.stdout, /Cannot be revoked early/);
    const bad = await cli([
      'engine',
      'role',
      'write',
      'dev/lake/cli-role',
      '--config',
      'container=datasets',
      '--config',
      'permissions=rq',
    ]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /InvalidEngineRole/);
  });

  it('custody doctor --creds: issues, lists the container with the SAS, revokes, and sees the SAS refused', async () => {
    const r = await cli(['doctor', '--creds', 'dev/lake/reader']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /PASS storage dev\/lake\/reader — the credential lists container datasets/);
    assert.match(
      r.stdout,
      /PASS storage dev\/lake\/reader revocation — revoked: the storage refuses the credential/,
    );
    assert.doesNotMatch(r.stdout, /sig=/, 'no SAS in the output');
    const slots = (await admin.getContainerClient('datasets').getAccessPolicy()).signedIdentifiers;
    assert.deepEqual(
      slots.filter((i) => i.id.startsWith('cst-')),
      [],
      'the test lease left no policy behind',
    );
  });

  it('canary: the account key is in no log line, audit entry, error or file of the broker', async () => {
    const logs = broker.stdout() + broker.stderr();
    assert.equal(logs.includes(az.key), false, 'logs');
    const files: string[] = [];
    const walk = async (dir: string) => {
      for (const e of await readdir(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) await walk(p);
        else files.push(p);
      }
    };
    await walk(broker.dataDir);
    assert.ok(
      files.some((f) => /audit/.test(f)),
      `an audit file among ${files.join(', ')}`,
    );
    const keyBytes = Buffer.from(az.key);
    for (const f of files)
      assert.equal((await readFile(f)).includes(keyBytes), false, `${f} holds the account key`);
  });
});
