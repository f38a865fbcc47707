import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { hmacValue, verifyAuditFile } from '../../src/audit/index.js';
import { Barrier } from '../../src/barrier/barrier.js';
import { metaStore } from '../../src/storage/meta-store.js';
import { openStorage } from '../../src/storage/storage.js';
import { startTestBroker } from '../support/broker.js';

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const d = await mkdtemp(path.join(tmpdir(), 'custody-audit-'));
  dirs.push(d);
  return d;
}

/** The audit HMAC key, read the way an operator's tooling would: through the unsealed barrier. */
async function auditKey(dataDir: string): Promise<Buffer> {
  const storage = await openStorage(path.join(dataDir, 'custody.db'));
  try {
    const meta = metaStore(storage);
    const barrier = new Barrier(meta);
    await barrier.load();
    await barrier.unsealWithRootKey(
      Buffer.from((await readFile(path.join(dataDir, 'unseal.key'), 'utf8')).trim(), 'base64'),
    );
    return await barrier.decrypt((await meta.get('audit/hmac-key'))!, 'custody:audit:hmac-key');
  } finally {
    await storage.close();
  }
}

test('every request and response is audited, chained, with secrets only as HMAC digests', async () => {
  const dataDir = await tempDir();
  const b = await startTestBroker({ dataDir });
  const canary = `canary-${randomBytes(8).toString('hex')}`;
  try {
    await b.call('POST', '/v1/envs', { body: { name: 'prod' } });
    await b.call('PUT', '/v1/secrets/prod/api-key', { body: { value: canary } });
    await b.call('GET', '/v1/secrets/prod/api-key');
    await b.call('GET', '/v1/secrets/prod/api-key', { token: 'cst_not-a-real-token-at-all' });
    const child = await b.call('POST', '/v1/auth/token/create', { body: { ttl: '10m' } });
    await b.call('GET', '/v1/secrets/prod/api-key', { token: child.body.token });
  } finally {
    await b.stop({ keepData: true });
  }
  const file = path.join(dataDir, 'audit.log');
  const text = await readFile(file, 'utf8');
  assert.ok(!text.includes(canary), 'no plaintext secret value');
  assert.ok(!text.includes(b.rootToken), 'no plaintext root token');
  const entries = text
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  const verified = await verifyAuditFile(file);
  assert.equal(verified.ok, true);
  assert.equal(verified.ok && verified.count, entries.length);

  const key = await auditKey(dataDir);
  const digest = hmacValue(key, canary);
  const withCanary = entries.filter((e) => JSON.stringify(e).includes(digest));
  assert.deepEqual(
    withCanary.map((e) => `${e.type}:${e.action}`),
    ['request:secrets/set', 'response:secrets/get'],
    'a known value can be searched for by its digest',
  );
  const set = entries.find((e) => e.action === 'secrets/set' && e.type === 'request');
  assert.equal(set.resource, 'prod/api-key');
  assert.equal(set.door, 'native');
  assert.equal(set.auth.root, true, 'root token use is flagged as such');
  assert.match(set.auth.accessor, /^acc_/);
  assert.ok(set.request_id && set.remote_addr && set.time);

  const denials = entries.filter((e) => e.outcome === 'denied');
  assert.deepEqual(
    denials.map((e) => `${e.type}:${e.error_code}`),
    [
      'request:InvalidToken',
      'response:InvalidToken',
      'request:PermissionDenied',
      'response:PermissionDenied',
    ],
  );
  const created = entries.find((e) => e.action === 'token/create' && e.type === 'response');
  assert.match(JSON.stringify(created), /hmac-sha256:/, 'a minted token is recorded only as a digest');
});

test('tampering with the audit file is detected at the right line', async () => {
  const dataDir = await tempDir();
  const b = await startTestBroker({ dataDir });
  try {
    await b.call('POST', '/v1/envs', { body: { name: 'dev' } });
    for (let i = 0; i < 5; i++) await b.call('PUT', `/v1/secrets/dev/s${i}`, { body: { value: `v${i}` } });
  } finally {
    await b.stop({ keepData: true });
  }
  const file = path.join(dataDir, 'audit.log');
  const lines = (await readFile(file, 'utf8')).trim().split('\n');
  const check = async (mutated: string[]) => {
    const f = path.join(dataDir, `tampered-${randomBytes(3).toString('hex')}.log`);
    await writeFile(f, `${mutated.join('\n')}\n`);
    return verifyAuditFile(f);
  };
  const edited = [...lines];
  edited[4] = edited[4].replace('"dev/s1"', '"dev/s9"');
  assert.deepEqual(pick(await check(edited)), { ok: false, line: 5, reason: 'edited' });
  assert.deepEqual(pick(await check(lines.filter((_, i) => i !== 6))), {
    ok: false,
    line: 7,
    reason: 'removed',
  });
  const swapped = [...lines];
  [swapped[3], swapped[4]] = [swapped[4], swapped[3]];
  assert.deepEqual(pick(await check(swapped)), { ok: false, line: 4, reason: 'reordered' });
  const inserted = [...lines.slice(0, 2), lines[1], ...lines.slice(2)];
  assert.equal((await check(inserted)).ok, false);
});

