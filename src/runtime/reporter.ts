import { redact } from '../client/redact.js';

/**
 * Where `custody run` says things about itself: stderr, one line each, so the child's stdout stays
 * its own. `table` format: `custody run: warning: <message> (<CODE>)`; `json`: one JSON object per
 * line. Every line goes through the client's redaction (credential shapes; the
 * messages show `NAME=value` command syntax on purpose).
 */
export interface Reporter {
  warn(code: string, message: string): void;
  note(message: string): void;
}

export function stderrReporter(
  format: 'table' | 'json',
  out: { write(s: string): unknown } = process.stderr,
): Reporter {
  const line = (level: 'warning' | 'note', code: string | undefined, message: string) => {
    const m = redact(message, [], { pairs: false });
    if (format === 'json')
      out.write(`${JSON.stringify({ custody_run: { level, ...(code ? { code } : {}), message: m } })}\n`);
    else out.write(`custody run: ${level === 'warning' ? 'warning: ' : ''}${m}${code ? ` (${code})` : ''}\n`);
  };
  return {
    warn: (code, message) => line('warning', code, message),
    note: (message) => line('note', undefined, message),
  };
}
