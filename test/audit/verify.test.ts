import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type AuditEntry, verifyAuditFile, verifyChain } from '../../src/audit/index.js';
import { chainLines, tempDir } from './helpers.js';

describe('verifyAuditFile', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  before(async () => ({ dir, cleanup } = await tempDir()));
  after(() => cleanup());

  it('streams a large file and reports the first tampered line like verifyChain', async () => {
    const lines = chainLines(5000);
    const good = join(dir, 'good.log');
    await writeFile(good, `${lines.join('\n')}\n`);
    const ok = await verifyAuditFile(good);
    assert.equal(ok.ok && ok.count, 5000);

    const edited = [...lines];
    const e = JSON.parse(edited[3499]) as AuditEntry;
    e.outcome = 'denied';
    edited[3499] = JSON.stringify(e);
    edited.splice(4200, 1);
    const bad = join(dir, 'bad.log');
    await writeFile(bad, `${edited.join('\n')}\n`);
    const result = await verifyAuditFile(bad);
    assert.deepEqual(result, verifyChain(edited));
    assert.equal(!result.ok && `${result.line} ${result.reason}`, '3500 edited');
  });

  it('verifies an empty file and rejects a missing one', async () => {
    const empty = join(dir, 'empty.log');
    await writeFile(empty, '');
    assert.equal((await verifyAuditFile(empty)).ok, true);
    await assert.rejects(verifyAuditFile(join(dir, 'missing.log')), /ENOENT/);
  });
});
