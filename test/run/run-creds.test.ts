import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { type BrokerProcess, startBrokerProcess } from '../support/broker-process.js';
import { type PostgresCluster, startPostgres } from '../support/postgres.js';
import { alive, apiOf, cliOf, jsonLine, spawnCli, waitUntil, workloadToken } from './helpers.js';

/**
 * `custody run --creds` against a real PostgreSQL: the child logs in with the leased user, the lease
 * is renewed while it runs, and revoked on every way out (normal exit, crash, SIGTERM to custody run).
 */
describe('custody run --creds: leases on PostgreSQL', () => {
  let cluster: PostgresCluster;
  let broker: BrokerProcess;
  let api: Awaited<ReturnType<typeof apiOf>>;
  let cli: ReturnType<typeof cliOf>;
  let adminUrl: string;
  let jobToken: string;
  let work: string;

  const urlAs = (user: string, password: string) => {
    const u = new URL(adminUrl);
    u.username = user;
    u.password = password;
    return u.toString();
  };
  async function canLogin(user: string, password: string): Promise<boolean> {
    const c = new pg.Client({ connectionString: urlAs(user, password), connectionTimeoutMillis: 5000 });
    try {
      await c.connect();
      await c.query('select 1');
      return true;
    } catch {
      return false;
    } finally {
      await c.end().catch(() => {});
    }
  }
  const leaseState = async (id: string) =>
    (await api.ok('POST', '/v1/leases/lookup', { lease_id: id })).state;

  /**
   * A child script: connects with PG_USERNAME/PG_PASSWORD, reads the table, prints one JSON line
   * with what the test needs to check afterwards (the test's own channel), then runs `then`.
   */
  const childScript = (then: string) => `
    const pg = require('pg');
    (async () => {
      const url = new URL(process.env.PG_CONNECTION_URL);
      url.username = process.env.PG_USERNAME;
      url.password = process.env.PG_PASSWORD;
      const c = new pg.Client({ connectionString: url.toString() });
      await c.connect();
      const rows = (await c.query('select v from features')).rows;
      await c.end();
      console.log(JSON.stringify({ report: true, user: process.env.PG_USERNAME, password: process.env.PG_PASSWORD,
        lease: process.env.PG_LEASE_ID, rows, argv: process.argv }));
      ${then}
    })().catch((e) => { console.error('child failed: ' + e.message); process.exit(99); });`;

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
    work = await mkdtemp(path.join(tmpdir(), 'custody-run-creds-'));
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
    await api.ok('PUT', '/v1/engines/prod/warehouse/roles/short', {
      ttl: '3s',
      max_ttl: '8s',
      config: { grants },
    });
    jobToken = await workloadToken(broker, 'prod', 'etl', [['credential-user', 'prod/engines/warehouse']]);
  });

  after(async () => {
    await api?.close();
    await broker?.cleanup();
    await cluster?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('the child logs in with PG_USERNAME/PG_PASSWORD; after it exits the login is refused and the lease revoked', async () => {
    const r = await cli(
      [
        'run',
        '--no-mask',
        '--creds',
        'PG=prod/warehouse/reader',
        '--',
        process.execPath,
        '-e',
        childScript(''),
      ],
      { env: { CUSTODY_TOKEN: jobToken } },
    );
    assert.equal(r.code, 0, r.stderr);
    const got = jsonLine(r.stdout, 'report');
    assert.deepEqual(got.rows, [{ v: 'x' }]);
    assert.match(got.lease, /^prod\/warehouse\/reader\//);
    assert.ok(!JSON.stringify(got.argv).includes(got.password), 'the password is not in argv');
    assert.ok(!r.stderr.includes(got.password));
    assert.equal(await leaseState(got.lease), 'revoked');
    assert.equal(await canLogin(got.user, got.password), false, 'refused after the child exited');
  });

  it('keeps the exit code, and revokes, when the child crashes', async () => {
    const r = await cli(
      [
        'run',
        '--no-mask',
        '--creds',
        'PG=prod/warehouse/reader',
        '--',
        process.execPath,
        '-e',
        childScript("setImmediate(() => { throw new Error('boom'); });"),
      ],
      { env: { CUSTODY_TOKEN: jobToken } },
    );
    assert.equal(r.code, 1, 'uncaught exception: node exits 1');
    assert.match(r.stderr, /boom/);
    const got = jsonLine(r.stdout, 'report');
    assert.equal(await leaseState(got.lease), 'revoked');
    assert.equal(await canLogin(got.user, got.password), false);

    const segv = await cli(
      [
        'run',
        '--no-mask',
        '--creds',
        'PG=prod/warehouse/reader',
        '--',
        process.execPath,
        '-e',
        childScript("process.kill(process.pid, 'SIGSEGV');"),
      ],
      { env: { CUSTODY_TOKEN: jobToken } },
    );
    assert.equal(segv.code, 128 + 11);
    const got2 = jsonLine(segv.stdout, 'report');
    assert.equal(await leaseState(got2.lease), 'revoked');
    assert.equal(await canLogin(got2.user, got2.password), false);
  });

  it('SIGTERM to custody run goes to the process group (the grandchild too), then the lease is revoked', async () => {
    const marker = path.join(work, 'grandchild-got-sigterm');
    const grandchild = `
      process.on('SIGTERM', () => { require('fs').writeFileSync(${JSON.stringify(marker)}, 'TERM'); process.exit(0); });
      console.log(JSON.stringify({ grandchild: process.pid }));
      setInterval(() => {}, 1000);`;
    const script = childScript(`
      const { spawn } = require('child_process');
      const g = spawn(process.execPath, ['-e', ${JSON.stringify(grandchild)}], { stdio: ['ignore', 'inherit', 'inherit'] });
      console.log(JSON.stringify({ child: process.pid }));
      setInterval(() => {}, 1000);`);
    const run = spawnCli(
      ['run', '--no-mask', '--creds', 'PG=prod/warehouse/reader', '--', process.execPath, '-e', script],
      {
        ...broker.env(jobToken),
      },
    );
    await run.waitFor(/"grandchild":\d+/);
    const got = jsonLine(run.stdout(), 'report');
    const childPid = jsonLine(run.stdout(), 'child').child;
    const grandPid = jsonLine(run.stdout(), 'grandchild').grandchild;
    assert.equal(await canLogin(got.user, got.password), true, 'works while the child runs');
    assert.equal(await leaseState(got.lease), 'active');

    run.proc.kill('SIGTERM');
    const res = await run.exited;
    assert.equal(res.code, 128 + 15, `the child died of SIGTERM: ${res.stderr}`);
    assert.equal(await readFile(marker, 'utf8'), 'TERM', 'the grandchild got SIGTERM too');
    assert.equal(alive(childPid), false);
    await waitUntil('the grandchild to exit', () => !alive(grandPid));
    assert.equal(await leaseState(got.lease), 'revoked');
    assert.equal(await canLogin(got.user, got.password), false);
  });

  it('a child that ignores the signal is killed after --kill-grace; still revoked, exit 137', async () => {
    const script = childScript(`
      process.on('SIGINT', () => console.log(JSON.stringify({ ignored: 'SIGINT' })));
      console.log(JSON.stringify({ ready: true }));
      setInterval(() => {}, 1000);`);
    const run = spawnCli(
      [
        'run',
        '--no-mask',
        '--kill-grace',
        '1s',
        '--creds',
        'PG=prod/warehouse/reader',
        '--',
        process.execPath,
        '-e',
        script,
      ],
      broker.env(jobToken),
    );
    await run.waitFor(/"ready":true/);
    const got = jsonLine(run.stdout(), 'report');
    const started = Date.now();
    run.proc.kill('SIGINT');
    const res = await run.exited;
    assert.equal(res.code, 137, res.stderr);
    assert.match(res.stdout, /"ignored":"SIGINT"/, 'SIGINT went to the child as SIGINT');
    assert.ok(Date.now() - started >= 900, 'it waited for the grace period');
    assert.equal(await leaseState(got.lease), 'revoked');
    assert.equal(await canLogin(got.user, got.password), false);
  });

  it('renews the lease at about 2/3 of its TTL while the child runs, and warns when the max TTL is near', async () => {
    // ttl 3s, max ttl 8s: without renewal the reaper (200 ms) revokes the user after 3 s.
    const script = childScript(`
      setTimeout(async () => {
        const url = new URL(process.env.PG_CONNECTION_URL);
        url.username = process.env.PG_USERNAME;
        url.password = process.env.PG_PASSWORD;
        const c = new pg.Client({ connectionString: url.toString() });
        try { await c.connect(); await c.query('select 1'); console.log(JSON.stringify({ late: 'ok' })); }
        catch (e) { console.log(JSON.stringify({ late: e.message })); }
        finally { await c.end().catch(() => {}); }
      }, 5500);`);
    const r = await cli(
      ['run', '--no-mask', '--creds', 'PG=prod/warehouse/short', '--', process.execPath, '-e', script],
      {
        env: { CUSTODY_TOKEN: jobToken },
        timeoutMs: 30_000,
      },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.equal(jsonLine(r.stdout, 'late').late, 'ok', 'still valid 5.5 s into a 3 s lease');
    assert.match(
      r.stderr,
      /custody run: warning: lease prod\/warehouse\/short\/\S+ \(PG_\*\) reaches its role's max TTL at \S+Z.*\(LeaseMaxTtl\)/,
    );
    const got = jsonLine(r.stdout, 'report');
    const lease = await api.ok('POST', '/v1/leases/lookup', { lease_id: got.lease });
    assert.equal(lease.state, 'revoked');
    assert.ok(lease.last_renewed_at, 'it was renewed');
    assert.equal(await canLogin(got.user, got.password), false);
  });

  it('a failure after a lease was issued revokes it before exiting 1, and never starts the child', async () => {
    const marker = path.join(work, 'never-started');
    const before = (await api.ok('GET', '/v1/leases?prefix=prod/warehouse/reader/')).items.length;
    const r = await cli(
      [
        'run',
        '--no-mask',
        '--creds',
        'PG=prod/warehouse/reader',
        '--creds',
        'PG2=prod/warehouse/missing',
        '--',
        process.execPath,
        '-e',
        `require('fs').writeFileSync(${JSON.stringify(marker)}, 'x')`,
      ],
      { env: { CUSTODY_TOKEN: jobToken } },
    );
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^error: .+\(\w+\)\nhint: /);
    assert.equal(existsSync(marker), false);
    const items = (await api.ok('GET', '/v1/leases?prefix=prod/warehouse/reader/')).items;
    assert.equal(items.length, before + 1, 'the first lease was issued');
    assert.equal(items[0].state, 'revoked', '…and revoked again');
  });
});
