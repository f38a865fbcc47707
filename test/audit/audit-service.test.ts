import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import {
  type AuditEntry,
  AuditService,
  type AuditSink,
  FileSink,
  hmacValue,
  MemorySink,
  StdoutSink,
  verifyAuditFile,
  verifyChain,
} from '../../src/audit/index.js';
import { CustodyError } from '../../src/errors.js';
import { input, tempDir } from './helpers.js';

const isAuditUnavailable = (err: unknown) =>
  err instanceof CustodyError && err.code === 'AuditUnavailable' && err.status === 503;

function countingMetrics() {
  const failures: string[] = [];
  return { failures, metrics: { sinkFailure: (name: string) => failures.push(name) } };
}

describe('audit service', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  before(async () => ({ dir, cleanup } = await tempDir()));
  after(() => cleanup());

  it('writes a canary secret only as its HMAC digest', async () => {
    const key = randomBytes(32);
    const canary = `canary-${randomBytes(12).toString('hex')}`;
    const nested = `nested-${randomBytes(12).toString('hex')}`;
    const path = join(dir, 'canary.log');
    const audit = new AuditService({ sinks: [new FileSink(path)], hmacKey: key });
    await audit.log(
      input({
        type: 'response',
        outcome: 'ok',
        status: 200,
        data: { db: { password: nested } },
        sensitive: { value: canary },
      }),
    );
    await audit.close();
    const text = await readFile(path, 'utf8');
    assert.equal(text.includes(canary), false);
    assert.equal(text.includes(nested), false);
    const entry = JSON.parse(text) as AuditEntry;
    assert.equal(entry.data?.value, hmacValue(key, canary));
    assert.deepEqual(entry.data?.db, { password: hmacValue(key, nested) });
    assert.equal(new AuditService({ sinks: [], hmacKey: key }).hmac(canary), hmacValue(key, canary));
    assert.equal((await verifyAuditFile(path)).ok, true);
  });

  it('omits sensitive values until the audit key arrives', async () => {
    const sink = new MemorySink();
    const audit = new AuditService({ sinks: [sink] });
    assert.throws(
      () => audit.hmac('x'),
      (err) => err instanceof CustodyError && err.code === 'Sealed',
    );
    await audit.log(input({ sensitive: { token: 'tok-sealed' } }));
    const key = randomBytes(32);
    audit.setHmacKey(key);
    await audit.log(input({ sensitive: { token: 'tok-unsealed' } }));
    const [sealed, unsealed] = sink.entries();
    assert.equal(sealed.data?.token, '[omitted: sealed]');
    assert.equal(unsealed.data?.token, hmacValue(key, 'tok-unsealed'));
    assert.equal(audit.hmac('tok-unsealed'), hmacValue(key, 'tok-unsealed'));
    assert.equal(sink.lines.join('\n').includes('tok-'), false);
  });

  it('fails closed when the only sink cannot write (path is a directory)', async () => {
    const path = join(dir, 'a-dir');
    await mkdir(path);
    const { failures, metrics } = countingMetrics();
    const audit = new AuditService({ sinks: [new FileSink(path, { name: 'file' })], metrics });
    await assert.rejects(audit.log(input()), isAuditUnavailable);
    assert.deepEqual(failures, ['file']);
  });

  it('fails closed when the only sink lost its directory', async () => {
    const audit = new AuditService({ sinks: [new FileSink(join(dir, 'missing', 'audit.log'))] });
    await assert.rejects(audit.log(input()), isAuditUnavailable);
  });

  it('fails closed when the disk is full', async () => {
    const audit = new AuditService({ sinks: [new FileSink('/dev/full')] });
    await assert.rejects(audit.log(input()), isAuditUnavailable);
    await audit.close();
  });

  it('fails closed with no sinks at all', async () => {
    await assert.rejects(new AuditService({ sinks: [] }).log(input()), isAuditUnavailable);
  });

  it('serves when one healthy sink remains, counting the failed one', async () => {
    const broken = join(dir, 'broken-dir');
    await mkdir(broken);
    const healthy = join(dir, 'healthy.log');
    const { failures, metrics } = countingMetrics();
    const errors: string[] = [];
    const audit = new AuditService({
      sinks: [new FileSink(broken, { name: 'broken' }), new FileSink(healthy, { name: 'healthy' })],
      metrics,
      onSinkError: (name) => errors.push(name),
    });
    await audit.log(input());
    await audit.log(input({ type: 'response', outcome: 'ok' }));
    assert.deepEqual(failures, ['broken', 'broken']);
    assert.deepEqual(errors, ['broken', 'broken']);
    await audit.close();
    const result = await verifyAuditFile(healthy);
    assert.equal(result.ok && result.count, 2);
  });

  it('keeps a separate chain per sink', async () => {
    const a = new MemorySink('a');
    const b = new MemorySink('b');
    const audit = new AuditService({ sinks: [a, b] });
    await audit.log(input({ requestId: 'r1' }));
    b.failWith = new Error('down');
    await audit.log(input({ requestId: 'r2' }));
    b.failWith = undefined;
    await audit.log(input({ requestId: 'r3' }));
    assert.deepEqual(
      a.entries().map((e) => [e.seq, e.request_id]),
      [
        [1, 'r1'],
        [2, 'r2'],
        [3, 'r3'],
      ],
    );
    assert.deepEqual(
      b.entries().map((e) => [e.seq, e.request_id]),
      [
        [1, 'r1'],
        [2, 'r3'],
      ],
    );
    assert.equal(verifyChain(a.lines).ok, true);
    assert.equal(verifyChain(b.lines).ok, true);
  });

  it('counts a sink that throws or hangs as failed', async () => {
    const throwing: AuditSink = {
      name: 'throwing',
      write: () => {
        throw new Error('sync failure');
      },
      close: async () => {},
    };
    const hanging: AuditSink = { name: 'hanging', write: () => new Promise(() => {}), close: async () => {} };
    const { failures, metrics } = countingMetrics();
    const audit = new AuditService({ sinks: [throwing, hanging], metrics, sinkTimeoutMs: 50 });
    await assert.rejects(audit.log(input()), isAuditUnavailable);
    assert.deepEqual(failures.sort(), ['hanging', 'throwing']);
  });

  it('writes chained lines to a stdout-like stream', async () => {
    const stream = new PassThrough();
    let out = '';
    stream.on('data', (chunk) => {
      out += chunk;
    });
    const audit = new AuditService({ sinks: [new StdoutSink(stream)], hmacKey: randomBytes(32) });
    await audit.log(input({ sensitive: { password: 'pw-stdout' } }));
    await audit.log(input({ type: 'response', outcome: 'ok' }));
    await audit.close();
    const lines = out.trim().split('\n');
    assert.equal(lines.length, 2);
    assert.equal(out.includes('pw-stdout'), false);
    assert.equal(verifyChain(lines).ok, true);
  });

  it('fails closed after close()', async () => {
    const audit = new AuditService({ sinks: [new FileSink(join(dir, 'closed.log'))] });
    await audit.log(input());
    await audit.close();
    await assert.rejects(audit.log(input()), isAuditUnavailable);
  });
});
