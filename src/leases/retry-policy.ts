/** Exponential backoff with jitter for failed revocations: 2s, 4s, 8s… capped at 5 minutes, ±50%. */
export function nextAttemptDelay(attempts: number, random = Math.random): number {
  const base = Math.min(300_000, 1000 * 2 ** Math.min(attempts, 20));
  return Math.round(base * (0.5 + random()));
}

/**
 * A short, secret-free description of a backend failure for the lease record: the driver's error
 * code and message with anything URL- or password-like removed.
 */
export function sanitizeError(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown };
  const code = typeof e?.code === 'string' ? `${e.code}: ` : '';
  const message = typeof e?.message === 'string' ? e.message : String(err);
  return `${code}${message}`
    .replace(/[a-z][a-z0-9+.-]*:\/\/[^\s]+/gi, '<url>')
    .replace(/(password|secret|token)\s*[=:]\s*\S+/gi, '$1=<redacted>')
    .slice(0, 300);
}
