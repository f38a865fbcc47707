import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Output, toErrorBody } from '../../src/cli/output.js';
import { stderrReporter } from '../../src/runtime/reporter.js';

// The CLI prints through the client's one redaction utility (test/client/redact.test.ts covers its
// rules); these tests pin what the CLI's own lines keep and what they mask.
describe('CLI error output', () => {
  const capture = () => {
    let text = '';
    return { sink: { write: (s: string) => (text += s) }, text: () => text };
  };

  it('errors printed by the CLI are redacted in both formats', () => {
    const c = capture();
    new Output('table', c.sink, c.sink).error({
      code: 'X',
      message: 'got cst_secret123 from https://admin:hunter2@db.example.com/x',
      hint: 'Bearer cst_abc',
    });
    assert.equal(
      c.text(),
      'error: got cst_[redacted] from https://[redacted]@db.example.com/x (X)\nhint: Bearer [redacted]\n',
    );
    const j = capture();
    new Output('json', j.sink, j.sink).error({ code: 'X', message: 'cst_secret123' });
    assert.deepEqual(JSON.parse(j.text()), { error: { code: 'X', message: 'cst_[redacted]' } });
  });

  it('keeps NAME=value syntax in its own messages and hints', () => {
    const c = capture();
    new Output('table', c.sink, c.sink).error({
      code: 'BadSpec',
      message: '--secret DB_PASSWORD=prod/db/password: no such environment',
      hint: 'Example: custody kv put prod/db password=@./password.txt',
    });
    assert.match(c.text(), /DB_PASSWORD=prod\/db\/password/);
    assert.match(c.text(), /password=@\.\/password\.txt/);
    const r = capture();
    stderrReporter('table', r.sink).warn('W', 'set MLFLOW_SECRETS_AUTH_ENABLE=vault and token cst_x1');
    assert.equal(
      r.text(),
      'custody run: warning: set MLFLOW_SECRETS_AUTH_ENABLE=vault and token cst_[redacted] (W)\n',
    );
  });

  it("masks pairs in a library's error text", () => {
    const body = toErrorBody(new Error('connect failed: password=hunter2 token=abc123'));
    assert.equal(body.code, 'InternalError');
    assert.doesNotMatch(body.message, /hunter2|abc123/);
  });
});
