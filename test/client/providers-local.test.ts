import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import {
  EnvProvider,
  FailoverProvider,
  FileProvider,
  type ProviderError,
  VaultProvider,
} from '../../src/client/index.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'custody-client-file-'));
  await writeFile(path.join(dir, 'token'), 'file-token\n');
  await writeFile(path.join(dir, 'creds.json'), '{"username":"u","password":"p4ss-word"}');
});
after(() => rm(dir, { recursive: true, force: true }));

test('env provider: variable, #field, missing', async () => {
  const p = new EnvProvider({ env: { TOK: 'abc', JSON_CRED: '{"token":"t1","n":2}' } });
  assert.equal(await p.get('TOK'), 'abc');
  assert.equal(await p.get('JSON_CRED#token'), 't1');
  assert.equal(await p.get('JSON_CRED#n'), '2');
  await assert.rejects(
    p.get('NOPE'),
    (e: ProviderError) => e.status === 404 && /NOPE is not set/.test(e.message),
  );
  await assert.rejects(p.get('TOK#x'), /not JSON/);
});

test('file provider: trailing newline removed, #field, confined to its dir', async () => {
  const p = new FileProvider({ dir });
  assert.equal(await p.get('token'), 'file-token');
  assert.equal(await p.get('creds.json#username'), 'u');
  await assert.rejects(p.get('missing'), (e: ProviderError) => e.status === 404);
  await assert.rejects(p.get('../etc/passwd'), /outside/);
  await assert.rejects(p.get('creds.json#nope'), (e: Error) => !e.message.includes('p4ss-word'));
});

test('failover: a failing provider fails over to a working one, with a redacted report', async () => {
  const lines: string[] = [];
  // A Vault on a port where nothing listens (network error, retried once), then env (missing), then file.
  const dead = new VaultProvider({
    addr: 'http://127.0.0.1:9',
    token: 'hvs.super-secret-token',
    retry: { attempts: 2, baseMs: 1, maxMs: 2 },
  });
  const f = new FailoverProvider([dead, new EnvProvider({ env: {} }), new FileProvider({ dir })], {
    log: (_l, m) => lines.push(m),
  });
  try {
    assert.equal(await f.get('token'), 'file-token');
    assert.equal(f.lastReport.served, 'file');
    assert.deepEqual(
      f.lastReport.attempts.map((a) => [a.provider, a.ok]),
      [
        ['vault', false],
        ['env', false],
        ['file', true],
      ],
    );
    assert.match(f.lastReport.attempts[0].error!, /NetworkError|failed/);
    assert.ok(lines.some((l) => l.includes('served by file after failover')));
    assert.ok(lines.every((l) => !l.includes('hvs.super-secret-token')));

    // Per-provider references.
    assert.equal(await f.get({ env: 'X', file: 'creds.json#username' }), 'u');

    // All fail → one error naming each.
    await assert.rejects(f.get('nothing-here'), (e: Error) => {
      assert.match(e.message, /every provider failed: vault: .*; env: .*; file: .*/);
      return true;
    });
  } finally {
    await f.close();
  }
  assert.throws(() => new FailoverProvider([]), /no provider/);
});
