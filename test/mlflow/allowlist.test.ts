import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HostPolicy, HostPolicyError, isLoopback } from '../../src/client/mlflow/allowlist.js';

describe('MLflow host allowlist', () => {
  const table: [string[], string, boolean][] = [
    [['mlflow.example.com'], 'https://mlflow.example.com/api', true],
    [['mlflow.example.com'], 'https://MLFLOW.Example.COM/api', true],
    [['MLflow.Example.com'], 'https://mlflow.example.com', true],
    [['mlflow.example.com'], 'https://mlflow.example.com./x', true],
    [['mlflow.example.com'], 'https://mlflow.example.com.evil.test/', false],
    [['mlflow.example.com'], 'https://evil.test/mlflow.example.com', false],
    [['mlflow.example.com'], 'https://mlflow.example.com@evil.test/', false],
    [['mlflow.example.com'], 'https://xmlflow.example.com/', false],
    [['*.example.com'], 'https://a.b.example.com/', true],
    [['*.example.com'], 'https://example.com/', false],
    [['*.example.com'], 'https://example.com.evil.test/', false],
    [['*.example.com'], 'https://evil-example.com/', false],
    [['mlflow-?.example.com'], 'https://mlflow-1.example.com/', true],
    [['mlflow-?.example.com'], 'https://mlflow-12.example.com/', false],
    [['mlflow-[ab].example.com'], 'https://mlflow-b.example.com/', true],
    [['mlflow-[!ab].example.com'], 'https://mlflow-b.example.com/', false],
    [['mlflow.example.com:5000'], 'https://mlflow.example.com:5000/', true],
    [['mlflow.example.com:5000'], 'https://mlflow.example.com:5001/', false],
    [['mlflow.example.com:5000'], 'https://mlflow.example.com/', false],
    [['mlflow.example.com:443'], 'https://mlflow.example.com/', true],
    [['mlflow.example.com:50*'], 'https://mlflow.example.com:5099/', true],
    [['mlflow.example.com'], 'https://mlflow.example.com:8443/', true],
    [['[::1]'], 'http://[::1]:5000/', true],
    [['[::1]:5000'], 'http://[::1]:5000/', true],
    [['[::1]:5000'], 'http://[::1]:5001/', false],
    [['::1'], 'http://[::1]:5001/', true],
    [['[fd00::*]'], 'https://[fd00::12]/', true],
    [['127.0.0.1'], 'http://127.0.0.1:5000/', true],
    [['127.0.0.1'], 'http://127.0.0.10:5000/', false],
    [['a.test', 'mlflow.example.com'], 'https://mlflow.example.com/', true],
    [['*'], 'https://anything.example/', true],
  ];
  for (const [hosts, url, allowed] of table) {
    it(`${hosts.join(',')} ${allowed ? 'allows' : 'refuses'} ${url}`, () => {
      const d = new HostPolicy({ allowedHosts: hosts }).check(url);
      assert.equal(d.allowed, allowed, JSON.stringify(d));
      if (!d.allowed) assert.equal(d.reason, 'not-allowed');
    });
  }

  it('refuses plain http to a non-loopback host unless allowed', () => {
    const p = new HostPolicy({ allowedHosts: ['mlflow.example.com'] });
    const d = p.check('http://mlflow.example.com/');
    assert.equal(d.allowed, false);
    assert.equal(!d.allowed && d.reason, 'insecure');
    assert.equal(
      new HostPolicy({ allowedHosts: ['mlflow.example.com'], allowInsecureHttp: true }).check(
        'http://mlflow.example.com/',
      ).allowed,
      true,
    );
    assert.equal(new HostPolicy().check('http://localhost:5000/').allowed, true);
    assert.equal(new HostPolicy().check('http://10.0.0.1:5000/').allowed, false);
    assert.equal(new HostPolicy().check('https://10.0.0.1:5000/').allowed, true);
    assert.equal(new HostPolicy().check('ftp://x/').allowed, false);
  });

  it('strict mode refuses an empty allowlist', () => {
    assert.throws(() => new HostPolicy({ strict: true }), HostPolicyError);
    assert.throws(() => new HostPolicy({ strict: true, allowedHosts: [' '] }), HostPolicyError);
    assert.ok(new HostPolicy({ strict: true, allowedHosts: ['a.test'] }));
  });

  it('knows loopback hosts', () => {
    for (const h of [
      'localhost',
      'a.localhost',
      '127.0.0.1',
      '127.1.2.3',
      '::1',
      '[::1]',
      '::ffff:127.0.0.1',
    ])
      assert.ok(isLoopback(h), h);
    for (const h of ['10.0.0.1', 'localhost.evil.test', '128.0.0.1', '::2']) assert.ok(!isLoopback(h), h);
  });
});
