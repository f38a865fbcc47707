import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runCli } from '../support/broker-process.js';

const COMMANDS = [
  [],
  ['server'],
  ['operator'],
  ['operator', 'init'],
  ['operator', 'unseal'],
  ['operator', 'seal'],
  ['operator', 'status'],
  ['operator', 'rotate'],
  ['token'],
  ['token', 'create'],
  ['token', 'lookup'],
  ['token', 'renew'],
  ['token', 'revoke'],
  ['env'],
  ['env', 'create'],
  ['env', 'list'],
  ['env', 'show'],
  ['env', 'protect'],
  ['kv'],
  ['kv', 'put'],
  ['kv', 'get'],
  ['kv', 'list'],
  ['kv', 'versions'],
  ['kv', 'update'],
  ['kv', 'delete'],
  ['kv', 'recover'],
  ['kv', 'purge'],
  ['kv', 'list-deleted'],
  ['audit'],
  ['audit', 'verify'],
];

describe('custody --help', () => {
  it('every command has help with an Examples section (exit 0)', async () => {
    const results = await Promise.all(COMMANDS.map((c) => runCli([...c, '--help'])));
    results.forEach((r, i) => {
      const what = `custody ${COMMANDS[i].join(' ')} --help`;
      assert.equal(r.code, 0, `${what} → ${r.code}: ${r.stderr}`);
      assert.match(r.stdout, /^Usage: custody/, what);
      assert.match(r.stdout, /\nExamples:\n {2}\$ custody /, what);
    });
    // Leaf commands document the options every command takes.
    assert.match(results[COMMANDS.findIndex((c) => c.join(' ') === 'kv get')].stdout, /--format <format>/);
  });

  it('kv put documents stdin and @file so values stay out of shell history', async () => {
    const r = await runCli(['kv', 'put', '--help']);
    assert.match(r.stdout, /or - \(the raw value from\s+stdin\)/);
    assert.match(r.stdout, /key=@file/);
    assert.match(r.stdout, /shell history/);
  });

  it('`help kv get` and --version work', async () => {
    const help = await runCli(['help', 'kv', 'get']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /Examples/);
    const v = await runCli(['--version']);
    assert.equal(v.code, 0);
    assert.match(v.stdout, /^\d+\.\d+\.\d+/);
  });
});
