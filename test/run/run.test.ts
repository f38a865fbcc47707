import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { VAULT_PREFIX } from '../../src/compat/vault/door.js';
import { exitCodeOf } from '../../src/runtime/supervisor.js';
import { VAULT_PATH_PREFIX } from '../../src/runtime/vault.js';
import { type BrokerProcess, startBrokerProcess } from '../support/broker-process.js';
import { apiOf, cliOf, spawnCli, workloadToken } from './helpers.js';

/** `custody run` end to end against a real broker process: exit codes, secrets, usage and setup errors. */
describe('custody run: exit codes, secrets, errors', () => {
  let broker: BrokerProcess;
  let api: Awaited<ReturnType<typeof apiOf>>;
  let cli: ReturnType<typeof cliOf>;
  let work: string;
  let jobToken: string;
  const PASSWORD = `pw-${Math.random().toString(36).slice(2)}-long`;

  before(async () => {
    broker = await startBrokerProcess();
    api = await apiOf(broker);
    cli = cliOf(broker);
    work = await mkdtemp(path.join(tmpdir(), 'custody-run-'));
    await api.ok('POST', '/v1/envs', { name: 'prod' });
    await api.ok('PUT', '/v1/secrets/prod/api/key', { value: 'key-123 with spaces' });
    await api.ok('PUT', '/v1/secrets/prod/db/credentials', {
      value: JSON.stringify({ user: 'app', password: PASSWORD, port: 5432 }),
      content_type: 'application/json',
    });
    await api.ok('PUT', '/v1/secrets/prod/other/thing', { value: 'not for the job' });
    jobToken = await workloadToken(broker, 'prod', 'trainer', [
      ['secrets-user', 'prod/secrets/api'],
      ['secrets-user', 'prod/secrets/db'],
    ]);
  });

  after(async () => {
    await api?.close();
    await broker?.cleanup();
    if (work) await rm(work, { recursive: true, force: true });
  });

  const node = (script: string) => ['--', process.execPath, '-e', script];

  it('exits with the child exit code: 0, 3, and 128+9 when the child is killed by SIGKILL', async () => {
    const zero = await cli(['run', ...node('process.exit(0)')]);
    assert.equal(zero.code, 0, zero.stderr);
    const three = await cli(['run', ...node('process.exit(3)')]);
    assert.equal(three.code, 3, three.stderr);
    assert.equal(three.stderr, '', 'nothing of its own on stderr');
    const killed = await cli(['run', ...node("process.kill(process.pid, 'SIGKILL')")]);
    assert.equal(killed.code, 137);
    assert.equal(exitCodeOf(null, 'SIGTERM'), 143);
    // Without `--`: everything after the command name is the command's.
    const plain = await cli(['run', 'sh', '-c', 'exit 5', '--secret', 'x']);
    assert.equal(plain.code, 5, plain.stderr);
  });

  it('SIGHUP and SIGINT to custody run reach the child; the exit code says which signal ended it', async () => {
    for (const [signal, code] of [
      ['SIGHUP', 129],
      ['SIGINT', 130],
    ] as const) {
      const run = spawnCli(
        ['run', ...node('console.log(JSON.stringify({ ready: true })); setInterval(() => {}, 1000)')],
        broker.env(),
      );
      await run.waitFor(/"ready":true/);
      run.proc.kill(signal);
      const res = await run.exited;
      assert.equal(res.code, code, `${signal}: ${res.stderr}`);
    }
  });

  it('--secret puts values (and one field of a JSON value) in the env of the child, never in its argv', async () => {
    const r = await cli(
      [
        'run',
        '--no-mask',
        '--secret',
        'API_KEY=prod/api/key',
        '--secret',
        'DB_USER=prod/db/credentials#user',
        '--secret',
        'DB_PASS=prod/db/credentials#password',
        '--secret',
        'DB_PORT=prod/db/credentials#port',
        ...node(
          'console.log(JSON.stringify({k: process.env.API_KEY, u: process.env.DB_USER, p: process.env.DB_PASS, port: process.env.DB_PORT, argv: process.argv, token: process.env.CUSTODY_TOKEN ?? null}))',
        ),
      ],
      { env: { CUSTODY_TOKEN: jobToken } },
    );
    assert.equal(r.code, 0, r.stderr);
    const got = JSON.parse(r.stdout);
    assert.equal(got.k, 'key-123 with spaces');
    assert.equal(got.u, 'app');
    assert.equal(got.p, PASSWORD);
    assert.equal(got.port, '5432', 'a non-string field as JSON');
    assert.ok(!JSON.stringify(got.argv).includes(PASSWORD));
    assert.equal(got.token, null, "the job's token is not passed on by default");
    assert.equal(r.stderr, '');

    const passed = await cli(['run', '--pass-token', ...node('console.log(process.env.CUSTODY_TOKEN)')], {
      env: { CUSTODY_TOKEN: jobToken },
    });
    assert.equal(passed.stdout.trim(), jobToken, '--pass-token keeps it');
  });

  it('usage errors exit 2 and start nothing', async () => {
    const marker = path.join(work, 'usage-started');
    const touch = node(`require('fs').writeFileSync(${JSON.stringify(marker)}, 'x')`);
    const cases: [string[], RegExp][] = [
      [['run'], /missing required argument 'command'/],
      [['run', '--secret', 'NOEQUALS', ...touch], /is not VAR=REF \(InvalidSpec\)/],
      [['run', '--secret', '1X=prod/api/key', ...touch], /not an environment variable name/],
      [['run', '--secret', 'X=prod', ...touch], /InvalidSecretRef/],
      [['run', '--secret', 'X=prod/api/key#', ...touch], /field after # is empty/],
      [['run', '--creds', 'PG=prod/pg', ...touch], /is not ENV\/ENGINE\/ROLE/],
      [['run', '--secret', 'A=prod/api/key', '--secret', 'A=prod/db/credentials', ...touch], /VariableClash/],
      [
        ['run', '--secret', 'PG_PASSWORD=prod/api/key', '--creds', 'PG=prod/pg/ro', ...touch],
        /VariableClash/,
      ],
      [['run', '--vault', '--secret', 'VAULT_TOKEN=prod/api/key', ...touch], /set by both --vault/],
      [['run', '--proxy-deny-others', ...touch], /goes with --azure/],
      [['run', '--kill-grace', 'soon', ...touch], /InvalidDuration/],
    ];
    for (const [args, re] of cases) {
      const r = await cli(args);
      assert.equal(r.code, 2, `${args.join(' ')} → ${r.code}: ${r.stderr}`);
      assert.match(r.stderr, re, args.join(' '));
      assert.match(r.stderr, /\nhint: /, `${args.join(' ')} has a hint`);
    }
    assert.equal(existsSync(marker), false);
  });

  it('failures before the child starts exit 1 with a hint, and the child never runs', async () => {
    const marker = path.join(work, 'failure-started');
    const touch = node(`require('fs').writeFileSync(${JSON.stringify(marker)}, 'x')`);
    const missing = await cli(['run', '--secret', 'X=prod/api/nope', ...touch]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^error: .*\(SecretNotFound\)\nhint: /);
    const denied = await cli(['run', '--secret', 'X=prod/other/thing', ...touch], {
      env: { CUSTODY_TOKEN: jobToken },
    });
    assert.equal(denied.code, 1);
    assert.match(denied.stderr, /\(PermissionDenied\)/);
    const notJson = await cli(['run', '--secret', 'X=prod/api/key#user', ...touch]);
    assert.equal(notJson.code, 1);
    assert.match(
      notJson.stderr,
      /prod\/api\/key is not a JSON object, so it has no field user \(NotJsonObject\)/,
    );
    assert.ok(!notJson.stderr.includes('key-123'), 'the value is never echoed');
    const noField = await cli(['run', '--secret', 'X=prod/db/credentials#nope', ...touch]);
    assert.match(
      noField.stderr,
      /has no field nope \(FieldNotFound\)\nhint: Its fields: user, password, port\./,
    );
    assert.ok(!noField.stderr.includes(PASSWORD));
    const noToken = await cli(['run', ...touch], { env: { CUSTODY_TOKEN: undefined } });
    assert.equal(noToken.code, 1);
    assert.match(noToken.stderr, /\(MissingToken\)/);
    const badToken = await cli(['run', ...touch], { env: { CUSTODY_TOKEN: 'cst_notarealtoken000000' } });
    assert.equal(badToken.code, 1);
    assert.match(badToken.stderr, /^error: /);
    assert.ok(!badToken.stderr.includes('notarealtoken'), 'the token is redacted');
    const brokerDown = await cli(['run', ...touch], { env: { CUSTODY_ADDR: 'https://127.0.0.1:1' } });
    assert.equal(brokerDown.code, 1);
    assert.match(brokerDown.stderr, /\(ConnectionRefused\)\nhint: /);
    assert.equal(existsSync(marker), false, 'the child never ran');

    const notFound = await cli(['run', '--', 'custody-no-such-command-xyz']);
    assert.equal(notFound.code, 1);
    assert.match(
      notFound.stderr,
      /custody-no-such-command-xyz: command not found \(CommandNotFound\)\nhint: /,
    );
  });

  it('--vault: VAULT_ADDR is a loopback proxy, VAULT_TOKEN a masked run-local token; VAULT_NAMESPACE/CACERT dropped', async () => {
    assert.equal(VAULT_PATH_PREFIX, VAULT_PREFIX, 'the runtime and the Vault door agree on the prefix');
    const r = await cli(
      [
        'run',
        '--vault',
        ...node(
          'console.log(JSON.stringify({a: process.env.VAULT_ADDR, t: process.env.VAULT_TOKEN, c: process.env.VAULT_CACERT, ns: process.env.VAULT_NAMESPACE ?? null}))',
        ),
      ],
      {
        env: {
          CUSTODY_TOKEN: jobToken,
          VAULT_NAMESPACE: 'team-a',
          VAULT_TOKEN: 'stale',
          VAULT_CACERT: '/elsewhere/ca.pem',
        },
      },
    );
    assert.equal(r.code, 0, r.stderr);
    const got = JSON.parse(r.stdout);
    assert.match(got.a, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.deepEqual(
      { t: got.t, ns: got.ns, c: got.c },
      { t: '<redacted:VAULT_TOKEN>', ns: null, c: undefined },
    );
    assert.ok(!r.stdout.includes(jobToken) && !r.stderr.includes(jobToken));
    assert.match(r.stderr, /not passed to the child: VAULT_NAMESPACE, VAULT_CACERT/);
  });

  it('--help documents the options, exit codes and examples', async () => {
    const r = await cli(['run', '--help']);
    assert.equal(r.code, 0);
    for (const want of [
      /--secret <VAR=ENV\/NAME\[#field\]>/,
      /--creds <PREFIX=ENV\/ENGINE\/ROLE>/,
      /--vault/,
      /--azure/,
      /--proxy-deny-others/,
      /--kill-grace <duration>/,
      /--no-mask/,
      /--files/,
      /128\+signal/,
      /\nExamples:\n {2}\$ custody run /,
    ])
      assert.match(r.stdout, want);
  });
});
