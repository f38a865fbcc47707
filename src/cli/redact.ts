/**
 * Masks credentials in text printed by the CLI: `cst_…` tokens and `Bearer …` values. Every string
 * that reaches an error line goes through here, so a token echoed back by a library or a proxy
 * never lands in a terminal scrollback or a CI log.
 */
export function redact(text: string): string {
  return text
    .replace(/\bcst_[A-Za-z0-9_-]+/g, 'cst_[redacted]')
    .replace(/\b(Bearer)\s+[^\s"',;]+/gi, '$1 [redacted]');
}
