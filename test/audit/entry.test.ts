import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { buildRecord, hmacValue, isSensitiveKey, OMITTED_SEALED } from '../../src/audit/index.js';
import { input } from './helpers.js';

const key = randomBytes(32);
const DIGEST = /^hmac-sha256:[0-9a-f]{64}$/;

describe('audit entry', () => {
  it('hmacValue is a keyed, searchable digest', () => {
    const d = hmacValue(key, 'canary');
    assert.match(d, DIGEST);
    assert.equal(hmacValue(key, 'canary'), d);
    assert.notEqual(hmacValue(randomBytes(32), 'canary'), d);
    assert.notEqual(hmacValue(key, 'canary2'), d);
    // Non-strings are JSON-stringified first.
    assert.equal(hmacValue(key, { a: [1, 2] }), hmacValue(key, '{"a":[1,2]}'));
    assert.equal(hmacValue(key, 42), hmacValue(key, '42'));
  });

  it('builds the entry fields and leaves out unset optional ones', () => {
    const now = new Date('2025-03-04T05:06:07.089Z');
    const r = buildRecord(input({ status: 403, errorCode: 'PermissionDenied', outcome: 'denied' }), key, now);
    assert.deepEqual(r, {
      time: '2025-03-04T05:06:07.089Z',
      type: 'request',
      request_id: 'req-1',
      door: 'native',
      remote_addr: '10.0.0.7',
      auth: { accessor: 'acc-1', identity: 'job-a', policies: ['reader'] },
      action: 'secrets/get',
      resource: 'prod/db/password',
      outcome: 'denied',
      status: 403,
      error_code: 'PermissionDenied',
    });
    assert.equal('data' in buildRecord(input(), key), false);
    assert.equal(buildRecord(input({ auth: null }), key).auth, null);
  });

  it('replaces sensitive fields by their digest', () => {
    const canary = `canary-${randomBytes(8).toString('hex')}`;
    const r = buildRecord(
      input({ data: { version: 3 }, sensitive: { value: canary, shares: ['s1', 's2'], ttl: 60 } }),
      key,
    );
    assert.deepEqual(r.data, {
      version: 3,
      value: hmacValue(key, canary),
      shares: hmacValue(key, ['s1', 's2']),
      ttl: hmacValue(key, 60),
    });
    assert.equal(JSON.stringify(r).includes(canary), false);
  });

  it('digests values under sensitive-looking keys at any depth', () => {
    const r = buildRecord(
      input({
        data: {
          user: 'alice',
          db: { Password: 'pw-1', hosts: [{ name: 'h1', client_token: 'tok-1' }] },
          PRIVATE_KEY: 'pem-1',
          secret: { username: 'bob', inner: { n: 7 } },
          keys: ['k1', 'k2'],
          'secret-id': 'sid-1',
          refresh_token: 'rt-1',
          accessor: 'acc-9',
          nothing: null,
        },
      }),
      key,
    );
    assert.deepEqual(r.data, {
      user: 'alice',
      db: {
        Password: hmacValue(key, 'pw-1'),
        hosts: [{ name: 'h1', client_token: hmacValue(key, 'tok-1') }],
      },
      PRIVATE_KEY: hmacValue(key, 'pem-1'),
      secret: { username: hmacValue(key, 'bob'), inner: { n: hmacValue(key, 7) } },
      keys: [hmacValue(key, 'k1'), hmacValue(key, 'k2')],
      'secret-id': hmacValue(key, 'sid-1'),
      refresh_token: hmacValue(key, 'rt-1'),
      accessor: 'acc-9',
      nothing: null,
    });
    for (const name of ['value', 'Token', 'SECRET_ID', 'share', 'key', 'privateKey', 'db_password']) {
      assert.ok(isSensitiveKey(name), name);
    }
    for (const name of ['accessor', 'version', 'policies', 'token_ttl', 'name'])
      assert.ok(!isSensitiveKey(name), name);
  });

  it('never writes sensitive values while no audit key is set (sealed)', () => {
    const r = buildRecord(
      input({ data: { nested: { password: 'pw-2' }, note: 'ok' }, sensitive: { token: 'tok-2', n: 5 } }),
      undefined,
    );
    assert.deepEqual(r.data, {
      nested: { password: OMITTED_SEALED },
      note: 'ok',
      token: OMITTED_SEALED,
      n: OMITTED_SEALED,
    });
    assert.equal(OMITTED_SEALED, '[omitted: sealed]');
  });

  it('digests a token smuggled into the auth context and keeps the rest', () => {
    const auth = { accessor: 'acc-1', identity: 'job-a', granted_by: 'role:reader', client_token: 'tok-3' };
    const r = buildRecord(input({ auth }), key);
    assert.deepEqual(r.auth, {
      accessor: 'acc-1',
      identity: 'job-a',
      granted_by: 'role:reader',
      client_token: hmacValue(key, 'tok-3'),
    });
  });

  it('turns caller data into plain JSON and keeps a __proto__ key as data', () => {
    const data = JSON.parse('{"__proto__": {"password": "pw-4"}, "when": "x"}') as Record<string, unknown>;
    data.when = new Date('2025-01-01T00:00:00Z');
    data.big = 10n;
    data.raw = Buffer.from('key-bytes');
    data.inf = Number.POSITIVE_INFINITY;
    data.skip = undefined;
    const r = buildRecord(input({ data }), key);
    const out = r.data as Record<string, unknown>;
    assert.deepEqual(Object.keys(out), ['__proto__', 'when', 'big', 'raw', 'inf']);
    assert.deepEqual(Object.getOwnPropertyDescriptor(out, '__proto__')?.value, {
      password: hmacValue(key, 'pw-4'),
    });
    assert.equal(out.when, '2025-01-01T00:00:00.000Z');
    assert.equal(out.big, '10');
    assert.equal(out.raw, hmacValue(key, Buffer.from('key-bytes').toString('base64')));
    assert.equal(out.inf, null);
    assert.equal(JSON.stringify(r).includes('pw-4'), false);
  });
});
