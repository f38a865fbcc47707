import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Output } from '../../src/cli/output.js';
import { redact } from '../../src/cli/redact.js';

describe('redact', () => {
  it('masks cst_ tokens and Bearer values', () => {
    assert.equal(redact('token cst_AbC-12_x is bad'), 'token cst_[redacted] is bad');
    assert.equal(redact('Authorization: Bearer abc.def'), 'Authorization: Bearer [redacted]');
    assert.equal(redact('"authorization":"bearer xyz"'), '"authorization":"bearer [redacted]"');
    assert.equal(redact('nothing here'), 'nothing here');
  });

  it('errors printed by the CLI are redacted in both formats', () => {
    let text = '';
    const sink = { write: (s: string) => (text += s) };
    new Output('table', sink, sink).error({
      code: 'X',
      message: 'got cst_secret123',
      hint: 'Bearer cst_abc',
    });
    assert.equal(text, 'error: got cst_[redacted] (X)\nhint: Bearer [redacted]\n');
    text = '';
    new Output('json', sink, sink).error({ code: 'X', message: 'cst_secret123' });
    assert.deepEqual(JSON.parse(text), { error: { code: 'X', message: 'cst_[redacted]' } });
  });
});
