import assert from 'node:assert/strict';
import { readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type BrokerProcess, runCli, startBrokerProcess } from '../support/broker-process.js';

/**
 * Audit file rotation as logrotate does it: rename the file, SIGHUP the broker; the new file goes on
 * with the same chain, and `custody audit verify` checks the files together, oldest first.
 */
describe('audit file rotation (SIGHUP) and verifying rotated files', () => {
  let broker: BrokerProcess;
  let log: string;
  const cli = (args: string[]) => runCli(args, { env: broker.env() });
  const traffic = async (n: number) => {
    for (let i = 0; i < n; i++) assert.equal((await cli(['env', 'list'])).code, 0);
  };
  const lines = async (file: string) => (await readFile(file, 'utf8')).trim().split('\n');

  before(async () => {
    broker = await startBrokerProcess();
    log = path.join(broker.dataDir, 'audit.log');
    await traffic(2);
    await rename(log, `${log}.2`);
    broker.proc.kill('SIGHUP');
    await traffic(2);
    await rename(log, `${log}.1`);
    broker.proc.kill('SIGHUP');
    await traffic(2);
  });
  after(async () => {
    await broker?.cleanup();
  });

  it('SIGHUP reopens the path: each file holds its own entries and the chain runs on across them', async () => {
    const [a, b, c] = await Promise.all([`${log}.2`, `${log}.1`, log].map(lines));
    assert.ok(a.length >= 4 && b.length >= 4 && c.length >= 4, `${a.length} ${b.length} ${c.length}`);
    const lastOf = (ls: string[]) => JSON.parse(ls[ls.length - 1]);
    assert.equal(JSON.parse(b[0]).prev_hash, lastOf(a).hash);
    assert.equal(JSON.parse(b[0]).seq, lastOf(a).seq + 1);
    assert.equal(JSON.parse(c[0]).prev_hash, lastOf(b).hash);
    assert.match(broker.stderr(), /Received SIGHUP: the audit file is reopened/);
  });

  it('verify: rotated files oldest first pass; a gap, a wrong order or a lone continuation fail', async () => {
    const all = await cli(['audit', 'verify', `${log}.2`, `${log}.1`, log]);
    assert.equal(all.code, 0, all.stdout + all.stderr);
    assert.match(all.stdout, /^ok: \d+ entries verified in 3 files\n$/);
    const json = await cli(['audit', 'verify', `${log}.2`, `${log}.1`, log, '--format', 'json']);
    assert.equal(JSON.parse(json.stdout).files, 3);

    const gap = await cli(['audit', 'verify', `${log}.2`, log]);
    assert.equal(gap.code, 1);
    assert.match(
      gap.stdout,
      new RegExp(`^${log.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} line 1: \\w+ — .*check the order`),
    );
    const order = await cli(['audit', 'verify', `${log}.1`, `${log}.2`]);
    assert.equal(order.code, 1);
    const lone = await cli(['audit', 'verify', log]);
    assert.equal(lone.code, 1);
    assert.match(lone.stdout, /^line 1: .*give them first, oldest first, or use --partial/);
    const partial = await cli(['audit', 'verify', '--partial', `${log}.1`, log]);
    assert.equal(partial.code, 0, partial.stdout);
  });

  it('--partial still finds an edited line', async () => {
    const ls = await lines(log);
    const e = JSON.parse(ls[1]);
    e.action = 'secrets/purge';
    ls[1] = JSON.stringify(e);
    const copy = path.join(broker.dataDir, 'edited.log');
    await writeFile(copy, `${ls.join('\n')}\n`);
    const r = await cli(['audit', 'verify', '--partial', copy]);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /^line 2: edited — /);
  });
});
