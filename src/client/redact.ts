/**
 * The one redaction utility of the client (every log line and error message goes through it).
 *
 * Masks: `Bearer …` / `Basic …` values, JWT-like strings, `cst_…` tokens (and the other Custody
 * credential prefixes `sid_`, `rid_`), JSON fields whose name says token/password/secret/key/
 * credential, `key=value` pairs of the same names, and user info in URLs. Known values (e.g. the
 * secrets a process holds) can be masked too.
 *
 * The CLI prints its own messages and hints through it with `pairs: false`: they show command
 * syntax such as `--secret DB_PASSWORD=prod/db/password` on purpose, and only text that came from
 * elsewhere (a library's error) gets the `name=value` rule.
 */

const SENSITIVE_NAME =
  '[A-Za-z0-9_.-]*(?:token|password|passwd|pwd|secret|key|credential|authorization)[A-Za-z0-9_.-]*';

const CREDENTIAL_RULES: [RegExp, string][] = [
  // scheme://user:pass@host → scheme://[redacted]@host
  [/\b([a-z][a-z0-9+.-]*:\/\/)[^/\s:@"'<>]+(?::[^/\s@"'<>]*)?@/gi, '$1[redacted]@'],
  // "password": "…", "api_key": 123 (JSON)
  [
    new RegExp(`("${SENSITIVE_NAME}"\\s*:\\s*)(?:"(?:[^"\\\\]|\\\\.)*"|-?\\d[\\d.eE+-]*)`, 'gi'),
    '$1"[redacted]"',
  ],
  // The header form (`Bearer x`, `BASIC x`) masks whatever follows; lower case is usually prose
  // ("must be bearer or basic"), so there only a token-like word (6+ characters with a digit,
  // capital or symbol) is masked.
  [/\b(Bearer|Basic|BEARER|BASIC)\s+(?!\[redacted\])[A-Za-z0-9._~+/=-]+/g, '$1 [redacted]'],
  [/\b(bearer|basic)\s+(?!\[redacted\])(?=[a-z]*[0-9A-Z._~+/=-])[A-Za-z0-9._~+/=-]{6,}/g, '$1 [redacted]'],
  [/\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/g, '[redacted-jwt]'],
  [/\b(cst|sid|rid)_[A-Za-z0-9_-]+/g, '$1_[redacted]'],
];

// password=… in query strings, env lines, logfmt
const PAIR_RULE: [RegExp, string] = [
  new RegExp(`\\b(${SENSITIVE_NAME})=(?!\\[redacted\\])[^\\s&;,"']+`, 'gi'),
  '$1=[redacted]',
];

export interface RedactOptions {
  /** Also mask the value of `password=…`-style pairs (default true). */
  pairs?: boolean;
}

/** Masks credentials in `text`; also every occurrence of the `known` values (longer than 3 chars). */
export function redact(text: string, known: Iterable<string> = [], opts: RedactOptions = {}): string {
  let out = text;
  const values = [...known].filter((v) => v.length > 3).sort((a, b) => b.length - a.length);
  for (const v of values) out = out.split(v).join('[redacted]');
  if (opts.pairs !== false) out = out.replace(PAIR_RULE[0], PAIR_RULE[1]);
  for (const [re, to] of CREDENTIAL_RULES) out = out.replace(re, to);
  return out;
}

/** A redacted one-line description of an error, safe for logs. */
export function describeError(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return redact(
      `${typeof code === 'string' && !err.message.includes(code) ? `${code}: ` : ''}${err.message}`,
    );
  }
  return redact(String(err));
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFn = (level: LogLevel, message: string) => void;

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** Wraps a log sink so that every line is redacted and lines below `level` are dropped. */
export function redactingLogger(sink: LogFn | undefined, level: LogLevel = 'info'): LogFn {
  if (!sink) return () => {};
  return (l, message) => {
    if (ORDER[l] >= ORDER[level]) sink(l, redact(message));
  };
}
