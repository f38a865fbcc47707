import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { type BrokerProcess, startBrokerProcess } from '../support/broker-process.js';
import { type PostgresCluster, startPostgres } from '../support/postgres.js';
import { apiOf, cliOf, jsonLine, spawnCli, waitUntil, workloadToken } from './helpers.js';

/**
 * `custody run` past a lease's max TTL (rotation with --files) and `--env-template`, against a real
 * PostgreSQL.
 */
describe('custody run: lease rotation past the max TTL, --env-template', () => {
  let cluster: PostgresCluster;
  let broker: BrokerProcess;
  let api: Awaited<ReturnType<typeof apiOf>>;
  let cli: ReturnType<typeof cliOf>;
  let adminUrl: string;
  let jobToken: string;
  let work: string;

  const leaseState = async (id: string) =>
    (await api.ok('POST', '/v1/leases/lookup', { lease_id: id })).state;

  before(async () => {
    cluster = await startPostgres();
    adminUrl = await cluster.createDatabase('warehouse');
    const c = new pg.Client({ connectionString: adminUrl });
    await c.connect();
    await c.query("create table features (id int primary key, v text); insert into features values (1, 'x')");
    await c.end();
    broker = await startBrokerProcess({ env: { CUSTODY_REAPER_INTERVAL_MS: '200' } });
    api = await apiOf(broker);
    cli = cliOf(broker);
    work = await mkdtemp(path.join(tmpdir(), 'custody-run-rotate-'));
    await api.ok('POST', '/v1/envs', { name: 'prod' });
    await api.ok('PUT', '/v1/engines/prod/warehouse', {
      type: 'postgresql',
      config: {
        connection_url: `postgres://127.0.0.1:${cluster.port}/warehouse`,
        username: cluster.superuser,
        password: cluster.password,
      },
    });
    const grants = ['SELECT ON ALL TABLES IN SCHEMA public'];
    await api.ok('PUT', '/v1/engines/prod/warehouse/roles/reader', {
      ttl: '1h',
      max_ttl: '2h',
      config: { grants },
    });
    await api.ok('PUT', '/v1/engines/prod/warehouse/roles/rot', { ttl: 2, max_ttl: 4, config: { grants } });
    await api.ok('PUT', '/v1/secrets/prod/db/credentials', {
      value: JSON.stringify({ host: 'db.internal', port: 5432 }),
    });
    await api.ok('PUT', '/v1/secrets/prod/api/key', { value: 'api-key-0123456789' });
    jobToken = await workloadToken(broker, 'prod', 'etl', [
      ['credential-user', 'prod/engines/warehouse'],
      ['secrets-user', 'prod/secrets/db'],
      ['secrets-user', 'prod/secrets/api'],
    ]);
  });

  after(async () => {
    await api?.close();
    await broker?.cleanup();
    await cluster?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('--files --on-rotate SIGHUP: a fresh lease before the max TTL, files rewritten, old lease revoked after the grace', async () => {
    // Runs ~7 s on a role with ttl 2 s / max ttl 4 s: without rotation its login would stop at 4 s.
    const script = `
      const fs = require('fs');
      const pg = require('pg');
      const read = (v) => fs.readFileSync(process.env[v], 'utf8');
      const login = async () => {
        const url = new URL(read('PG_CONNECTION_URL'));
        url.username = read('PG_USERNAME');
        url.password = read('PG_PASSWORD');
        const c = new pg.Client({ connectionString: url.toString() });
        try { await c.connect(); await c.query('select v from features'); return 'ok'; }
        catch (e) { return e.message; }
        finally { await c.end().catch(() => {}); }
      };
      let n = 0;
      process.on('SIGHUP', async () => {
        n += 1;
        const mode = (fs.statSync(process.env.PG_PASSWORD).mode & 0o777).toString(8);
        const login_ = await login();
        console.log(JSON.stringify({ rotation: n, user: read('PG_USERNAME'), lease: read('PG_LEASE_ID'), login: login_, mode }));
        console.log('pw=' + read('PG_PASSWORD'));
      });
      (async () => {
        console.log(JSON.stringify({ first: read('PG_LEASE_ID'), user: read('PG_USERNAME'), login: await login() }));
        setTimeout(async () => {
          console.log(JSON.stringify({ last: await login(), rotations: n }));
          process.exit(0);
        }, 7000);
      })();`;
    const run = spawnCli(
      [
        'run',
        '--expect',
        '1h',
        '--files',
        '--on-rotate',
        'SIGHUP',
        '--rotate-grace',
        '2s',
        '--creds',
        'PG=prod/warehouse/rot',
        '--',
        process.execPath,
        '-e',
        script,
      ],
      broker.env(jobToken),
    );
    await run.waitFor(/"first":.*\}\n/);
    const first = jsonLine(run.stdout(), 'first');
    assert.equal(first.login, 'ok');
    await run.waitFor(/"rotation":1,.*\}\n/, 10_000);
    const rotated = jsonLine(run.stdout(), 'rotation');
    assert.equal(rotated.login, 'ok', 'the new user logs in');
    assert.notEqual(rotated.user, first.user);
    assert.notEqual(rotated.lease, first.first);
    assert.equal(rotated.mode, '600');
    // The old lease is revoked after the 2 s grace, while the command still runs.
    await waitUntil(
      'the old lease to be revoked',
      async () => (await leaseState(first.first)) === 'revoked',
      4000,
    );
    const res = await run.exited;
    assert.equal(res.code, 0, res.stderr);
    const last = jsonLine(res.stdout, 'last');
    assert.equal(last.last, 'ok', 'credentials still work at 7 s, past the first max TTL');
    assert.ok(last.rotations >= 1);
    assert.match(res.stdout, /pw=<redacted:PG_PASSWORD>/, 'the new password is masked');
    assert.match(res.stderr, /rotated before its max TTL/);
    assert.doesNotMatch(res.stderr, /LeaseMaxTtl/);
    // --expect counts on the rotation: a lease that is replaced is not what ends the job.
    assert.match(res.stderr, /is replaced by a fresh lease before its max TTL \(--files\)/);
    assert.doesNotMatch(res.stderr, /ExpectExceeded|CredentialExpiresSoon|CredentialExpired/);
    assert.equal(await leaseState(rotated.lease), 'revoked');
  });

  it('without --files: warns that the child keeps the old credentials (also before and at the end), and does not rotate', async () => {
    const r = await cli(
      [
        'run',
        '--expect',
        '1h',
        '--no-mask',
        '--creds',
        'PG=prod/warehouse/rot',
        '--',
        process.execPath,
        '-e',
        'setTimeout(() => {}, 4600)',
      ],
      { env: { CUSTODY_TOKEN: jobToken }, timeoutMs: 20_000 },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /lease \S+ \(PG_\*\) ends first/);
    assert.match(r.stderr, /\(ExpectExceeded\)/);
    assert.match(r.stderr, /lease \S+ \(PG_\*\) stops working at .*\(CredentialExpiresSoon\)/);
    assert.match(r.stderr, /lease \S+ \(PG_\*\) has stopped working.*\(CredentialExpired\)/);
    assert.equal(r.stderr.match(/\(LeaseMaxTtl\)/g)?.length, 1, r.stderr);
    assert.match(r.stderr, /without --files the child's environment cannot change/);
    assert.doesNotMatch(r.stderr, /rotated/);
  });

  it('--env-template: secrets and creds fields (one lease per role), comments and blank lines', async () => {
    const tpl = path.join(work, 'job.env');
    await writeFile(
      tpl,
      [
        '# the job',
        'API_KEY=prod/api/key',
        '',
        'DB_HOST=prod/db/credentials#host',
        '  PGUSER = creds:prod/warehouse/reader#username',
        'PGPASSWORD=creds:prod/warehouse/reader#password',
        'PGLEASE=creds:prod/warehouse/reader#lease_id',
        'PGURL=creds:prod/warehouse/reader#connection_url',
        '',
      ].join('\n'),
    );
    const before = (await api.ok('GET', '/v1/leases?prefix=prod/warehouse/reader/')).items.length;
    const script = `
      const pg = require('pg');
      (async () => {
        const url = new URL(process.env.PGURL);
        url.username = process.env.PGUSER;
        url.password = process.env.PGPASSWORD;
        const c = new pg.Client({ connectionString: url.toString() });
        await c.connect();
        const rows = (await c.query('select v from features')).rows;
        await c.end();
        console.log(JSON.stringify({ report: true, rows, key: process.env.API_KEY, host: process.env.DB_HOST,
          lease: process.env.PGLEASE, pg: Object.keys(process.env).filter((k) => k.startsWith('PG_')) }));
      })().catch((e) => { console.error('child failed: ' + e.message); process.exit(99); });`;
    const r = await cli(['run', '--no-mask', '--env-template', tpl, '--', process.execPath, '-e', script], {
      env: { CUSTODY_TOKEN: jobToken },
    });
    assert.equal(r.code, 0, r.stderr);
    const got = jsonLine(r.stdout, 'report');
    assert.deepEqual(got.rows, [{ v: 'x' }]);
    assert.equal(got.key, 'api-key-0123456789');
    assert.equal(got.host, 'db.internal');
    assert.match(got.lease, /^prod\/warehouse\/reader\//);
    assert.deepEqual(got.pg, [], 'only the template variables');
    const items = (await api.ok('GET', '/v1/leases?prefix=prod/warehouse/reader/')).items;
    assert.equal(items.length, before + 1, 'one lease for the four creds: lines');
    assert.equal(await leaseState(got.lease), 'revoked');
  });

  it('--env-template errors name the line (exit 2)', async () => {
    const cases: [string, RegExp][] = [
      ['# ok\nAPI_KEY=prod/api/key\nnot a line\n', /job-bad\.env:3: /],
      ['\n\nPGUSER=creds:prod/warehouse/reader\n', /job-bad\.env:3: .*#username/],
      ['A=prod/api/key\nA=prod/api/key\n', /job-bad\.env:2: A is already set on line 1/],
      ['1A=prod/api/key\n', /job-bad\.env:1: /],
      ['X=creds:prod/warehouse#username\n', /job-bad\.env:1: .*ENV\/ENGINE\/ROLE/],
    ];
    const tpl = path.join(work, 'job-bad.env');
    for (const [text, re] of cases) {
      await writeFile(tpl, text);
      const r = await cli(['run', '--env-template', tpl, '--', 'true'], { env: { CUSTODY_TOKEN: jobToken } });
      assert.equal(r.code, 2, `${text}: ${r.stderr}`);
      assert.match(r.stderr, re);
    }
  });
});
