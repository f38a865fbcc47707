import { redact } from './redact.js';

/**
 * An error from the client or from the broker's `{"error":{code,message,hint}}` body. Messages are
 * redacted; a secret value is never put in one.
 */
export class CustodyClientError extends Error {
  readonly code: string;
  readonly status: number | undefined;
  readonly hint: string | undefined;
  /** Milliseconds the server asked us to wait (Retry-After), when it said. */
  readonly retryAfterMs: number | undefined;

  constructor(
    code: string,
    message: string,
    opts: { status?: number; hint?: string; retryAfterMs?: number; cause?: unknown } = {},
  ) {
    super(redact(message), opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'CustodyClientError';
    this.code = code;
    this.status = opts.status;
    this.hint = opts.hint === undefined ? undefined : redact(opts.hint);
    this.retryAfterMs = opts.retryAfterMs;
  }

  override toString(): string {
    const where = this.status ? ` (HTTP ${this.status})` : '';
    return `${this.name} ${this.code}${where}: ${this.message}${this.hint ? ` — ${this.hint}` : ''}`;
  }
}

/** Builds the error for a non-2xx broker reply (`{"error":{code,message,hint}}`, or anything else). */
export function errorFromReply(status: number, body: unknown, what: string, retryAfterMs?: number) {
  const e = (body as { error?: { code?: unknown; message?: unknown; hint?: unknown } } | null)?.error;
  if (e && typeof e === 'object') {
    return new CustodyClientError(
      typeof e.code === 'string' ? e.code : `Http${status}`,
      `${what}: ${typeof e.message === 'string' ? e.message : `HTTP ${status}`}`,
      { status, hint: typeof e.hint === 'string' ? e.hint : undefined, retryAfterMs },
    );
  }
  return new CustodyClientError(`Http${status}`, `${what}: HTTP ${status}`, { status, retryAfterMs });
}

/** The HTTP status an error carries, if any (ours, the AWS SDK's, the Azure SDK's). */
export function statusOf(err: unknown): number | undefined {
  if (!err || typeof err !== 'object') return undefined;
  const e = err as { status?: unknown; statusCode?: unknown; $metadata?: { httpStatusCode?: unknown } };
  for (const v of [e.status, e.statusCode, e.$metadata?.httpStatusCode]) if (typeof v === 'number') return v;
  return undefined;
}
