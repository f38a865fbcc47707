import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runCli } from '../support/broker-process.js';

const COMMANDS = [
  [],
  ['server'],
  ['proxy'],
  ['operator'],
  ['operator', 'init'],
  ['operator', 'unseal'],
  ['operator', 'seal'],
  ['operator', 'status'],
  ['operator', 'rotate'],
  ['operator', 'generate-root'],
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
  ['auth'],
  ['auth', 'enable'],
  ['auth', 'list'],
  ['auth', 'show'],
  ['auth', 'disable'],
  ['auth', 'role'],
  ['auth', 'role', 'write'],
  ['auth', 'role', 'read'],
  ['auth', 'role', 'list'],
  ['auth', 'role', 'delete'],
  ['auth', 'role-id'],
  ['auth', 'secret-id'],
  ['login'],
  ['access'],
  ['access', 'assign'],
  ['access', 'revoke'],
  ['access', 'check'],
  ['access', 'list'],
  ['role'],
  ['role', 'list'],
  ['role', 'show'],
  ['role', 'create'],
  ['identity'],
  ['identity', 'list'],
  ['identity', 'show'],
  ['group'],
  ['group', 'create'],
  ['group', 'list'],
  ['group', 'show'],
  ['group', 'add'],
  ['group', 'remove'],
  ['group', 'delete'],
  ['engine'],
  ['engine', 'configure'],
  ['engine', 'list'],
  ['engine', 'show'],
  ['engine', 'remove'],
  ['engine', 'rotate-root'],
  ['engine', 'role'],
  ['engine', 'role', 'write'],
  ['engine', 'role', 'read'],
  ['engine', 'role', 'list'],
  ['engine', 'role', 'delete'],
  ['engine', 'static-role'],
  ['engine', 'static-role', 'write'],
  ['engine', 'static-role', 'rotate'],
  ['creds'],
  ['creds', 'issue'],
  ['creds', 'static'],
  ['run'],
  ['lease'],
  ['lease', 'lookup'],
  ['lease', 'renew'],
  ['lease', 'revoke'],
  ['lease', 'list'],
  ['doctor'],
  ['info'],
];

describe('custody --help', () => {
  it('every command has help with an Examples section (exit 0)', async () => {
    // A few at a time: ~100 CLIs at once can starve a 2-core machine past the per-command timeout.
    const results: Awaited<ReturnType<typeof runCli>>[] = [];
    for (let i = 0; i < COMMANDS.length; i += 6) {
      results.push(...(await Promise.all(COMMANDS.slice(i, i + 6).map((c) => runCli([...c, '--help'])))));
    }
    results.forEach((r, i) => {
      const what = `custody ${COMMANDS[i].join(' ')} --help`;
      assert.equal(r.code, 0, `${what} → ${r.code}: ${r.stderr}`);
      assert.match(r.stdout, /^Usage: custody/, what);
      assert.match(r.stdout, /\nExamples:\n {2}\$ custody /, what);
    });
    // Leaf commands document the options every command takes.
    assert.match(results[COMMANDS.findIndex((c) => c.join(' ') === 'kv get')].stdout, /--format <format>/);
  });

  it('every command is in the list above', async () => {
    const { stdout } = await runCli(['--help']);
    const section = stdout.slice(stdout.indexOf('\nCommands:\n'), stdout.indexOf('\nExamples:\n'));
    const top = [...section.matchAll(/^ {2}([a-z][a-z-]*)/gm)].map((m) => m[1]).filter((c) => c !== 'help');
    assert.ok(top.includes('login') && top.includes('lease'), top.join(' '));
    for (const c of top)
      assert.ok(
        COMMANDS.some((x) => x[0] === c),
        `custody ${c} is missing from COMMANDS`,
      );
  });

  it('credentials are read from files or stdin; the decision of access check is documented', async () => {
    const login = await runCli(['login', '--help']);
    assert.match(login.stdout, /never from the command line/);
    const check = await runCli(['access', 'check', '--help']);
    assert.match(check.stdout, /exit code is 0 for both/);
    const issue = await runCli(['creds', 'issue', '--help']);
    assert.match(issue.stdout, /choices: "table", "json", "env"/);
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
