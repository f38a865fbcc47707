import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  base64Aligned,
  encodedForms,
  Masker,
  MaskingStream,
  maskValuesOf,
  partitionValues,
} from '../../src/client/masking.js';

/** Writes `chunks` through a MaskingStream; resolves with all the output. */
async function through(masker: Masker, chunks: (string | Buffer)[], quietMs = 50): Promise<string> {
  const s = new MaskingStream(masker, quietMs);
  const out: Buffer[] = [];
  s.on('data', (d: Buffer) => out.push(d));
  const ended = new Promise((r) => s.once('end', r));
  for (const c of chunks) s.write(c);
  s.end();
  await ended;
  return Buffer.concat(out).toString('utf8');
}

const SECRET = 'pa55w0rd/with+odd chars&"quotes"é';
const masker = new Masker([{ variable: 'DB_PASS', value: SECRET }]);

describe('output masking', () => {
  it('masks every encoding of a value', () => {
    const b = Buffer.from(SECRET);
    const table: [string, string][] = [
      ['plain', SECRET],
      ['base64', b.toString('base64')],
      ['base64 offset 1', Buffer.concat([Buffer.from('x'), b]).toString('base64')],
      ['base64 offset 2', Buffer.concat([Buffer.from('xy'), b]).toString('base64')],
      ['base64url', b.toString('base64url')],
      ['base64 with a prefix and suffix', Buffer.from(`user:${SECRET}@host`).toString('base64')],
      ['url-encoded', encodeURIComponent(SECRET)],
      ['form-encoded', encodeURIComponent(SECRET).replace(/%20/g, '+')],
      ['json-escaped', JSON.stringify({ p: SECRET })],
      ['json ascii-escaped', JSON.stringify(SECRET).replace(/é/g, '\\u00e9')],
    ];
    for (const [what, text] of table) {
      const out = masker.maskAll(Buffer.from(`before ${text} after`).toString('latin1'));
      assert.match(out, /<redacted:DB_PASS>/, what);
      assert.ok(!out.includes(SECRET), what);
      assert.ok(!out.includes(b.toString('base64').slice(2, 30)), `${what}: ${out}`);
    }
  });

  it('base64Aligned keeps only the characters the value alone decides', () => {
    const v = Buffer.from('abcdefghij');
    for (const off of [0, 1, 2] as const) {
      const a = base64Aligned(v, off);
      for (const p of ['', 'AAA', 'zzz']) {
        const pre = Buffer.concat([Buffer.from(p), Buffer.alloc(off, 0x41), v, Buffer.from('tail!')]);
        assert.ok(pre.toString('base64').includes(a), `offset ${off} with prefix ${p}`);
      }
    }
    assert.ok(encodedForms('abcdefghij').every((f) => f.length >= 8));
  });

  it('masks a value split across chunks at every position (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.string({ minLength: 8, maxLength: 40 }),
        fc.string({ maxLength: 20 }),
        fc.string({ maxLength: 20 }),
        fc.nat(),
        async (value, before, after, cut) => {
          fc.pre(!before.includes(value) && !after.includes(value));
          const m = new Masker([{ variable: 'V', value }]);
          const text = Buffer.from(`${before}${value}${after}`);
          const at = cut % (text.length + 1);
          const out = await through(m, [text.subarray(0, at), text.subarray(at)]);
          assert.ok(out.includes('<redacted:V>'), out);
          assert.ok(!out.includes(value), out);
        },
      ),
      { numRuns: 300 },
    );
    // Every split position of one value, explicitly, also byte by byte.
    const text = Buffer.from(`x${SECRET}y`);
    for (let i = 0; i <= text.length; i++) {
      const out = await through(masker, [text.subarray(0, i), text.subarray(i)]);
      assert.equal(out, 'x<redacted:DB_PASS>y', `split at ${i}`);
    }
    const bytes = [...text].map((b) => Buffer.from([b]));
    assert.equal(await through(masker, bytes), 'x<redacted:DB_PASS>y');
  });

  it('streams: output is not held until the end (the tail is flushed after a quiet time)', async () => {
    const s = new MaskingStream(masker, 20);
    const got: string[] = [];
    s.on('data', (d: Buffer) => got.push(d.toString()));
    s.write('epoch 1 loss 0.5\n');
    await new Promise((r) => setTimeout(r, 80));
    assert.equal(got.join(''), 'epoch 1 loss 0.5\n');
    s.end();
  });

  it('leaves short values alone and names them', () => {
    const { masked, short } = partitionValues([
      { variable: 'USER', value: 'app' },
      { variable: 'PASS', value: 'long-enough-value' },
    ]);
    assert.deepEqual(short, ['USER']);
    assert.deepEqual(
      masked.map((m) => m.variable),
      ['PASS'],
    );
    const m = new Masker([{ variable: 'USER', value: 'app' }]);
    assert.equal(m.active, false);
    assert.equal(m.maskAll('app happy'), 'app happy');
  });

  it('JSON secrets: each field is masked under the variable', () => {
    const values = maskValuesOf(
      'DB',
      JSON.stringify({ user: 'app', password: 'field-password-1', port: 5432 }),
    );
    const m = new Masker(values);
    assert.equal(m.maskAll('pw=field-password-1 user=app'), 'pw=<redacted:DB> user=app');
  });

  it('is fast enough for chatty logs', async () => {
    const many = Array.from({ length: 20 }, (_, i) => ({
      variable: `V${i}`,
      value: `secret-value-number-${i}-xyz`,
    }));
    const m = new Masker(many);
    const line = Buffer.from(
      'step 1234 loss=0.123456 lr=0.0003 grad_norm=1.234 tokens/s=12345.6\n'.repeat(16_000),
    );
    const t0 = performance.now();
    const out = await through(m, [line, line, line, line]);
    const ms = performance.now() - t0;
    assert.equal(out.length, line.length * 4);
    assert.ok(ms < 3000, `${ms} ms for ${(line.length * 4) / 1e6} MB`);
  });
});
