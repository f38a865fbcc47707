import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { startTestBroker, type TestBroker } from '../support/broker.js';

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

test('shamir: init prints shares once, seal drops keys, a quorum unseals, restart starts sealed', async () => {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'custody-shamir-'));
  dirs.push(dataDir);
  let b: TestBroker = await startTestBroker({ dataDir, unseal: 'shamir' });
  try {
    assert.equal(b.rootToken, '', 'shamir mode does not write a root token file');
    assert.equal((await b.call('GET', '/v1/sys/health', { token: null })).status, 501);
    const early = await b.call('GET', '/v1/envs', { token: null });
    assert.equal(early.status, 503);
    assert.equal(early.body.error.code, 'Sealed');

    const bad = await b.call('POST', '/v1/sys/init', {
      token: null,
      body: { key_shares: 3, key_threshold: 4 },
    });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'InvalidKeyThreshold');
    const init = await b.call('POST', '/v1/sys/init', {
      token: null,
      body: { key_shares: 3, key_threshold: 2 },
    });
    assert.equal(init.status, 200);
    assert.equal(init.body.keys.length, 3);
    const again = await b.call('POST', '/v1/sys/init', {
      token: null,
      body: { key_shares: 3, key_threshold: 2 },
    });
    assert.equal(again.body.error.code, 'AlreadyInitialized');
    b.rootToken = init.body.root_token;
    const [k1, k2, k3] = init.body.keys as string[];

    await b.call('POST', '/v1/envs', { body: { name: 'prod' } });
    await b.call('PUT', '/v1/secrets/prod/db', { body: { value: 's3cret' } });
    const sealed = await b.call('POST', '/v1/sys/seal');
    assert.equal(sealed.body.sealed, true);
    const refused = await b.call('GET', '/v1/secrets/prod/db');
    assert.equal(refused.status, 503);
    assert.equal(refused.body.error.code, 'Sealed');
    assert.equal((await b.call('GET', '/v1/sys/health', { token: null })).status, 503);

    const p1 = await b.call('POST', '/v1/sys/unseal', { token: null, body: { key: k1 } });
    assert.deepEqual([p1.body.sealed, p1.body.progress, p1.body.threshold], [true, 1, 2]);
    const garbage = await b.call('POST', '/v1/sys/unseal', {
      token: null,
      body: { key: Buffer.alloc(33, 7).toString('base64') },
    });
    assert.equal(garbage.status, 400);
    assert.equal(garbage.body.error.code, 'InvalidUnsealKey');
    assert.equal(
      (await b.call('GET', '/v1/sys/seal-status', { token: null })).body.progress,
      0,
      'a failed combine resets progress',
    );
    await b.call('POST', '/v1/sys/unseal', { token: null, body: { key: k3 } });
    const done = await b.call('POST', '/v1/sys/unseal', { token: null, body: { key: k2 } });
    assert.equal(done.body.sealed, false);
    assert.equal((await b.call('GET', '/v1/secrets/prod/db')).body.value, 's3cret');

    await b.stop({ keepData: true });
    b = await startTestBroker({ dataDir, unseal: 'shamir' });
    b.rootToken = init.body.root_token;
    assert.equal((await b.call('GET', '/v1/secrets/prod/db')).body.error.code, 'Sealed');
    await b.call('POST', '/v1/sys/unseal', { token: null, body: { key: k2 } });
    await b.call('POST', '/v1/sys/unseal', { token: null, body: { key: k1 } });
    assert.equal((await b.call('GET', '/v1/secrets/prod/db')).body.value, 's3cret');
  } finally {
    await b.stop({ keepData: true });
  }
});

test('file mode: auto-init writes a 0600 key file and root token, and restarts unsealed', async () => {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'custody-file-'));
  dirs.push(dataDir);
  const { stat } = await import('node:fs/promises');
  let b = await startTestBroker({ dataDir });
  assert.equal(b.broker.initializedNow, true);
  for (const f of ['unseal.key', 'root-token', 'tls/ca-key.pem', 'tls/server-key.pem']) {
    assert.equal((await stat(path.join(dataDir, f))).mode & 0o777, 0o600, f);
  }
  await b.call('POST', '/v1/envs', { body: { name: 'dev' } });
  await b.call('PUT', '/v1/secrets/dev/k', { body: { value: 'v' } });
  await b.call('POST', '/v1/sys/rotate');
  await b.stop({ keepData: true });
  b = await startTestBroker({ dataDir });
  try {
    assert.equal(b.broker.initializedNow, false);
    assert.equal((await b.call('GET', '/v1/secrets/dev/k')).body.value, 'v');
    assert.equal((await b.call('GET', '/v1/sys/seal-status')).body.key_term, 2, 'rotation survives restart');
  } finally {
    await b.stop({ keepData: true });
  }
});

test('generate-root: a quorum of unseal keys mints a new root token, so the bootstrap one can be revoked', async () => {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'custody-genroot-'));
  dirs.push(dataDir);
  const b = await startTestBroker({ dataDir });
  try {
    const old = b.rootToken;
    const { readFile } = await import('node:fs/promises');
    const key = (await readFile(path.join(dataDir, 'unseal.key'), 'utf8')).trim();
    const wrongNonce = await b.call('POST', '/v1/sys/generate-root/update', {
      token: null,
      body: { nonce: 'nope', key },
    });
    assert.equal(wrongNonce.body.error.code, 'InvalidNonce');
    const start = await b.call('POST', '/v1/sys/generate-root/attempt', { token: null });
    assert.deepEqual([start.body.started, start.body.required], [true, 1]);
    const bad = await b.call('POST', '/v1/sys/generate-root/update', {
      token: null,
      body: { nonce: start.body.nonce, key: Buffer.alloc(32, 1).toString('base64') },
    });
    assert.equal(bad.body.error.code, 'InvalidUnsealKey');
    const again = await b.call('POST', '/v1/sys/generate-root/attempt', { token: null });
    const done = await b.call('POST', '/v1/sys/generate-root/update', {
      token: null,
      body: { nonce: again.body.nonce, key },
    });
    assert.equal(done.status, 200);
    assert.match(done.body.root_token, /^cst_/);
    const fresh = done.body.root_token as string;
    const self = await b.call('GET', '/v1/auth/token/lookup-self', { token: old });
    assert.equal(
      (
        await b.call('POST', '/v1/auth/token/revoke', {
          token: fresh,
          body: { accessor: self.body.accessor },
        })
      ).status,
      200,
    );
    assert.equal(
      (await b.call('GET', '/v1/envs', { token: old })).status,
      401,
      'the bootstrap root token is gone',
    );
    assert.equal((await b.call('GET', '/v1/envs', { token: fresh })).status, 200);
    const audit = await readFile(path.join(dataDir, 'audit.log'), 'utf8');
    assert.ok(
      !audit.includes(fresh) && !audit.includes(key),
      'neither the new token nor the key is in the audit trail',
    );
  } finally {
    await b.stop({ keepData: true });
  }
});
