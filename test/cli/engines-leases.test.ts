import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { splitStatements } from '../../src/cli/commands/engine.js';
import { type BrokerProcess, runCli, startBrokerProcess } from '../support/broker-process.js';
import { type PostgresCluster, startPostgres } from '../support/postgres.js';

/** End to end: a real broker and a throwaway PostgreSQL driven by `custody engine|creds|lease …`. */
describe('custody CLI: engines, credentials and leases on PostgreSQL', () => {
  let cluster: PostgresCluster;
  let broker: BrokerProcess;
  let work: string;
  let adminUrl: string;
  const cli = (
    args: string[],
    opts: { env?: Record<string, string | undefined>; input?: string; cwd?: string } = {},
  ) => runCli(args, { ...opts, env: { ...broker.env(), ...opts.env } });
  const ok = async (
    args: string[],
    opts: { env?: Record<string, string | undefined>; input?: string } = {},
  ) => {
    const r = await cli(args, opts);
    assert.equal(r.code, 0, `custody ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
    return r;
  };
  const json = async (
    args: string[],
    opts: { env?: Record<string, string | undefined>; input?: string } = {},
  ) => JSON.parse((await ok([...args, '--format', 'json'], opts)).stdout);

  const urlAs = (user: string, password: string) => {
    const u = new URL(adminUrl);
    u.username = user;
    u.password = password;
    return u.toString();
  };
  async function query(url: string, sql: string): Promise<unknown[]> {
    const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
    await c.connect();
    try {
      return (await c.query(sql)).rows;
    } finally {
      await c.end().catch(() => {});
    }
  }
  async function canLogin(user: string, password: string): Promise<boolean> {
    try {
      await query(urlAs(user, password), 'select 1');
      return true;
    } catch {
      return false;
    }
  }

  before(async () => {
    cluster = await startPostgres();
    adminUrl = await cluster.createDatabase('app');
    await query(
      adminUrl,
      "create table features (id int primary key, v text); insert into features values (1, 'x')",
    );
    broker = await startBrokerProcess();
    work = await mkdtemp(path.join(tmpdir(), 'custody-cli-engines-'));
    await ok(['env', 'create', 'prod']);
  });

  after(async () => {
    await broker?.cleanup();
    await cluster?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('engine configure reads the admin password from stdin and never shows it', async () => {
    const e = await json(
      [
        'engine',
        'configure',
        'prod/pg',
        '--type',
        'postgresql',
        '--connection-url',
        `postgres://127.0.0.1:${cluster.port}/app`,
        '--username',
        cluster.superuser,
        '--password',
        '-',
        '--config',
        'max_connections=2',
      ],
      { input: `${cluster.password}\n` },
    );
    assert.equal(e.type, 'postgresql');
    assert.equal(e.config.connection_url, `postgres://127.0.0.1:${cluster.port}/app`);
    assert.equal(e.config.max_connections, 2);
    assert.ok(!('password' in e.config));
    const show = await ok(['engine', 'show', 'prod/pg']);
    assert.match(show.stdout, /^connection_url:\s+postgres:\/\/127\.0\.0\.1:\d+\/app$/m);
    assert.match(show.stdout, /^username:\s+postgres$/m);
    assert.ok(!show.stdout.includes(cluster.password));
    const list = await ok(['engine', 'list', 'prod']);
    assert.match(list.stdout, /^NAME\s+TYPE\s+URL\s+USERNAME\s+UPDATED\n/);
    assert.match(list.stdout, /^pg\s+postgresql\s+postgres:\/\//m);

    const wrong = await cli(
      [
        'engine',
        'configure',
        'prod/bad',
        '--type',
        'postgresql',
        '--connection-url',
        `postgres://127.0.0.1:${cluster.port}/app`,
        '--username',
        cluster.superuser,
        '--password',
        '-',
      ],
      { input: 'not-the-password' },
    );
    assert.equal(wrong.code, 1, 'the broker tests the connection before saving');
    assert.match(wrong.stderr, /^error: .+ \(\w+\)\n/);
    assert.ok(!wrong.stderr.includes('not-the-password'));
    const literal = await cli([
      'engine',
      'configure',
      'prod/bad',
      '--type',
      'postgresql',
      '--connection-url',
      'postgres://127.0.0.1/app',
      '--password',
      'hunter2',
    ]);
    assert.equal(literal.code, 2, 'a password on the command line is refused');
  });

  it('engine role write/read/list', async () => {
    const role = await json([
      'engine',
      'role',
      'write',
      'prod/pg/ro',
      '--ttl',
      '10m',
      '--max-ttl',
      '1h',
      '--grant',
      'SELECT ON ALL TABLES IN SCHEMA public',
    ]);
    assert.equal(role.kind, 'dynamic');
    assert.equal(role.ttl, 600);
    assert.equal(role.max_ttl, 3600);
    assert.deepEqual(role.config.grants, ['SELECT ON ALL TABLES IN SCHEMA public']);
    const read = await ok(['engine', 'role', 'read', 'prod/pg/ro']);
    assert.match(read.stdout, /^ttl:\s+600$/m);
    assert.match(read.stdout, /^grants:\s+SELECT ON ALL TABLES IN SCHEMA public$/m);
    const list = await ok(['engine', 'role', 'list', 'prod/pg']);
    assert.match(list.stdout, /^NAME\s+KIND\s+TTL\s+MAX TTL/);
    assert.match(list.stdout, /^ro\s+dynamic\s+600\s+3600/m);

    // Statement files: `;`-separated across lines, or one per line.
    const create = path.join(work, 'create.sql');
    await writeFile(
      create,
      '-- a reader that can also see the schema\nCREATE ROLE {{name}} WITH LOGIN PASSWORD {{password}}\n  VALID UNTIL {{expiration}};\nGRANT SELECT ON features TO {{name}};\n',
    );
    const revoke = path.join(work, 'revoke.sql');
    await writeFile(revoke, 'REVOKE ALL ON features FROM {{name}}\nDROP ROLE IF EXISTS {{name}}\n');
    const custom = await json([
      'engine',
      'role',
      'write',
      'prod/pg/custom',
      '--creation-statements',
      create,
      '--revocation-statements',
      revoke,
      '--username-template',
      'cli-{{role}}-{{random}}',
    ]);
    assert.deepEqual(custom.config.creation_statements, [
      'CREATE ROLE {{name}} WITH LOGIN PASSWORD {{password}}\n  VALID UNTIL {{expiration}}',
      'GRANT SELECT ON features TO {{name}}',
    ]);
    assert.deepEqual(custom.config.revocation_statements, [
      'REVOKE ALL ON features FROM {{name}}',
      'DROP ROLE IF EXISTS {{name}}',
    ]);
    const c = await json(['creds', 'issue', 'prod/pg/custom']);
    assert.match(c.username, /^cli_custom_/, 'the template, sanitized for PostgreSQL');
    assert.deepEqual(await query(urlAs(c.username, c.password), 'select v from features'), [{ v: 'x' }]);
    await ok(['lease', 'revoke', c.lease_id]);
    assert.equal(await canLogin(c.username, c.password), false);
    await ok(['engine', 'role', 'delete', 'prod/pg/custom']);
    assert.equal((await cli(['engine', 'role', 'read', 'prod/pg/custom'])).code, 1);
  });

  it('creds issue: json works against PostgreSQL; env and table shapes; lookup, renew, list, revoke', async () => {
    const c = await json(['creds', 'issue', 'prod/pg/ro']);
    assert.match(c.lease_id, /^prod\/pg\/ro\//);
    assert.equal(typeof c.username, 'string');
    assert.equal(typeof c.password, 'string');
    assert.equal(c.renewable, true);
    assert.ok(Math.abs(Date.parse(c.expires_at) - Date.now() - 600_000) < 30_000);
    assert.match(
      c.data.connection_url,
      new RegExp(`^postgres://[^:@]+@127\\.0\\.0\\.1:${cluster.port}/app$`),
    );
    assert.ok(!c.data.connection_url.includes(c.password), 'no password in the connection URL');
    assert.deepEqual(await query(urlAs(c.username, c.password), 'select v from features'), [{ v: 'x' }]);
    await assert.rejects(query(urlAs(c.username, c.password), "insert into features values (2, 'y')"));

    const env = await ok(['creds', 'issue', 'prod/pg/ro', '--format', 'env', '--ttl', '5m']);
    const vars = Object.fromEntries(
      env.stdout
        .trim()
        .split('\n')
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );
    assert.deepEqual(Object.keys(vars).sort(), [
      'PG_CONNECTION_URL',
      'PG_DATABASE',
      'PG_EXPIRES_AT',
      'PG_HOST',
      'PG_LEASE_ID',
      'PG_PASSWORD',
      'PG_PORT',
      'PG_USERNAME',
    ]);
    assert.equal(vars.PG_DATABASE, 'app');
    assert.equal(vars.PG_PORT, String(cluster.port));
    assert.equal(await canLogin(vars.PG_USERNAME, vars.PG_PASSWORD), true);
    const prefixed = await ok(['creds', 'issue', 'prod/pg/ro', '--format', 'env', '--env-prefix', 'DB']);
    assert.match(prefixed.stdout, /^DB_USERNAME=\S+$/m);
    assert.match(prefixed.stdout, /^DB_PASSWORD=\S+$/m);
    assert.doesNotMatch(prefixed.stdout, /^PG_/m);
    const table = await ok(['creds', 'issue', 'prod/pg/ro']);
    assert.match(table.stdout, /^lease_id:\s+prod\/pg\/ro\/\S+$/m);
    assert.match(table.stdout, /^password:\s+\S+$/m);
    assert.match(table.stdout, /^connection_url:\s+postgres:\/\//m);
    assert.equal((await cli(['creds', 'issue', 'prod/pg/ro', '--env-prefix', 'DB'])).code, 2);

    const look = await json(['lease', 'lookup', c.lease_id]);
    assert.equal(look.state, 'active');
    assert.equal(look.username, c.username);
    assert.ok(look.ttl > 500 && look.ttl <= 600);
    const lookTable = await ok(['lease', 'lookup', c.lease_id]);
    assert.match(lookTable.stdout, /^lease_id:\s+prod\/pg\/ro\//);
    assert.match(lookTable.stdout, /^state:\s+active$/m);

    const short = await json(['lease', 'renew', c.lease_id, '--increment', '20m']);
    assert.equal(short.capped, false);
    assert.ok(short.ttl > 1100 && short.ttl <= 1200);
    // max TTL 1h from issue: asking for 1h from now is cut at the max.
    const renewed = await cli(['lease', 'renew', c.lease_id, '--increment', '1h']);
    assert.equal(renewed.code, 0, renewed.stderr);
    assert.match(renewed.stdout, /^capped:\s+true$/m);
    assert.match(renewed.stderr, /capped by the role's max TTL: the lease ends at \S+ and cannot be renewed/);
    const renewedJson = await json(['lease', 'renew', c.lease_id, '--increment', '1h']);
    assert.equal(renewedJson.capped, true);
    assert.equal(renewedJson.expires_at, renewedJson.max_expires_at);
    assert.equal(await canLogin(c.username, c.password), true, 'still valid after renewal');

    const list = await json(['lease', 'list', '--prefix', 'prod/pg/']);
    assert.ok(list.items.some((l: { lease_id: string }) => l.lease_id === c.lease_id));
    const listTable = await ok([
      'lease',
      'list',
      '--prefix',
      'prod/pg/',
      '--state',
      'active',
      '--limit',
      '50',
    ]);
    assert.match(listTable.stdout, /^LEASE ID\s+STATE\s+USERNAME\s+IDENTITY\s+EXPIRES\s+LAST ERROR\n/);
    assert.ok(listTable.stdout.includes(c.lease_id));

    const revoked = await ok(['lease', 'revoke', c.lease_id]);
    assert.equal(revoked.stdout, `Revoked ${c.lease_id}.\n`);
    assert.equal(await canLogin(c.username, c.password), false, 'login refused after revoke');
    assert.equal((await json(['lease', 'lookup', c.lease_id])).state, 'revoked');
    assert.equal(
      (await json(['lease', 'list', '--prefix', 'prod/pg/ro/', '--state', 'revoked'])).items.length,
      1,
    );

    // Everything still live under the prefix goes at once.
    const many = await json(['lease', 'revoke', '--prefix', 'prod/pg/ro/']);
    assert.equal(many.leases.length, 3);
    assert.deepEqual(many.states, { revoked: 3 });
    assert.deepEqual(many.left_behind, []);
    assert.equal(await canLogin(vars.PG_USERNAME, vars.PG_PASSWORD), false);
    assert.deepEqual((await json(['lease', 'list', '--prefix', 'prod/pg/', '--state', 'active'])).items, []);
  });

  it('lease revoke --force says plainly what may be left on the backend', async () => {
    const c = await json(['creds', 'issue', 'prod/pg/ro']);
    const forced = await ok(['lease', 'revoke', c.lease_id, '--force']);
    assert.equal(forced.stdout, `Revoked ${c.lease_id}.\n`);
    assert.match(forced.stderr, /may still exist there and must be removed by hand/);
    assert.ok(forced.stderr.includes(c.username), 'names the database user');
    assert.equal(await canLogin(c.username, c.password), true, 'force skipped the backend');
    await query(adminUrl, `drop owned by "${c.username}"; drop role "${c.username}"`);
  });

  it('static roles: creds static returns a working password; rotate changes it', async () => {
    await query(adminUrl, "create role etl login password 'InitialPassword123'");
    const role = await json([
      'engine',
      'static-role',
      'write',
      'prod/pg/etl',
      '--username',
      'etl',
      '--rotation-period',
      '24h',
    ]);
    assert.equal(role.kind, 'static');
    assert.equal(role.rotation_period, 86_400);
    assert.equal(await canLogin('etl', 'InitialPassword123'), false, 'Custody owns the password now');
    const first = await json(['creds', 'static', 'prod/pg/etl']);
    assert.equal(first.username, 'etl');
    assert.equal(await canLogin('etl', first.password), true);
    const table = await ok(['creds', 'static', 'prod/pg/etl']);
    assert.match(table.stdout, new RegExp(`^password:\\s+${first.password}$`, 'm'));
    const env = await ok(['creds', 'static', 'prod/pg/etl', '--format', 'env', '--env-prefix', 'ETL']);
    assert.equal(env.stdout, `ETL_USERNAME=etl\nETL_PASSWORD=${first.password}\n`);

    const rotated = await ok(['engine', 'static-role', 'rotate', 'prod/pg/etl']);
    assert.match(rotated.stdout, /^last_rotated_at:\s+\d{4}-/m);
    const second = await json(['creds', 'static', 'prod/pg/etl']);
    assert.notEqual(second.password, first.password);
    assert.equal(await canLogin('etl', first.password), false);
    assert.equal(await canLogin('etl', second.password), true);
    const issue = await cli(['creds', 'issue', 'prod/pg/etl']);
    assert.equal(issue.code, 1);
    assert.match(issue.stderr, /\(NotDynamicRole\)/);
  });

  it('engine rotate-root: the old admin password stops working, issuing keeps working', async () => {
    await query(adminUrl, "create role rot_admin login createrole password 'RotStart0123456789'");
    await query(adminUrl, 'grant select on features to rot_admin with grant option');
    const pwFile = path.join(work, 'admin.pw');
    await writeFile(pwFile, 'RotStart0123456789\n');
    await ok([
      'engine',
      'configure',
      'prod/pg2',
      '--type',
      'postgresql',
      '--connection-url',
      `postgres://127.0.0.1:${cluster.port}/app`,
      '--username',
      'rot_admin',
      '--password-file',
      pwFile,
    ]);
    const rot = await ok(['engine', 'rotate-root', 'prod/pg2']);
    assert.match(rot.stdout, /^username:\s+rot_admin$/m);
    assert.match(rot.stderr, /the old one no longer works/);
    assert.equal(await canLogin('rot_admin', 'RotStart0123456789'), false);
    await ok(['engine', 'role', 'write', 'prod/pg2/r', '--grant', 'SELECT ON features']);
    const c = await json(['creds', 'issue', 'prod/pg2/r']);
    assert.deepEqual(await query(urlAs(c.username, c.password), 'select v from features'), [{ v: 'x' }]);

    const busy = await cli(['engine', 'remove', 'prod/pg2']);
    assert.equal(busy.code, 1);
    assert.match(busy.stderr, /\(EngineHasLeases\)/);
    await ok(['lease', 'revoke', '--prefix', 'prod/pg2/']);
    const removed = await ok(['engine', 'remove', 'prod/pg2']);
    assert.match(removed.stdout, /Removed the engine prod\/pg2/);
    assert.equal((await cli(['engine', 'show', 'prod/pg2'])).code, 1);
  });

  it('a workload with credential-user issues and renews its own leases; revoke --identity ends them', async () => {
    await ok(['auth', 'enable', 'prod', 'approle']);
    await ok(['auth', 'role', 'write', 'prod/approle/trainer', '--token-ttl', '1h']);
    const roleId = (await ok(['auth', 'role-id', 'prod/approle/trainer'])).stdout.trim();
    const secretId = (await ok(['auth', 'secret-id', 'prod/approle/trainer'])).stdout;
    const token = (
      await ok(['login', 'prod/approle/trainer', '--role-id', roleId, '--secret-id', '-'], {
        input: secretId,
      })
    ).stdout.trim();
    const as = { env: { CUSTODY_TOKEN: token } };
    const denied = await cli(['creds', 'issue', 'prod/pg/ro'], as);
    assert.equal(denied.code, 1);
    assert.match(denied.stderr, /\(PermissionDenied\)/);
    await ok([
      'access',
      'assign',
      'prod/trainer',
      'credential-user',
      'prod/engines/pg/ro',
      '--reason',
      'training job reads features',
    ]);
    // The env prefix comes from the credentials themselves: no engines/manage needed.
    const env = await ok(['creds', 'issue', 'prod/pg/ro', '--format', 'env'], as);
    const user = /^PG_USERNAME=(\S+)$/m.exec(env.stdout)![1];
    const password = /^PG_PASSWORD=(\S+)$/m.exec(env.stdout)![1];
    const leaseId = /^PG_LEASE_ID=(\S+)$/m.exec(env.stdout)![1];
    assert.equal(await canLogin(user, password), true);
    assert.equal((await json(['lease', 'renew', leaseId, '--increment', '5m'], as)).capped, false);
    assert.equal(
      (await json(['lease', 'lookup', leaseId], as)).identity_id,
      (await json(['identity', 'show', 'prod/trainer'])).id,
    );
    const mine = await json([
      'lease',
      'list',
      '--prefix',
      'prod/',
      '--identity',
      'prod/trainer',
      '--state',
      'active',
    ]);
    assert.deepEqual(
      mine.items.map((l: { lease_id: string }) => l.lease_id),
      [leaseId],
    );
    const gone = await ok(['lease', 'revoke', '--identity', 'prod/trainer']);
    assert.equal(gone.stdout, '1 lease revoked (1 revoked).\n');
    assert.equal(await canLogin(user, password), false);
  });

  it('usage errors exit 2', async () => {
    const cases: string[][] = [
      ['engine', 'configure', 'prod/x', '--type', 'oracle', '--connection-url', 'x'],
      ['engine', 'configure', 'prod', '--type', 'postgresql', '--connection-url', 'x'],
      ['engine', 'configure', 'prod/x', '--connection-url', 'x'],
      [
        'engine',
        'configure',
        'prod/x',
        '--type',
        'postgresql',
        '--connection-url',
        'x',
        '--config',
        'novalue',
      ],
      ['engine', 'role', 'write', 'prod/pg/x', '--ttl', 'soon'],
      ['engine', 'role', 'write', 'prod/pg/x', '--grant', 'SELECT ON t', '--experiment', '1=READ'],
      ['engine', 'role', 'write', 'prod/ml/x', '--experiment', '1=WRITE'],
      [
        'engine',
        'role',
        'write',
        'prod/pg/x',
        '--creation-statements',
        path.join(tmpdir(), 'no-such-file.sql'),
      ],
      ['engine', 'static-role', 'write', 'prod/pg/x', '--username', 'u'],
      ['creds', 'issue', 'prod/pg'],
      ['creds', 'issue', 'prod/pg/ro', '--format', 'yaml'],
      ['lease', 'revoke'],
      ['lease', 'revoke', 'prod/pg/ro/x', '--prefix', 'prod/'],
      ['lease', 'list'],
      ['lease', 'list', '--prefix', 'prod/', '--state', 'dead'],
      ['lease', 'list', '--prefix', 'prod/', '--limit', '0'],
      ['lease', 'renew', 'prod/pg/ro/x', '--increment', 'later'],
    ];
    const results = await Promise.all(cases.map((args) => cli(args)));
    results.forEach((r, i) => {
      const what = `custody ${cases[i].join(' ')}`;
      // A missing statements file is an I/O failure (1), not a usage error.
      assert.equal(
        r.code,
        cases[i].includes('--creation-statements') ? 1 : 2,
        `${what} → ${r.code}\n${r.stderr}`,
      );
      assert.equal(r.stdout, '', `${what} printed to stdout`);
    });
  });

  it('statement files split on ; outside quotes, else one per line', () => {
    assert.deepEqual(splitStatements('A {{name}}\nB {{name}}\n\n-- comment\n'), ['A {{name}}', 'B {{name}}']);
    assert.deepEqual(splitStatements("CREATE x\n  WITH 'a;b';\nGRANT y;"), [
      "CREATE x\n  WITH 'a;b'",
      'GRANT y',
    ]);
    assert.deepEqual(splitStatements('DO $$ BEGIN x; y; END $$;\nSELECT 1'), [
      'DO $$ BEGIN x; y; END $$',
      'SELECT 1',
    ]);
  });

  it('no credential reaches the server output', async () => {
    const out = broker.stdout() + broker.stderr();
    assert.ok(!out.includes(cluster.password), 'the admin password in server output');
  });
});
