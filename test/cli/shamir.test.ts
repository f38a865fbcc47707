import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type BrokerProcess, runCli, startBrokerProcess } from '../support/broker-process.js';

describe('shamir unseal flow through the CLI', () => {
  let broker: BrokerProcess;
  let rootToken = '';
  let keys: string[] = [];
  const cli = (args: string[], opts: { input?: string; env?: Record<string, string | undefined> } = {}) =>
    runCli(args, { input: opts.input, env: { ...broker.env(rootToken), ...opts.env } });
  const json = async (args: string[], input?: string) => {
    const r = await cli([...args, '--format', 'json'], { input });
    assert.equal(r.code, 0, `custody ${args.join(' ')} failed: ${r.stderr}`);
    return JSON.parse(r.stdout);
  };

  before(async () => {
    broker = await startBrokerProcess({ unseal: 'shamir' });
  });
  after(async () => {
    await broker?.cleanup();
  });

  it('a fresh shamir broker asks for `operator init`', async () => {
    assert.equal(broker.banner.initialized, false);
    assert.equal(broker.banner.root_token_file, null);
    assert.match(broker.banner.next_step, /custody operator init/);
    assert.equal(broker.rootToken, '');
    const status = await json(['operator', 'status']);
    assert.equal(status.initialized, false);
  });

  it('operator init prints the shares and the root token once, with a warning', async () => {
    const r = await cli([
      'operator',
      'init',
      '--key-shares',
      '3',
      '--key-threshold',
      '2',
      '--format',
      'json',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const init = JSON.parse(r.stdout);
    assert.equal(init.keys.length, 3);
    assert.equal(init.key_shares, 3);
    assert.equal(init.key_threshold, 2);
    assert.match(init.root_token, /^cst_/);
    assert.match(r.stderr, /shown only this once/);
    rootToken = init.root_token;
    keys = init.keys;
    const status = await json(['operator', 'status']);
    assert.equal(status.sealed, false);
    assert.equal(status.mode, 'shamir');
    const again = await cli(['operator', 'init', '--key-shares', '3', '--key-threshold', '2']);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /\(AlreadyInitialized\)/);
  });

  it('seal → reads fail with Sealed → unseal with 2 shares from stdin → reads work', async () => {
    await json(['env', 'create', 'prod']);
    await json(['kv', 'put', 'prod/db/password', '-'], 'p4ss\n');
    const seal = await cli(['operator', 'seal']);
    assert.equal(seal.code, 0, seal.stderr);
    const sealedGet = await cli(['kv', 'get', 'prod/db/password']);
    assert.equal(sealedGet.code, 1);
    assert.match(sealedGet.stderr, /\(Sealed\)/);
    assert.match(sealedGet.stderr, /hint: .*operator unseal/);

    const first = await json(['operator', 'unseal', '-'], `${keys[0]}\n`);
    assert.equal(first.sealed, true);
    assert.equal(first.progress, 1);
    const second = await cli(['operator', 'unseal'], { input: `${keys[2]}\n` });
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /Unsealed/);
    assert.equal((await cli(['kv', 'get', 'prod/db/password'])).stdout, 'p4ss\n');

    // Several shares at once, one per line; no token needed to unseal.
    await json(['operator', 'seal']);
    const both = await cli(['operator', 'unseal', '-'], {
      input: `${keys[1]}\n${keys[0]}\n`,
      env: { CUSTODY_TOKEN: undefined },
    });
    assert.equal(both.code, 0, both.stderr);
    assert.equal((await cli(['kv', 'get', 'prod/db/password'])).stdout, 'p4ss\n');
    assert.ok(
      !broker.stdout().includes(keys[0]) && !broker.stderr().includes(keys[0]),
      'shares never logged',
    );
  });

  it('a bad share is a clear error; an empty stdin is a usage error', async () => {
    await json(['operator', 'seal']);
    const bad = await cli(['operator', 'unseal', '-'], { input: 'not base64!\n' });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /\(InvalidUnsealKey\)/);
    const empty = await cli(['operator', 'unseal'], { input: '' });
    assert.equal(empty.code, 2);
    const reset = await json(['operator', 'unseal', '--reset']);
    assert.equal(reset.progress, 0);
  });
});
