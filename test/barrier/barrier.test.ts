import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import fc from 'fast-check';
import { Barrier } from '../../src/barrier/barrier.js';
import { open, seal } from '../../src/barrier/cipher.js';
import type { CustodyError } from '../../src/errors.js';
import { metaStore } from '../../src/storage/meta-store.js';
import { openStorage, type Storage } from '../../src/storage/storage.js';

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function freshStorage(): Promise<Storage> {
  const dir = await mkdtemp(path.join(tmpdir(), 'custody-barrier-'));
  const storage = await openStorage(path.join(dir, 'b.db'));
  cleanups.push(async () => {
    await storage.close();
    await rm(dir, { recursive: true, force: true });
  });
  return storage;
}

test('AES-GCM round-trips any bytes and binds them to their AAD', () => {
  const key = randomBytes(32);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 2048 }), fc.string(), fc.string(), (bytes, aad, other) => {
      const blob = seal(key, Buffer.from(bytes), aad);
      assert.deepEqual(open(key, blob, aad), Buffer.from(bytes));
      if (other !== aad) assert.throws(() => open(key, blob, other));
    }),
  );
  const blob = seal(key, Buffer.from('x'), 'a');
  for (let i = 0; i < blob.length; i++) {
    const flipped = Buffer.from(blob);
    flipped[i] ^= 1;
    assert.throws(() => open(key, flipped, 'a'), `flipping byte ${i} is detected`);
  }
});

test('ciphertexts moved to another record do not decrypt', async () => {
  const barrier = new Barrier(metaStore(await freshStorage()));
  await barrier.initialize('file');
  const ct = barrier.encrypt('value', 'custody:secret:A:1');
  assert.equal((await barrier.decrypt(ct, 'custody:secret:A:1')).toString(), 'value');
  for (const aad of ['custody:secret:B:1', 'custody:secret:A:2']) {
    await assert.rejects(barrier.decrypt(ct, aad), (e: CustodyError) => e.code === 'DecryptionFailed');
  }
});

test('rotation: new writes use the new term, every older term stays readable, also on another node', async () => {
  const storage = await freshStorage();
  const nodeA = new Barrier(metaStore(storage));
  const { rootKey } = await nodeA.initialize('file');
  const nodeB = new Barrier(metaStore(storage));
  await nodeB.load();
  await nodeB.unsealWithRootKey(rootKey!);
  const old = nodeA.encrypt('old', 'r1');
  assert.equal(await nodeA.rotate(), 2);
  const fresh = nodeA.encrypt('new', 'r2');
  assert.match(old, /^v1:1:/);
  assert.match(fresh, /^v1:2:/);
  // Node B unsealed before the rotation; it reloads the keyring when it meets term 2.
  assert.equal((await nodeB.decrypt(fresh, 'r2')).toString(), 'new');
  assert.equal((await nodeB.decrypt(old, 'r1')).toString(), 'old');
  assert.equal(await nodeB.rotate(), 3, 'a rotation on another node builds on the stored keyring');
});

test('seal drops keys; a wrong root key does not unseal', async () => {
  const storage = await freshStorage();
  const barrier = new Barrier(metaStore(storage));
  const { rootKey } = await barrier.initialize('file');
  const ct = barrier.encrypt('v', 'r');
  barrier.seal();
  assert.equal(barrier.isSealed, true);
  assert.throws(
    () => barrier.encrypt('v', 'r'),
    (e: CustodyError) => e.code === 'Sealed',
  );
  await assert.rejects(
    barrier.unsealWithRootKey(randomBytes(32)),
    (e: CustodyError) => e.code === 'InvalidUnsealKey',
  );
  await barrier.unsealWithRootKey(rootKey!);
  assert.equal((await barrier.decrypt(ct, 'r')).toString(), 'v');
});

test('shamir: any threshold-sized subset unseals, fewer shares do not', async () => {
  const storage = await freshStorage();
  const barrier = new Barrier(metaStore(storage));
  const { shares } = await barrier.initialize('shamir', 5, 3);
  assert.equal(shares!.length, 5);
  const ct = barrier.encrypt('v', 'r');
  for (const subset of [
    [0, 1, 2],
    [4, 2, 0],
    [1, 3, 4],
  ]) {
    barrier.seal();
    for (const [i, idx] of subset.entries()) {
      const s = await barrier.submitShare(shares![idx]);
      assert.equal(s.sealed, i < 2);
    }
    assert.equal((await barrier.decrypt(ct, 'r')).toString(), 'v');
  }
  await assert.rejects(
    barrier.initialize('shamir', 5, 3),
    (e: CustodyError) => e.code === 'AlreadyInitialized',
  );
});

test('two nodes racing to initialize the same storage: exactly one wins', async () => {
  const storage = await freshStorage();
  const results = await Promise.allSettled([
    new Barrier(metaStore(storage)).initialize('file'),
    new Barrier(metaStore(storage)).initialize('file'),
  ]);
  assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
});
