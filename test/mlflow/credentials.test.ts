import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  CredentialFormatError,
  credentialFromSecret,
  parseSecret,
} from '../../src/client/mlflow/credentials.js';

const b64 = (s: string) => Buffer.from(s).toString('base64');

describe('MLflow secret formats', () => {
  const ok: [string, string, { authMode?: 'bearer' | 'basic'; headerName?: string }, string, string][] = [
    ['JSON token', '{"token":"tok-123"}', {}, 'Authorization', 'Bearer tok-123'],
    [
      'JSON token wins over username',
      '{"token":" t1 ","username":"u","password":"p"}',
      {},
      'Authorization',
      'Bearer t1',
    ],
    [
      'JSON username/password',
      '{"username":"alice","password":"s3cret"}',
      {},
      'Authorization',
      `Basic ${b64('alice:s3cret')}`,
    ],
    [
      'fields trimmed',
      '{"username":" alice ","password":" pw "}',
      {},
      'Authorization',
      `Basic ${b64('alice:pw')}`,
    ],
    ['user:pass', 'bob:pa:ss', {}, 'Authorization', `Basic ${b64('bob:pa:ss')}`],
    ['plain token', '  abc.def  ', {}, 'Authorization', 'Bearer abc.def'],
    [
      'basic mode on a token user:pass',
      '{"token":"u:p"}',
      { authMode: 'basic' },
      'Authorization',
      `Basic ${b64('u:p')}`,
    ],
    ['custom header sends raw token', 'tok', { headerName: 'X-Api-Key' }, 'X-Api-Key', 'tok'],
    ['bearer mode explicit', 'tok', { authMode: 'bearer' }, 'Authorization', 'Bearer tok'],
  ];
  for (const [name, raw, opts, header, value] of ok) {
    it(name, () => {
      const c = credentialFromSecret(raw, opts);
      assert.equal(c.header, header);
      assert.equal(c.value, value);
    });
  }

  const bad: [string, string, { authMode?: 'bearer' | 'basic' }, RegExp][] = [
    ['JSON number', '42', {}, /JSON but a number/],
    ['JSON null', 'null', {}, /JSON but null/],
    ['JSON list', '["a"]', {}, /JSON but a list/],
    ['empty', '   ', {}, /empty/],
    ['empty token', '{"token":"  "}', {}, /"token" field is empty/],
    ['password without username', '{"password":"p"}', {}, /no "username"/],
    ['empty object', '{}', {}, /neither/],
    ['empty user', ':pass', {}, /empty user name/],
    ['empty password', 'user:', {}, /empty password/],
    ['bearer with username/password', '{"username":"u","password":"p"}', { authMode: 'bearer' }, /bearer/],
    ['basic with a plain token', 'tok', { authMode: 'basic' }, /basic/],
    ['non-string field', '{"token":5}', {}, /must be a string/],
  ];
  for (const [name, raw, opts, re] of bad) {
    it(`rejects ${name}`, () => {
      assert.throws(
        () => credentialFromSecret(raw, opts),
        (e: Error) => e instanceof CredentialFormatError && re.test(e.message),
      );
    });
  }

  it('never puts the value in an error', () => {
    assert.throws(
      () => credentialFromSecret('hunter2-XYZ', { authMode: 'basic' }),
      (e: Error) => !e.message.includes('hunter2'),
    );
    assert.throws(
      () => credentialFromSecret('hunter2-XYZ:', {}),
      (e: Error) => !e.message.includes('hunter2'),
    );
  });

  it('parses kinds', () => {
    assert.deepEqual(parseSecret('a:b'), { kind: 'basic', username: 'a', password: 'b' });
    assert.deepEqual(parseSecret('{"token":"x"}'), { kind: 'token', token: 'x' });
  });
});