test('fail closed: when no audit sink accepts an entry, requests get 503 and change nothing', async () => {
  const dataDir = await tempDir();
  let b = await startTestBroker({ dataDir });
  await b.call('POST', '/v1/envs', { body: { name: 'prod' } });
  await b.call('PUT', '/v1/secrets/prod/db', { body: { value: 'original' } });
  await b.stop({ keepData: true });

  // /dev/full accepts the open and fails every write with ENOSPC: a full disk.
  b = await startTestBroker({ dataDir, auditFile: '/dev/full' });
  try {
    const write = await b.call('PUT', '/v1/secrets/prod/db', { body: { value: 'changed' } });
    assert.equal(write.status, 503);
    assert.equal(write.body.error.code, 'AuditUnavailable');
    const del = await b.call('DELETE', '/v1/secrets/prod/db');
    assert.equal(del.status, 503);
    const read = await b.call('GET', '/v1/secrets/prod/db');
    assert.equal(read.status, 503, 'reads are not served unaudited either');
    const metrics = await b.call('GET', '/metrics', { token: null });
    assert.match(metrics.body, /custody_audit_sink_failures_total\{sink="[^"]+"\} [1-9]/);
  } finally {
    await b.stop({ keepData: true });
  }
  b = await startTestBroker({ dataDir });
  try {
    const read = await b.call('GET', '/v1/secrets/prod/db');
    assert.equal(read.body.value, 'original');
    assert.equal(read.body.seq, 1, 'no version was written');
  } finally {
    await b.stop({ keepData: true });
  }
});

function pick(r: { ok: boolean; line?: number; reason?: string }) {
  return r.ok ? r : { ok: r.ok, line: r.line, reason: r.reason };
}

test('a job records a notice about itself (POST /v1/audit/notices); bad bodies are 400, no token 401', async () => {
  const dataDir = await tempDir();
  const b = await startTestBroker({ dataDir });
  try {
    // A child token with no role assignment at all: a notice about itself is still allowed.
    const child = await b.call('POST', '/v1/auth/token/create', { body: { ttl: '10m', policies: [] } });
    assert.equal(child.status, 200, JSON.stringify(child.body));
    const ok = await b.call('POST', '/v1/audit/notices', {
      token: child.body.token,
      body: { code: 'CredentialExpiresSoon', message: 'lease L stops working soon', subject: 'lease-1' },
    });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.deepEqual(ok.body, { recorded: true });
    for (const body of [
      { code: 'lowercase', message: 'x' },
      { code: 'X', message: '' },
      { code: 'X', message: 'x'.repeat(1001) },
      { code: 'X', message: 'x', extra: 1 },
      { code: 'X', message: 'x', subject: 's'.repeat(201) },
      { message: 'x' },
    ]) {
      const r = await b.call('POST', '/v1/audit/notices', { token: child.body.token, body });
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.equal(typeof r.body.error.code, 'string');
      assert.equal(typeof r.body.error.hint, 'string');
    }
    const anon = await b.call('POST', '/v1/audit/notices', { token: '', body: { code: 'X', message: 'x' } });
    assert.equal(anon.status, 401);
  } finally {
    await b.stop({ keepData: true });
  }
  const entries = (await readFile(path.join(dataDir, 'audit.log'), 'utf8'))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  const notices = entries.filter((e) => e.action === 'audit/notice-self' && e.outcome === 'allowed');
  assert.equal(notices.length, 1, 'only the valid notice is recorded as allowed');
  assert.deepEqual(notices[0].data, {
    code: 'CredentialExpiresSoon',
    message: 'lease L stops working soon',
    subject: 'lease-1',
  });
  assert.equal(notices[0].auth.granted_by, 'self');
});
