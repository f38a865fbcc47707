import { setTimeout as sleep } from 'node:timers/promises';
import { statusOf } from './errors.js';

/**
 * Retries with exponential backoff and full jitter, on network errors, 429 and 5xx only — never on
 * 400/401/403/404 or any other 4xx (a real denial is not hammered). `Retry-After` is honoured (capped).
 */
export interface RetryOptions {
  /** Total attempts, the first included (default 3). */
  attempts: number;
  /** Backoff base in ms (default 100): attempt n waits a random time up to base·2ⁿ. */
  baseMs: number;
  /** Cap of one backoff in ms (default 2000). */
  maxMs: number;
  /** Cap of a server-requested Retry-After wait in ms (default 30 000). */
  maxRetryAfterMs: number;
  /** Called before each wait (for logs). */
  onRetry?: (info: { attempt: number; delayMs: number; reason: string }) => void;
}

export const DEFAULT_RETRY: RetryOptions = { attempts: 3, baseMs: 100, maxMs: 2000, maxRetryAfterMs: 30_000 };

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'ENOTCONN',
  'ECONNABORTED',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_CLOSED',
]);

export const isRetryableStatus = (status: number) => status === 429 || (status >= 500 && status <= 599);

/** True for connection-level failures (refused, reset, timeouts), looking through `cause`. */
export function isNetworkError(err: unknown): boolean {
  for (let e = err, depth = 0; e && typeof e === 'object' && depth < 5; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && NETWORK_CODES.has(code)) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

/** Whether an error is worth another attempt: network errors, 429 and 5xx. */
export function isRetryable(err: unknown): boolean {
  const status = statusOf(err);
  if (status !== undefined) return isRetryableStatus(status);
  return isNetworkError(err);
}

/** `Retry-After` (delta seconds or an HTTP date) in ms; undefined when absent or invalid. */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (!v) return undefined;
  if (/^\s*\d+\s*$/.test(v)) return Number(v) * 1000;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : Math.max(0, t - now);
}

/** The wait before attempt `attempt + 1` (attempt counts from 1): full jitter, capped. */
export function backoffMs(attempt: number, o: Pick<RetryOptions, 'baseMs' | 'maxMs'>, rand = Math.random) {
  const ceiling = Math.min(o.maxMs, o.baseMs * 2 ** (attempt - 1));
  return Math.round(ceiling / 2 + (rand() * ceiling) / 2);
}

/** Runs `op` until it succeeds, fails with a non-retryable error, or attempts run out. */
export async function withRetry<T>(
  op: (attempt: number) => Promise<T>,
  options: Partial<RetryOptions> = {},
): Promise<T> {
  const o = { ...DEFAULT_RETRY, ...options };
  for (let attempt = 1; ; attempt++) {
    try {
      return await op(attempt);
    } catch (err) {
      if (attempt >= o.attempts || !isRetryable(err)) throw err;
      const asked = (err as { retryAfterMs?: unknown }).retryAfterMs;
      const delayMs = typeof asked === 'number' ? Math.min(asked, o.maxRetryAfterMs) : backoffMs(attempt, o);
      const status = statusOf(err);
      o.onRetry?.({ attempt, delayMs, reason: status ? `HTTP ${status}` : String((err as Error).message) });
      await sleep(delayMs);
    }
  }
}
