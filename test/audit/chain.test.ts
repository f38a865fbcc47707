import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  type AuditEntry,
  canonicalJson,
  entryHash,
  GENESIS_HASH,
  SinkChain,
  verifyChain,
} from '../../src/audit/index.js';
import { chainLines, record } from './helpers.js';

const N = 20;

/** Rewrites one line, optionally recomputing its hash (a forger who knows the format). */
function rewrite(line: string, change: (e: AuditEntry) => void, rehash = false): string {
  const e = JSON.parse(line) as AuditEntry;
  change(e);
  if (rehash) {
    const { hash: _old, ...rest } = e;
    e.hash = entryHash(rest as Record<string, unknown>);
  }
  return JSON.stringify(e);
}

const fail = (line: number, reason: string) => ({ ok: false, line, reason });
const shape = (r: ReturnType<typeof verifyChain>) =>
  r.ok ? r : { ok: r.ok, line: r.line, reason: r.reason };

describe('hash chain', () => {
  it('stamps seq 1..n linked from the genesis hash, and the chain verifies', () => {
    const lines = chainLines(N);
    const entries = lines.map((l) => JSON.parse(l) as AuditEntry);
    assert.equal(entries[0].prev_hash, GENESIS_HASH);
    entries.forEach((e, i) => {
      assert.equal(e.seq, i + 1);
      if (i > 0) assert.equal(e.prev_hash, entries[i - 1].hash);
      const { hash, ...rest } = e;
      assert.equal(hash, entryHash(rest as Record<string, unknown>));
    });
    assert.deepEqual(verifyChain(lines), { ok: true, count: N, lastSeq: N, lastHash: entries[N - 1].hash });
    // A trailing newline (split of a whole file) is not an extra line.
    assert.equal(verifyChain(`${lines.join('\n')}\n`.split('\n')).ok, true);
    assert.deepEqual(verifyChain([]), { ok: true, count: 0, lastSeq: 0, lastHash: GENESIS_HASH });
  });

  it('canonical JSON sorts keys at every depth', () => {
    assert.equal(
      canonicalJson({ b: 1, a: { d: [1, { y: 2, x: 1 }], c: null } }),
      '{"a":{"c":null,"d":[1,{"x":1,"y":2}]},"b":1}',
    );
    assert.equal(canonicalJson({ a: undefined, b: 2 }), '{"b":2}');
  });

  it('reports an edited field at its line', () => {
    const lines = chainLines(N);
    lines[6] = rewrite(lines[6], (e) => {
      e.outcome = 'denied';
    });
    assert.deepEqual(shape(verifyChain(lines)), fail(7, 'edited'));

    const nested = chainLines(N);
    nested[11] = rewrite(nested[11], (e) => {
      (e.data as any).nested.a[1].y = false;
    });
    assert.deepEqual(shape(verifyChain(nested)), fail(12, 'edited'));

    const last = chainLines(N);
    last[N - 1] = rewrite(last[N - 1], (e) => {
      e.resource = 'prod/other';
    });
    assert.deepEqual(shape(verifyChain(last)), fail(N, 'edited'));
  });

  it('reports an edited line whose hash was recomputed at that line', () => {
    const lines = chainLines(N);
    lines[4] = rewrite(lines[4], (e) => (e.outcome = 'denied'), true);
    assert.deepEqual(shape(verifyChain(lines)), fail(5, 'edited'));
  });

  it('reports a removed line where it is missing', () => {
    for (const k of [1, 2, 10, N - 1]) {
      const lines = chainLines(N);
      lines.splice(k - 1, 1);
      assert.deepEqual(shape(verifyChain(lines)), fail(k, 'removed'), `removed line ${k}`);
    }
    const several = chainLines(N);
    several.splice(5, 3);
    assert.deepEqual(shape(verifyChain(several)), fail(6, 'removed'));
  });

  it('reports an inserted forged line at its line', () => {
    // Naive forger: copy of the previous line with a changed field.
    const naive = chainLines(N);
    naive.splice(
      8,
      0,
      rewrite(naive[7], (e) => {
        e.resource = 'prod/forged';
      }),
    );
    assert.deepEqual(shape(verifyChain(naive)), fail(9, 'inserted'));

    // Careful forger: takes the seq and prev_hash of the line it displaces and recomputes the hash.
    const careful = chainLines(N);
    careful.splice(
      8,
      0,
      rewrite(careful[8], (e) => (e.resource = 'prod/forged'), true),
    );
    assert.deepEqual(shape(verifyChain(careful)), fail(9, 'inserted'));

    // Made-up line appended at the end.
    const appended = chainLines(N);
    appended.push(JSON.stringify({ ...record(99), seq: 3, prev_hash: GENESIS_HASH, hash: 'f'.repeat(64) }));
    assert.deepEqual(shape(verifyChain(appended)), fail(N + 1, 'inserted'));

    // Replay of an earlier genuine line.
    const replay = chainLines(N);
    replay.splice(12, 0, replay[3]);
    assert.deepEqual(shape(verifyChain(replay)), fail(13, 'inserted'));
  });

  it('reports swapped lines at the first of the pair', () => {
    for (const k of [1, 7, N - 1]) {
      const lines = chainLines(N);
      [lines[k - 1], lines[k]] = [lines[k], lines[k - 1]];
      assert.deepEqual(shape(verifyChain(lines)), fail(k, 'reordered'), `swapped ${k} and ${k + 1}`);
    }
    const moved = chainLines(N);
    moved.splice(9, 0, ...moved.splice(3, 1));
    assert.deepEqual(shape(verifyChain(moved)), fail(4, 'reordered'));
  });

  it('reports a line that is not an entry as malformed', () => {
    const lines = chainLines(N);
    lines[2] = '{"time":"2025-01-01T00:00:00.000Z"';
    assert.deepEqual(shape(verifyChain(lines)), fail(3, 'malformed'));
    const blank = chainLines(N);
    blank.splice(4, 0, '');
    assert.deepEqual(shape(verifyChain(blank)), fail(5, 'malformed'));
  });

  it('verifies a rotated file that continues an earlier chain only with startPrevHash', () => {
    const first = chainLines(10);
    const tail = JSON.parse(first[9]) as AuditEntry;
    const second = chainLines(5, { seq: tail.seq, hash: tail.hash });
    assert.deepEqual(shape(verifyChain(second)), fail(1, 'removed'));
    assert.deepEqual(verifyChain(second, { startPrevHash: tail.hash }), {
      ok: true,
      count: 5,
      lastSeq: 15,
      lastHash: (JSON.parse(second[4]) as AuditEntry).hash,
    });
    assert.equal(verifyChain(second, tail.hash).ok, true);
    assert.equal(verifyChain(second, { startPrevHash: tail.hash, startSeq: 11 }).ok, true);
    assert.deepEqual(
      shape(verifyChain(second, { startPrevHash: tail.hash, startSeq: 10 })),
      fail(1, 'removed'),
    );
    assert.deepEqual(shape(verifyChain(second.slice(1), { startPrevHash: tail.hash })), fail(1, 'removed'));
    assert.deepEqual(shape(verifyChain(second, { startPrevHash: 'a'.repeat(64) })), fail(1, 'removed'));
  });

  it('detects any single mutation at or before the mutated line (property)', () => {
    const fields = [
      'outcome',
      'resource',
      'action',
      'time',
      'request_id',
      'data',
      'seq',
      'prev_hash',
      'hash',
    ] as const;
    const mutation = fc.oneof(
      fc.record({ kind: fc.constant('edit' as const), at: fc.nat(), field: fc.constantFrom(...fields) }),
      fc.record({ kind: fc.constant('remove' as const), at: fc.nat() }),
      fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), from: fc.nat(), rehash: fc.boolean() }),
      fc.record({ kind: fc.constant('swap' as const), at: fc.nat() }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 40 }), mutation, (n, m) => {
        const lines = chainLines(n);
        let mutated: number;
        let expected: string;
        if (m.kind === 'edit') {
          const k = m.at % n;
          lines[k] = rewrite(lines[k], (e: any) => {
            if (m.field === 'seq') e.seq += 1000;
            else if (m.field === 'prev_hash' || m.field === 'hash')
              e[m.field] = e[m.field].replace(/^./, (c: string) => (c === 'a' ? 'b' : 'a'));
            else if (m.field === 'data') e.data.extra = 1;
            else e[m.field] = `${e[m.field]}x`;
          });
          [mutated, expected] = [k + 1, 'edited'];
        } else if (m.kind === 'remove') {
          // Removing the very last line cannot be seen without an outside anchor, so it is excluded.
          const k = m.at % (n - 1);
          lines.splice(k, 1);
          [mutated, expected] = [k + 1, 'removed'];
        } else if (m.kind === 'insert') {
          const k = m.at % (n + 1);
          const forged = rewrite(lines[m.from % n], (e) => (e.resource = 'prod/forged'), m.rehash);
          lines.splice(k, 0, forged);
          [mutated, expected] = [k + 1, 'inserted'];
        } else {
          const k = m.at % (n - 1);
          [lines[k], lines[k + 1]] = [lines[k + 1], lines[k]];
          [mutated, expected] = [k + 1, 'reordered'];
        }
        const r = verifyChain(lines);
        assert.equal(r.ok, false, `${JSON.stringify(m)} went unnoticed`);
        if (r.ok) return;
        assert.ok(r.line <= mutated, `${JSON.stringify(m)} reported at line ${r.line}, after ${mutated}`);
        assert.equal(r.reason, expected, `${JSON.stringify(m)}: ${r.detail}`);
      }),
      { numRuns: 2000 },
    );
  });

  it('SinkChain.reset rewinds the position', () => {
    const chain = new SinkChain();
    chain.stamp(record(1));
    const s = chain.state;
    chain.stamp(record(2));
    chain.reset(s);
    assert.equal((JSON.parse(chain.stamp(record(3))) as AuditEntry).seq, 2);
  });
});
