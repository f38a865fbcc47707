import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { fsTypeOf, tmpfsBase } from '../../src/runtime/files.js';
import { type BrokerProcess, startBrokerProcess } from '../support/broker-process.js';
import { apiOf, cliOf, jsonLine, spawnCli, waitUntil, workloadToken } from './helpers.js';

/** `custody run` output masking and `--files`, end to end against a real broker process. */
describe('custody run: output masking and --files', () => {
  let broker: BrokerProcess;
  let api: Awaited<ReturnType<typeof apiOf>>;
  let cli: ReturnType<typeof cliOf>;
  let jobToken: string;
  const SECRET = `sk-${Math.random().toString(36).slice(2)}/x+y z&"q"`;
  const FIELD_PW = `fieldpw-${Math.random().toString(36).slice(2)}`;

  before(async () => {
    broker = await startBrokerProcess();
    api = await apiOf(broker);
    cli = cliOf(broker);
    await api.ok('POST', '/v1/envs', { name: 'prod' });
    await api.ok('PUT', '/v1/secrets/prod/api/key', { value: SECRET });
    await api.ok('PUT', '/v1/secrets/prod/db/credentials', {
      value: JSON.stringify({ user: 'app', password: FIELD_PW }),
      content_type: 'application/json',
    });
    jobToken = await workloadToken(broker, 'prod', 'masker', [
      ['secrets-user', 'prod/secrets/api'],
      ['secrets-user', 'prod/secrets/db'],
    ]);
  });

  after(async () => {
    await api?.close();
    await broker?.cleanup();
  });

  const node = (script: string) => ['--', process.execPath, '-e', script];

  it('masks the secret in stdout and stderr: plain, base64, JSON, URL-encoded, split across writes', async () => {
    const script = `
      const v = process.env.API_KEY;
      const b = Buffer.from(v);
      console.log('plain ' + v);
      console.log('b64 ' + b.toString('base64'));
      console.log('b64+1 ' + Buffer.concat([Buffer.from('u:'), b]).toString('base64'));
      console.log('json ' + JSON.stringify({ key: v }));
      console.log('url ' + encodeURIComponent(v));
      console.error('err ' + v);
      const creds = JSON.parse(process.env.DB);
      console.log('field ' + creds.password);
      process.stdout.write('split ' + v.slice(0, 5));
      setTimeout(() => { process.stdout.write(v.slice(5) + ' end\\n'); }, 10);
    `;
    const r = await cli(
      ['run', '--secret', 'API_KEY=prod/api/key', '--secret', 'DB=prod/db/credentials', ...node(script)],
      { env: { CUSTODY_TOKEN: jobToken } },
    );
    assert.equal(r.code, 0, r.stderr);
    const all = r.stdout + r.stderr;
    const b = Buffer.from(SECRET);
    for (const leak of [
      SECRET,
      b.toString('base64').slice(0, 12),
      encodeURIComponent(SECRET),
      JSON.stringify(SECRET).slice(1, -1),
      FIELD_PW,
    ])
      assert.ok(!all.includes(leak), `leaked ${leak}:\n${all}`);
    for (const line of ['plain', 'b64', 'b64+1', 'json', 'url', 'split'])
      assert.match(r.stdout, new RegExp(`^${line.replace('+', '\\+')} .*<redacted:API_KEY>`, 'm'), line);
    assert.match(r.stdout, /^split <redacted:API_KEY> end$/m);
    assert.match(r.stdout, /^field <redacted:DB>$/m);
    assert.match(r.stderr, /^err <redacted:API_KEY>$/m);

    const off = await cli(
      ['run', '--no-mask', '--secret', 'API_KEY=prod/api/key', ...node('console.log(process.env.API_KEY)')],
      {
        env: { CUSTODY_TOKEN: jobToken },
      },
    );
    assert.equal(off.stdout, `${SECRET}\n`, '--no-mask: as it is');
  });

  it('warns about values too short to mask, naming them', async () => {
    const r = await cli(
      ['run', '--secret', 'U=prod/db/credentials#user', ...node('console.log(process.env.U)')],
      { env: { CUSTODY_TOKEN: jobToken } },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'app\n');
    assert.match(
      r.stderr,
      /warning: not masked in the output \(shorter than 8 characters\): U \(ShortValueNotMasked\)/,
    );
  });

  it('streams output while the child runs (not buffered until exit)', async () => {
    const run = spawnCli(
      [
        'run',
        '--secret',
        'API_KEY=prod/api/key',
        ...node("process.stdout.write('ready ' + process.env.API_KEY); setInterval(() => {}, 1000)"),
      ],
      { ...broker.env(), CUSTODY_TOKEN: jobToken },
    );
    await run.waitFor(/ready <redacted:API_KEY>/, 10_000);
    run.proc.kill('SIGTERM');
    const res = await run.exited;
    assert.equal(res.code, 143);
  });

  const filesUsable = tmpfsBase(process.env) !== null;

  it('--files: the variable holds the path of a 0600 file on tmpfs; removed after exit', {
    skip: !filesUsable,
  }, async () => {
    const script = `
      const fs = require('fs');
      const p = process.env.API_KEY;
      const st = fs.statSync(p), dst = fs.statSync(require('path').dirname(p));
      console.log(JSON.stringify({ files: { path: p, value: fs.readFileSync(p, 'utf8'), mode: st.mode & 0o777, dirMode: dst.mode & 0o777 } }));
    `;
    const r = await cli(
      ['run', '--files', '--no-mask', '--secret', 'API_KEY=prod/api/key', ...node(script)],
      {
        env: { CUSTODY_TOKEN: jobToken },
      },
    );
    assert.equal(r.code, 0, r.stderr);
    const got = jsonLine(r.stdout, 'files').files;
    assert.equal(got.value, SECRET);
    assert.equal(got.mode, 0o600);
    assert.equal(got.dirMode, 0o700);
    assert.match(got.path, /\/custody-[^/]+\/API_KEY$/);
    assert.equal(fsTypeOf(got.path, readFileSync('/proc/mounts', 'utf8')), 'tmpfs');
    assert.equal(existsSync(got.path), false, 'file gone');
    assert.equal(existsSync(got.path.replace(/\/API_KEY$/, '')), false, 'directory gone');
  });

  it('--files: the directory is removed when custody run gets SIGTERM', { skip: !filesUsable }, async () => {
    const run = spawnCli(
      [
        'run',
        '--files',
        '--secret',
        'API_KEY=prod/api/key',
        ...node('console.log(JSON.stringify({ path: process.env.API_KEY })); setInterval(() => {}, 1000)'),
      ],
      { ...broker.env(), CUSTODY_TOKEN: jobToken },
    );
    const m = await run.waitFor(/"path":"([^"]+)"/);
    const file = m[1];
    assert.equal(statSync(file).isFile(), true);
    run.proc.kill('SIGTERM');
    const res = await run.exited;
    assert.equal(res.code, 143, res.stderr);
    await waitUntil('the directory is removed', () => !existsSync(file.replace(/\/API_KEY$/, '')), 5000);
  });

  it('fsTypeOf / tmpfsBase read /proc/mounts; no tmpfs → refused', () => {
    const mounts =
      'sysfs /sys sysfs rw 0 0\n/dev/sda1 / ext4 rw 0 0\ntmpfs /dev/shm tmpfs rw 0 0\ntmpfs /run/user/1000 tmpfs rw 0 0\n';
    assert.equal(fsTypeOf('/dev/shm/custody-x', mounts), 'tmpfs');
    assert.equal(fsTypeOf('/tmp', mounts), 'ext4');
    assert.equal(fsTypeOf('/dev/shmx', mounts), 'ext4');
    assert.equal(tmpfsBase({}, '/dev/sda1 / ext4 rw 0 0\n', ['/tmp']), null);
  });
});
