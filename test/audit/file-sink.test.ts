import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { appendFile, mkdir, readFile, rename, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  type AuditEntry,
  AuditService,
  FileSink,
  verifyAuditFile,
  verifyChain,
} from '../../src/audit/index.js';
import { input, record, tempDir } from './helpers.js';

const readLines = async (path: string) => (await readFile(path, 'utf8')).split('\n').filter(Boolean);
const parse = (line: string) => JSON.parse(line) as AuditEntry;

describe('file sink', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  before(async () => ({ dir, cleanup } = await tempDir()));
  after(() => cleanup());

  it('group-commits 500 concurrent entries into a few fdatasyncs, all chained', async () => {
    const path = join(dir, 'group.log');
    const sink = new FileSink(path);
    const audit = new AuditService({ sinks: [sink], hmacKey: randomBytes(32) });
    await Promise.all(Array.from({ length: 500 }, (_, i) => audit.log(input({ requestId: `r-${i}` }))));
    const lines = await readLines(path);
    assert.equal(lines.length, 500);
    assert.deepEqual(
      lines.map((l) => parse(l).seq),
      Array.from({ length: 500 }, (_, i) => i + 1),
    );
    assert.deepEqual(await verifyAuditFile(path), {
      ok: true,
      count: 500,
      lastSeq: 500,
      lastHash: parse(lines[499]).hash,
    });
    assert.equal(sink.stats.writes, 500);
    assert.ok(sink.stats.flushes >= 1 && sink.stats.flushes <= 10, `flushes: ${sink.stats.flushes}`);
    await audit.close();
  });

  it('resolves each write only once its line is in the file', async () => {
    const path = join(dir, 'durable.log');
    const sink = new FileSink(path);
    for (let i = 1; i <= 5; i++) {
      await sink.write(record(i));
      assert.equal((await readLines(path)).length, i);
    }
    await sink.close();
    await assert.rejects(sink.write(record(6)), /closed/);
  });

  it('creates the file with mode 0600', async () => {
    const path = join(dir, 'mode.log');
    const sink = await FileSink.open(path);
    await sink.write(record(1));
    await sink.close();
    assert.equal((await stat(path)).mode & 0o777, 0o600);
  });

  it('continues the chain of an existing file after reopening', async () => {
    const path = join(dir, 'reopen.log');
    const first = await FileSink.open(path);
    await Promise.all([1, 2, 3].map((i) => first.write(record(i))));
    await first.close();
    const second = await FileSink.open(path);
    await Promise.all([4, 5, 6, 7].map((i) => second.write(record(i))));
    await second.close();
    const lines = await readLines(path);
    assert.deepEqual(
      lines.map((l) => parse(l).seq),
      [1, 2, 3, 4, 5, 6, 7],
    );
    assert.equal((await verifyAuditFile(path)).ok, true);
  });

  it('resumes from the tail of a large file, also when the last line is longer than 64 KiB', async () => {
    const path = join(dir, 'large.log');
    const sink = new FileSink(path);
    const filler = 'x'.repeat(300);
    await Promise.all(Array.from({ length: 3000 }, (_, i) => sink.write(record(i, { data: { filler } }))));
    await sink.write(record(3000, { data: { filler: 'y'.repeat(200 * 1024) } }));
    await sink.close();
    assert.ok((await stat(path)).size > 1024 * 1024);
    const again = await FileSink.open(path);
    await again.write(record(3001));
    await again.close();
    const result = await verifyAuditFile(path);
    assert.equal(result.ok && result.count, 3002);
  });

  it('drops a torn (unterminated, never acknowledged) last line before resuming', async () => {
    const path = join(dir, 'torn.log');
    const sink = new FileSink(path);
    await sink.write(record(1));
    await sink.write(record(2));
    await sink.close();
    await appendFile(path, '{"time":"2025-01-01T00:00:00.000Z","type":"requ');
    const again = await FileSink.open(path);
    await again.write(record(3));
    await again.close();
    assert.deepEqual(
      (await readLines(path)).map((l) => parse(l).seq),
      [1, 2, 3],
    );
    assert.equal((await verifyAuditFile(path)).ok, true);
  });

  it('refuses to append to a file that does not end with a chained entry', async () => {
    const path = join(dir, 'foreign.log');
    await appendFile(path, 'not an audit line\n');
    await assert.rejects(FileSink.open(path), /does not end with a chained entry/);
    const sink = new FileSink(path);
    await assert.rejects(sink.write(record(1)), /does not end with a chained entry/);
    assert.equal(await readFile(path, 'utf8'), 'not an audit line\n');
  });

  it('continues the chain into a new file after rotation', async () => {
    const path = join(dir, 'rotate.log');
    const sink = new FileSink(path);
    await Promise.all([1, 2, 3].map((i) => sink.write(record(i))));
    await rename(path, `${path}.1`);
    sink.reopen();
    await Promise.all([4, 5].map((i) => sink.write(record(i))));
    await sink.close();
    const old = await verifyAuditFile(`${path}.1`);
    assert.equal(old.ok, true);
    if (!old.ok) return;
    assert.equal((await verifyAuditFile(path)).ok, false);
    assert.deepEqual(
      await verifyAuditFile(path, { startPrevHash: old.lastHash, startSeq: old.lastSeq + 1 }),
      {
        ok: true,
        count: 2,
        lastSeq: 5,
        lastHash: parse((await readLines(path))[1]).hash,
      },
    );
  });

  it('rejects the writes of a batch that cannot be written, then recovers', async () => {
    const path = join(dir, 'gone', 'audit.log');
    const sink = new FileSink(path);
    const results = await Promise.allSettled([1, 2, 3].map((i) => sink.write(record(i))));
    assert.deepEqual(
      results.map((r) => r.status),
      ['rejected', 'rejected', 'rejected'],
    );
    assert.match(String((results[0] as PromiseRejectedResult).reason), /ENOENT/);
    await mkdir(join(dir, 'gone'));
    await sink.write(record(4));
    await sink.close();
    assert.deepEqual(verifyChain(await readLines(path)).ok, true);
  });

  it('rejects when the path is a directory', async () => {
    const path = join(dir, 'is-a-dir');
    await mkdir(path);
    await assert.rejects(FileSink.open(path), /EISDIR/);
    const sink = new FileSink(path);
    await assert.rejects(sink.write(record(1)), /EISDIR/);
    assert.equal(sink.stats.failures, 1);
  });

  it('rejects the whole batch on ENOSPC', async () => {
    const sink = new FileSink('/dev/full');
    const results = await Promise.allSettled([1, 2, 3].map((i) => sink.write(record(i))));
    assert.ok(results.every((r) => r.status === 'rejected' && /ENOSPC/.test(String(r.reason))));
    assert.equal(sink.stats.flushes, 0);
    await sink.close();
  });
});
