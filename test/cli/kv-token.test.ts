import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type BrokerProcess, freePort, runCli, startBrokerProcess } from '../support/broker-process.js';

/** End to end: a real `custody server` child process driven by `custody …` commands. */
describe('custody CLI against a running broker', () => {
  let broker: BrokerProcess;
  let work: string;
  const canary = `canary-${randomBytes(12).toString('hex')}`;
  const cli = (
    args: string[],
    opts: { env?: Record<string, string | undefined>; input?: string; cwd?: string } = {},
  ) => runCli(args, { ...opts, env: { ...broker.env(), ...opts.env } });
  const json = async (
    args: string[],
    opts: { env?: Record<string, string | undefined>; input?: string } = {},
  ) => {
    const r = await cli([...args, '--format', 'json'], opts);
    assert.equal(r.code, 0, `custody ${args.join(' ')} failed: ${r.stderr}`);
    return JSON.parse(r.stdout);
  };

  before(async () => {
    // Most verbose settings, so the canary check below means something.
    broker = await startBrokerProcess({ logLevel: 'debug', args: ['--audit-stdout'] });
    work = await mkdtemp(path.join(tmpdir(), 'custody-cli-work-'));
    const r = await cli(['env', 'create', 'dev']);
    assert.equal(r.code, 0, r.stderr);
  });

  after(async () => {
    await broker?.cleanup();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('creates and shows environments', async () => {
    const env = await json(['env', 'create', 'staging', '--retention-days', '30']);
    assert.equal(env.name, 'staging');
    assert.equal(env.retention_days, 30);
    assert.equal(env.purge_protection, false);
    const list = await json(['env', 'list']);
    assert.deepEqual(list.items.map((e: { name: string }) => e.name).sort(), ['dev', 'staging']);
    const table = await cli(['env', 'list']);
    assert.match(table.stdout, /^NAME\s+RETENTION DAYS\s+PURGE PROTECTION\s+CREATED\n/);
    const prot = await json(['env', 'protect', 'staging']);
    assert.equal(prot.purge_protection, true);
    const show = await cli(['env', 'show', 'staging']);
    assert.match(show.stdout, /^purge_protection:\s+true$/m);
  });

  it('puts key=value pairs as a JSON object and gets the value or one field', async () => {
    const put = await cli(['kv', 'put', 'dev/db/creds', 'user=app', 'password=pa=ss']);
    assert.equal(put.code, 0, put.stderr);
    assert.match(put.stdout, /^seq:\s+1$/m);
    assert.match(put.stdout, /^content_type:\s+application\/json$/m);
    const get = await cli(['kv', 'get', 'dev/db/creds']);
    assert.equal(get.code, 0, get.stderr);
    assert.deepEqual(JSON.parse(get.stdout), { user: 'app', password: 'pa=ss' });
    assert.ok(get.stdout.endsWith('}\n'));
    const field = await cli(['kv', 'get', 'dev/db/creds', '--field', 'password']);
    assert.equal(field.stdout, 'pa=ss\n');
    const missing = await cli(['kv', 'get', 'dev/db/creds', '--field', 'nope']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /\(FieldNotFound\)/);
    assert.doesNotMatch(missing.stderr, /pa=ss/);
  });

  it('reads a raw value from stdin with `-` and fields from files with key=@file', async () => {
    const put = await cli(['kv', 'put', 'dev/api/key', '-'], { input: `${canary}\n` });
    assert.equal(put.code, 0, put.stderr);
    const get = await cli(['kv', 'get', 'dev/api/key']);
    assert.equal(get.stdout, `${canary}\n`, 'one trailing newline from stdin is dropped');
    const meta = await json(['kv', 'get', 'dev/api/key']);
    assert.equal(meta.value, canary);
    assert.equal(meta.content_type, null);

    const file = path.join(work, 'cert.pem');
    await writeFile(file, '-----BEGIN X-----\nabc\n-----END X-----\n');
    const put2 = await cli(['kv', 'put', 'dev/tls/bundle', `cert=@${file}`, 'name=web']);
    assert.equal(put2.code, 0, put2.stderr);
    const cert = await cli(['kv', 'get', 'dev/tls/bundle', '--field', 'cert']);
    assert.equal(cert.stdout, '-----BEGIN X-----\nabc\n-----END X-----\n\n');

    const put3 = await cli([
      'kv',
      'put',
      'dev/tls/raw',
      '--value-file',
      file,
      '--content-type',
      'application/x-pem-file',
    ]);
    assert.equal(put3.code, 0, put3.stderr);
    const raw = await json(['kv', 'get', 'dev/tls/raw']);
    assert.equal(raw.value, '-----BEGIN X-----\nabc\n-----END X-----\n');
    assert.equal(raw.content_type, 'application/x-pem-file');

    const noFile = await cli(['kv', 'put', 'dev/tls/none', `cert=@${path.join(work, 'missing')}`]);
    assert.equal(noFile.code, 1);
    assert.match(noFile.stderr, /\(FileUnreadable\)/);
  });

  it('keeps versions: get latest, --version 1, versions, tags and times', async () => {
    await json(['kv', 'put', 'dev/app/token', 'v=1']);
    const v2 = await json([
      'kv',
      'put',
      'dev/app/token',
      'v=2',
      '--tag',
      'owner=ml',
      '--expires',
      '30d',
      '--cas',
      '1',
    ]);
    assert.equal(v2.seq, 2);
    assert.deepEqual(v2.tags, { owner: 'ml' });
    assert.ok(Date.parse(v2.expires) > Date.now() + 29 * 86_400_000);
    assert.equal((await cli(['kv', 'get', 'dev/app/token', '--field', 'v'])).stdout, '2\n');
    assert.equal((await cli(['kv', 'get', 'dev/app/token', '--version', '1', '--field', 'v'])).stdout, '1\n');
    const byId = await json(['kv', 'get', 'dev/app/token', '--version', v2.version]);
    assert.equal(byId.seq, 2);
    const versions = await json(['kv', 'versions', 'dev/app/token']);
    assert.deepEqual(versions.items.map((v: { seq: number }) => v.seq).sort(), [1, 2]);
    const table = await cli(['kv', 'versions', 'dev/app/token']);
    assert.match(table.stdout, /^SEQ\s+VERSION\s+ENABLED/);
    const cas = await cli(['kv', 'put', 'dev/app/token', 'v=3', '--cas', '1']);
    assert.equal(cas.code, 1);
    assert.match(cas.stderr, /\(CasMismatch\)/);
  });

  it('lists secrets with a prefix (metadata only)', async () => {
    const all = await json(['kv', 'list', 'dev']);
    const names = all.items.map((s: { name: string }) => s.name);
    assert.ok(names.includes('db/creds'));
    assert.ok(all.items.every((s: Record<string, unknown>) => !('value' in s)));
    assert.equal(all.next_cursor, null);
    const tls = await json(['kv', 'list', 'dev', '--prefix', 'tls/']);
    assert.deepEqual(tls.items.map((s: { name: string }) => s.name).sort(), ['tls/bundle', 'tls/raw']);
    const table = await cli(['kv', 'list', 'dev']);
    assert.match(table.stdout, /^NAME\s+LATEST\s+VERSIONS/);
    assert.doesNotMatch(table.stdout, new RegExp(canary));
  });

  it('update --enabled false makes get fail with SecretDisabled (exit 1)', async () => {
    await json(['kv', 'put', 'dev/flip', 'a=1']);
    await json(['kv', 'put', 'dev/flip', 'a=2']);
    const upd = await json(['kv', 'update', 'dev/flip', '--enabled', 'false']);
    assert.equal(upd.enabled, false);
    assert.equal(upd.seq, 2);
    const get = await cli(['kv', 'get', 'dev/flip']);
    assert.equal(get.code, 1);
    assert.equal(get.stdout, '');
    assert.match(get.stderr, /^error: .+ \(SecretDisabled\)\nhint: /);
    const getJson = await cli(['kv', 'get', 'dev/flip', '--format', 'json']);
    assert.equal(getJson.code, 1);
    assert.equal(JSON.parse(getJson.stderr).error.code, 'SecretDisabled');
    assert.equal((await cli(['kv', 'get', 'dev/flip', '--version', '1', '--field', 'a'])).stdout, '1\n');
    const back = await json([
      'kv',
      'update',
      'dev/flip',
      '--enabled',
      'true',
      '--not-before',
      'none',
      '--tag',
      'x=y',
    ]);
    assert.equal(back.enabled, true);
    assert.deepEqual(back.tags, { x: 'y' });
    const bad = await cli(['kv', 'update', 'dev/flip', '--enabled', 'maybe']);
    assert.equal(bad.code, 2);
  });

  it('deletes, lists deleted, recovers and purges', async () => {
    await json(['kv', 'put', 'dev/tmp/x', 'k=v']);
    const del = await json(['kv', 'delete', 'dev/tmp/x']);
    assert.equal(del.name, 'tmp/x');
    assert.ok(del.scheduled_purge_at);
    const gone = await cli(['kv', 'get', 'dev/tmp/x']);
    assert.equal(gone.code, 1);
    const deleted = await json(['kv', 'list-deleted', 'dev']);
    assert.deepEqual(
      deleted.items.map((s: { name: string }) => s.name),
      ['tmp/x'],
    );
    const rec = await json(['kv', 'recover', 'dev/tmp/x']);
    assert.equal(rec.versions, 1);
    assert.equal((await cli(['kv', 'get', 'dev/tmp/x', '--field', 'k'])).stdout, 'v\n');
    assert.equal((await cli(['kv', 'delete', 'dev/tmp/x'])).code, 0);
    const purge = await cli(['kv', 'purge', 'dev/tmp/x']);
    assert.equal(purge.code, 0, purge.stderr);
    assert.match(purge.stdout, /Purged dev\/tmp\/x/);
    assert.deepEqual((await json(['kv', 'list-deleted', 'dev'])).items, []);
    const again = await cli(['kv', 'recover', 'dev/tmp/x']);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /\(DeletedSecretNotFound\)/);
  });

  it('creates, looks up, renews and revokes tokens; a revoked token fails', async () => {
    const created = await json([
      'token',
      'create',
      '--policy',
      'root',
      '--ttl',
      '1h',
      '--display-name',
      'ci',
      '--meta',
      'job=42',
    ]);
    assert.match(created.token, /^cst_/);
    assert.match(created.accessor, /^acc_/);
    assert.equal(created.display_name, 'ci');
    assert.deepEqual(created.meta, { job: '42' });
    assert.ok(created.ttl > 3500 && created.ttl <= 3600);

    const byAccessor = await json(['token', 'lookup', created.accessor]);
    assert.equal(byAccessor.accessor, created.accessor);
    assert.ok(!('token' in byAccessor));
    const self = await json(['token', 'lookup'], { env: { CUSTODY_TOKEN: created.token } });
    assert.equal(self.accessor, created.accessor);
    const renewed = await json(['token', 'renew', created.accessor, '--increment', '2h']);
    assert.ok(renewed.ttl > 7000);
    const renewedSelf = await json(['token', 'renew', '--increment', '3h'], {
      env: { CUSTODY_TOKEN: created.token },
    });
    assert.ok(renewedSelf.ttl > 10_000);

    assert.equal(
      (await cli(['kv', 'get', 'dev/db/creds'], { env: { CUSTODY_TOKEN: created.token } })).code,
      0,
    );
    const revoked = await cli(['token', 'revoke', created.accessor]);
    assert.equal(revoked.code, 0, revoked.stderr);
    assert.match(revoked.stdout, /Revoked 1 token/);
    const denied = await cli(['kv', 'get', 'dev/db/creds'], { env: { CUSTODY_TOKEN: created.token } });
    assert.equal(denied.code, 1);
    assert.match(denied.stderr, /\(InvalidToken\)/);
    assert.ok(!denied.stderr.includes(created.token), 'the token never appears in an error');

    const selfRevoke = await json(['token', 'create', '--ttl', '10m', '--no-renewable']);
    assert.equal(selfRevoke.renewable, false);
    const r = await json(['token', 'revoke', '--self'], { env: { CUSTODY_TOKEN: selfRevoke.token } });
    assert.equal(r.revoked, 1);
    assert.equal((await cli(['token', 'revoke'])).code, 2, 'revoke needs an accessor or --self');
    assert.equal((await cli(['token', 'create', '--ttl', 'soon'])).code, 2);
  });

  it('operator rotate keeps old values readable; status reports the key term', async () => {
    const before = await json(['operator', 'status']);
    assert.equal(before.sealed, false);
    assert.equal(before.initialized, true);
    assert.equal(before.mode, 'file');
    const rot = await json(['operator', 'rotate']);
    assert.equal(rot.key_term, before.key_term + 1);
    assert.equal((await cli(['kv', 'get', 'dev/db/creds', '--field', 'user'])).stdout, 'app\n');
    assert.equal((await cli(['kv', 'get', 'dev/app/token', '--version', '1', '--field', 'v'])).stdout, '1\n');
    await json(['kv', 'put', 'dev/after/rotate', 'k=new']);
    assert.equal((await cli(['kv', 'get', 'dev/after/rotate', '--field', 'k'])).stdout, 'new\n');
    const after = await json(['operator', 'status']);
    assert.equal(after.key_term, rot.key_term);
  });

  it('without a token: exit 1 and a hint naming CUSTODY_TOKEN (never reads .custody/root-token)', async () => {
    const r = await cli(['env', 'list'], { env: { CUSTODY_TOKEN: undefined } });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /\(MissingToken\)/);
    assert.match(r.stderr, /^hint: .*CUSTODY_TOKEN/m);

    // A local broker dir in the working directory: the hint shows how to opt in, nothing is read.
    const cwd = await mkdtemp(path.join(tmpdir(), 'custody-cli-cwd-'));
    try {
      await mkdir(path.join(cwd, '.custody'));
      await writeFile(path.join(cwd, '.custody', 'root-token'), `${broker.rootToken}\n`);
      const local = await runCli(['env', 'list'], { cwd, env: {} });
      assert.equal(local.code, 1);
      assert.match(local.stderr, /hint: export CUSTODY_TOKEN=\$\(cat \.custody\/root-token\)/);
    } finally {
      await rm(cwd, { recursive: true, force: true });
    }
  });

  it('network errors get specific hints', async () => {
    const untrusted = await cli(['env', 'list'], { env: { CUSTODY_CACERT: undefined } });
    assert.equal(untrusted.code, 1);
    assert.match(untrusted.stderr, /\(TlsUntrusted\)/);
    assert.match(untrusted.stderr, /hint: .*CUSTODY_CACERT/);
    const port = await freePort();
    const refused = await cli(['env', 'list', '--addr', `https://127.0.0.1:${port}`]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /\(ConnectionRefused\)/);
    assert.match(refused.stderr, /hint: Is the broker running\?/);
    const noCa = await cli(['env', 'list'], { env: { CUSTODY_CACERT: path.join(work, 'nope.pem') } });
    assert.equal(noCa.code, 1);
    assert.match(noCa.stderr, /\(CaCertUnreadable\)/);
  });

  it('audit verify: ok on the live file, the tampered line on a copy', async () => {
    const file = path.join(broker.dataDir, 'audit.log');
    const ok = await cli(['audit', 'verify', file]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /^ok: \d+ entries verified\n$/);
    const okJson = await json(['audit', 'verify', file]);
    assert.equal(okJson.ok, true);
    assert.ok(okJson.count > 10);

    const lines = (await readFile(file, 'utf8')).split('\n');
    const entry = JSON.parse(lines[2]);
    entry.time = '2000-01-01T00:00:00.000Z';
    lines[2] = JSON.stringify(entry);
    const copy = path.join(work, 'tampered.log');
    await writeFile(copy, lines.join('\n'));
    const bad = await cli(['audit', 'verify', copy]);
    assert.equal(bad.code, 1);
    assert.match(bad.stdout, /^line 3: edited — /);
    const badJson = await cli(['audit', 'verify', copy, '--format', 'json']);
    assert.equal(badJson.code, 1);
    assert.deepEqual(
      { ok: JSON.parse(badJson.stdout).ok, line: JSON.parse(badJson.stdout).line },
      { ok: false, line: 3 },
    );
    const missing = await cli(['audit', 'verify', path.join(work, 'none.log')]);
    assert.equal(missing.code, 1);
  });

  it('usage errors exit 2', async () => {
    const cases: string[][] = [
      ['nonsense'],
      ['kv', 'frobnicate'],
      ['kv', 'get'],
      ['kv', 'put', 'dev/x', 'novalue'],
      ['kv', 'put', 'dev/x', '=v'],
      ['kv', 'put', 'dev/x'],
      ['kv', 'put', 'dev/x', 'a=1', '-'],
      ['kv', 'get', 'noslash'],
      ['kv', 'get', 'dev/x', '--bogus'],
      ['kv', 'put', 'dev/x', 'a=1', '--tag', 'notag'],
      ['kv', 'put', 'dev/x', 'a=1', '--expires', 'tomorrow'],
      ['env', 'create'],
      ['env', 'create', 'Bad_Name'],
      ['token', 'lookup', 'acc_x', '--self'],
      ['kv', 'list', 'dev', '--format', 'xml'],
      ['kv'],
    ];
    const results = await Promise.all(cases.map((args) => cli(args)));
    results.forEach((r, i) => {
      assert.equal(r.code, 2, `custody ${cases[i].join(' ')} → ${r.code}\n${r.stderr}`);
      assert.equal(r.stdout, '', `custody ${cases[i].join(' ')} printed to stdout`);
    });
    assert.match(results[0].stderr, /^error: unknown command 'nonsense' \(UsageError\)\nhint: /);
    assert.match(results[3].stderr, /\(InvalidKeyValue\)/);
    const asJson = await cli(['kv', 'get', '--format', 'json']);
    assert.equal(asJson.code, 2);
    assert.equal(JSON.parse(asJson.stderr).error.code, 'UsageError');
  });

  it('the canary secret value never appears in the server output', async () => {
    // Touch it once more through every read path.
    await json(['kv', 'get', 'dev/api/key']);
    await json(['kv', 'versions', 'dev/api/key']);
    const out = broker.stdout();
    assert.ok(out.length > 0, 'the server logged something');
    assert.ok(out.includes('hmac-sha256:'), 'audit entries went to stdout');
    assert.ok(!out.includes(canary), 'canary in server stdout');
    assert.ok(!broker.stderr().includes(canary), 'canary in server stderr');
    assert.ok(!out.includes(broker.rootToken), 'root token in server stdout');
  });

  it('the server stops gracefully on SIGTERM (exit 0)', async () => {
    const code = await broker.stop('SIGTERM');
    assert.equal(code, 0);
    assert.match(broker.stderr(), /Broker closed/);
  });
});
