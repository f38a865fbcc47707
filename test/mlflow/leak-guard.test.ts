import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { findLeak, isGuarded, redactLeaks, secretForms } from '../../src/client/mlflow/leak-guard.js';

describe('MLflow leak guard', () => {
  const secret = 'sup3r/secret+value "x"';
  const forms = secretForms(secret);
  const cases: [string, string][] = [
    ['plain', secret],
    ['url-encoded', encodeURIComponent(secret)],
    ['json-escaped', JSON.stringify(secret).slice(1, -1)],
    ['base64', Buffer.from(secret).toString('base64')],
    ['base64 shifted 1', Buffer.from(`a${secret}`).toString('base64')],
    ['base64 shifted 2', Buffer.from(`ab${secret}`).toString('base64')],
    ['base64 embedded', Buffer.from(`Authorization: ${secret} and more`).toString('base64')],
  ];
  for (const [name, text] of cases) {
    it(`finds the ${name} form`, () => {
      assert.deepEqual(findLeak({ run_id: 'r', key: 'k', value: `pre ${text} post` }, forms), {
        field: 'value',
      });
    });
  }
  it('names nested fields and ignores clean bodies', () => {
    assert.deepEqual(
      findLeak(
        {
          params: [
            { key: 'a', value: 'b' },
            { key: 'c', value: secret },
          ],
        },
        forms,
      ),
      {
        field: 'params[1].value',
      },
    );
    assert.equal(findLeak({ key: 'a', value: 'nothing here' }, forms), undefined);
  });
  it('redacts', () => {
    const r = redactLeaks({ value: `x${secret}y` }, forms);
    assert.ok(r.changed);
    assert.deepEqual(r.body, { value: 'x<redacted>y' });
  });
  it('guards the log endpoints only', () => {
    for (const p of [
      '/api/2.0/mlflow/runs/log-parameter',
      '/ajax-api/2.0/mlflow/runs/log-metric',
      '/api/2.0/mlflow/runs/set-tag',
      '/api/2.0/mlflow/runs/log-batch',
      '/api/2.0/mlflow/traces',
      '/api/2.0/mlflow/traces/abc/tags',
      '/api/3.0/mlflow/traces',
    ])
      assert.ok(isGuarded('POST', p), p);
    assert.ok(!isGuarded('GET', '/api/2.0/mlflow/runs/log-parameter'));
    assert.ok(!isGuarded('POST', '/api/2.0/mlflow/runs/create'));
    assert.ok(!isGuarded('PUT', '/api/2.0/mlflow-artifacts/artifacts/x'));
  });
  it('skips values shorter than the masking minimum', () => {
    assert.deepEqual(secretForms('abc'), []);
    assert.deepEqual(secretForms('1234567'), []);
  });
  it('finds a non-ASCII secret raw, \\u-escaped and base64-encoded (the masking engine forms)', () => {
    const s = 'pässwörd-ünïcode';
    const f = secretForms(s);
    assert.ok(findLeak({ value: `a ${s} b` }, f));
    const escaped = JSON.stringify(s)
      .slice(1, -1)
      .replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
    assert.ok(findLeak({ value: escaped }, f), escaped);
    assert.ok(findLeak({ value: Buffer.from(`x${s}`).toString('base64') }, f));
  });
});
