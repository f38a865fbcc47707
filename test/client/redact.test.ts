import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CustodyClientError, errorFromReply } from '../../src/client/errors.js';
import { redact, redactingLogger } from '../../src/client/redact.js';

const JWT =
  'eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJqb2IiLCJhdWQiOiJjdXN0b2R5In0.c2lnbmF0dXJlLXNpZ25hdHVyZQ';

const table: [string, string, string[]][] = [
  // input, must not contain, must contain
  ['Authorization: Bearer abc.def-123', 'abc.def-123', ['Bearer [redacted]']],
  ['authorization: basic dXNlcjpwYXNz', 'dXNlcjpwYXNz', ['basic [redacted]']],
  [`token ${JWT} seen`, JWT, ['[redacted-jwt]', 'seen']],
  ['using cst_AbC123_xyz-9 now', 'cst_AbC123_xyz-9', ['cst_[redacted]', 'now']],
  ['secret id sid_AAAABBBB', 'sid_AAAABBBB', ['sid_[redacted]']],
  ['{"token": "t0p-s3cret", "user": "bob"}', 't0p-s3cret', ['"user": "bob"']],
  ['{"password":"p@ss\\"word","username":"alice"}', 'p@ss', ['"username":"alice"']],
  ['{"client_secret":"shh1234","api_key":12345678}', 'shh1234', ['"api_key":"[redacted]"']],
  ['{"AccessKey": "AKIAXYZ"}', 'AKIAXYZ', ['[redacted]']],
  ['postgres://admin:hunter22@db:5432/x', 'hunter22', ['postgres://[redacted]@db:5432/x']],
  ['https://user@host/x', 'user@', ['https://[redacted]@host/x']],
  ['GET /cb?code=1&access_token=abcd1234&x=2', 'abcd1234', ['access_token=[redacted]', 'x=2']],
  ['PASSWORD=hunter2 ./train.py', 'hunter2', ['PASSWORD=[redacted]']],
  ['nothing to see here: user bob, port 5432', '\u0000', ['nothing to see here: user bob, port 5432']],
];

test('redaction table', () => {
  for (const [input, secret, keep] of table) {
    const out = redact(input);
    assert.ok(!out.includes(secret), `${input} → ${out}`);
    for (const k of keep) assert.ok(out.includes(k), `${input} → ${out} (expected ${k})`);
  }
});

test('known values are masked too; redaction is idempotent', () => {
  const out = redact('value is plain-secret-value!', ['plain-secret-value']);
  assert.equal(out, 'value is [redacted]!');
  const once = redact(`Bearer abc ${JWT} {"token":"x"}`);
  assert.equal(redact(once), once);
});

test('every log line and error message is redacted', () => {
  const lines: string[] = [];
  const log = redactingLogger((_l, m) => lines.push(m), 'info');
  log('debug', 'dropped');
  log('info', 'login ok, token cst_abcdef');
  log('warn', 'header Bearer zzz');
  assert.deepEqual(lines, ['login ok, token cst_[redacted]', 'header Bearer [redacted]']);
  const e = new CustodyClientError('X', 'failed with cst_abc123 and Bearer q', { hint: 'use cst_zzz' });
  assert.ok(!/cst_abc123|Bearer q|cst_zzz/.test(`${e.message} ${e.hint}`));
  const r = errorFromReply(403, { error: { code: 'Forbidden', message: 'no', hint: 'ask' } }, 'get x');
  assert.equal(r.code, 'Forbidden');
  assert.equal(r.status, 403);
  assert.equal(r.hint, 'ask');
  assert.equal(errorFromReply(502, '<html>', 'get x').code, 'Http502');
});

test('prose about auth modes stays readable; lower-case header values that look like tokens are masked', () => {
  assert.equal(redact('must be bearer or basic'), 'must be bearer or basic');
  assert.equal(redact('use auth mode basic or store a token'), 'use auth mode basic or store a token');
  assert.equal(redact('basic authentication failed'), 'basic authentication failed');
  assert.equal(redact('authorization: bearer eyx9Q2-abc'), 'authorization: bearer [redacted]');
  assert.equal(redact('authorization: basic dXNlcjpwYXNz'), 'authorization: basic [redacted]');
  assert.equal(redact('Authorization: Basic q'), 'Authorization: Basic [redacted]');
});
