import { readFileSync } from 'node:fs';
import { Agent, type Dispatcher, request } from 'undici';
import { CustodyClientError } from './errors.js';
import { isRetryableStatus, parseRetryAfter, type RetryOptions, withRetry } from './retry.js';

/** Hop-by-hop headers (RFC 9110 §7.6.1) and `host`: what a proxy never forwards as it is. */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
]);

export interface HttpReply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: any;
}

/** A dedicated undici Agent that trusts `caCert` (PEM) or the file `caCertFile`, if given. */
export function createAgent(opts: { caCert?: string; caCertFile?: string } = {}): Agent {
  const ca = opts.caCert ?? (opts.caCertFile ? readFileSync(opts.caCertFile, 'utf8') : undefined);
  return new Agent({ connect: ca ? { ca } : {}, headersTimeout: 30_000, bodyTimeout: 30_000 });
}

/** A retryable HTTP status, thrown inside the retry loop and unwrapped after it. */
class RetryableReply extends Error {
  constructor(
    readonly reply: HttpReply,
    readonly status: number,
    readonly retryAfterMs: number | undefined,
  ) {
    super(`HTTP ${status}`);
  }
}

/**
 * Sends one JSON request (with retries on network errors, 429 and 5xx) and returns the last reply,
 * whatever its status. Network failures that survive the retries become `CustodyClientError`
 * `NetworkError` (no URL query, no header values in the message).
 */
export async function sendJson(
  url: string,
  o: {
    method?: string;
    headers?: Record<string, string>;
    body?: unknown;
    dispatcher?: Dispatcher;
    retry?: Partial<RetryOptions>;
  },
): Promise<HttpReply> {
  const headers: Record<string, string> = { accept: 'application/json', ...(o.headers ?? {}) };
  const body = o.body === undefined ? undefined : JSON.stringify(o.body);
  if (body !== undefined) headers['content-type'] = 'application/json';
  try {
    return await withRetry(async () => {
      const res = await request(url, {
        method: (o.method ?? 'GET') as 'GET',
        headers,
        body,
        dispatcher: o.dispatcher,
      });
      const text = await res.body.text();
      let parsed: unknown = text;
      try {
        parsed = text ? JSON.parse(text) : null;
      } catch {}
      const reply = { status: res.statusCode, headers: res.headers, body: parsed };
      if (isRetryableStatus(res.statusCode)) {
        throw new RetryableReply(reply, res.statusCode, parseRetryAfter(res.headers['retry-after']));
      }
      return reply;
    }, o.retry);
  } catch (err) {
    if (err instanceof RetryableReply) return err.reply;
    const u = new URL(url);
    throw new CustodyClientError(
      'NetworkError',
      `${o.method ?? 'GET'} ${u.origin}${u.pathname} failed: ${(err as Error).message}`,
      { cause: err, hint: 'check the address, the network and TLS trust (CA certificate)' },
    );
  }
}
