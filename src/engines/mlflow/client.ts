import { Agent, type Dispatcher, request } from 'undici';

/**
 * The few MLflow REST calls the engine makes, with Basic credentials per call. Only transport and
 * wire format live here; what an answer means for Custody is the engine's business. Nothing here
 * logs, and no error message carries a password (the server's own message is scrubbed of every
 * secret the request carried before it is kept).
 */

export interface BasicCredentials {
  username: string;
  password: string;
}

export interface MlflowClientOptions {
  /** Normalized tracking URI without a trailing slash. */
  baseUrl: string;
  caPem?: string;
  insecureTls: boolean;
  connectTimeoutMs?: number;
  requestTimeoutMs?: number;
}

/** The server could not be reached, or did not answer in time (no HTTP status). */
export class MlflowUnreachableError extends Error {
  override readonly name = 'MlflowUnreachableError';
  constructor(
    readonly reason: string,
    readonly tls: boolean,
  ) {
    super(`MLflow is unreachable (${reason})`);
  }
}

/** The server answered with a non-2xx status. */
export class MlflowApiError extends Error {
  override readonly name = 'MlflowApiError';
  constructor(
    readonly status: number,
    /** MLflow's `error_code` when the body was an MLflow JSON error (absent for e.g. a route 404). */
    readonly errorCode: string | undefined,
    /** The server's message, first line, scrubbed of the request's secrets, at most 300 chars. */
    readonly detail: string,
  ) {
    super(`MLflow answered HTTP ${status}${errorCode ? ` ${errorCode}` : ''}${detail ? `: ${detail}` : ''}`);
  }
}

const MAX_BODY_BYTES = 1024 * 1024;
const TLS_CODES = /CERT|SELF_SIGNED|TLS|SSL|UNABLE_TO_(VERIFY|GET)|ERR_SSL/i;

export class MlflowClient {
  private readonly agent: Agent;
  private readonly requestTimeoutMs: number;

  constructor(private readonly opts: MlflowClientOptions) {
    const connectTimeout = opts.connectTimeoutMs ?? 5_000;
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 20_000;
    this.agent = new Agent({
      connect: {
        timeout: connectTimeout,
        ...(opts.caPem ? { ca: opts.caPem } : {}),
        rejectUnauthorized: !opts.insecureTls,
      },
      headersTimeout: this.requestTimeoutMs,
      bodyTimeout: this.requestTimeoutMs,
      keepAliveTimeout: 4_000,
      connections: 8,
    });
  }

  /**
   * `path` is relative to `<tracking_uri>/api/`, e.g. `2.0/mlflow/users/create`. A body is sent as
   * JSON with `Content-Type: application/json` exactly (MLflow 3.12 and older compare the header
   * verbatim); DELETE carries its parameters in such a body too. Redirects are not followed.
   */
  async call(
    method: Dispatcher.HttpMethod,
    path: string,
    auth: BasicCredentials,
    opts: { query?: Record<string, string>; body?: Record<string, unknown>; secrets?: string[] } = {},
  ): Promise<unknown> {
    const url = new URL(`${this.opts.baseUrl}/api/${path}`);
    for (const [k, v] of Object.entries(opts.query ?? {})) url.searchParams.set(k, v);
    const headers: Record<string, string> = {
      accept: 'application/json',
      authorization: `Basic ${Buffer.from(`${auth.username}:${auth.password}`, 'utf8').toString('base64')}`,
    };
    let body: string | undefined;
    if (opts.body !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(opts.body);
    }
    const secrets = [auth.password, ...(opts.secrets ?? [])].filter((s) => s.length >= 4);

    let res: Dispatcher.ResponseData;
    try {
      res = await request(url, {
        method,
        headers,
        body,
        dispatcher: this.agent,
        signal: AbortSignal.timeout(this.requestTimeoutMs),
      });
    } catch (err) {
      throw unreachable(err);
    }
    let text: string;
    try {
      text = await readLimited(res.body);
    } catch (err) {
      throw err instanceof MlflowApiError ? err : unreachable(err);
    }
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : {};
    } catch {
      json = undefined;
    }
    if (res.statusCode >= 200 && res.statusCode < 300) {
      if (json === undefined) throw new MlflowApiError(res.statusCode, undefined, 'the answer was not JSON');
      return json;
    }
    const errorCode =
      json && typeof json === 'object' && typeof (json as { error_code?: unknown }).error_code === 'string'
        ? (json as { error_code: string }).error_code
        : undefined;
    const message =
      errorCode && typeof (json as { message?: unknown }).message === 'string'
        ? (json as { message: string }).message
        : // A non-JSON answer (a route 404's HTML page, a proxy's error page): too noisy to keep.
          res.statusCode === 401 || res.statusCode === 403 || /^\s*</.test(text)
          ? ''
          : text;
    throw new MlflowApiError(res.statusCode, errorCode, scrub(message, secrets));
  }

  async close(): Promise<void> {
    await this.agent.close().catch(() => {});
  }
}

async function readLimited(body: Dispatcher.ResponseData['body']): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) {
      body.destroy();
      throw new MlflowApiError(502, undefined, `the answer was larger than ${MAX_BODY_BYTES} bytes`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function unreachable(err: unknown): MlflowUnreachableError {
  const e = err as Error & { code?: string; cause?: { code?: string } };
  const code = e.code ?? e.cause?.code;
  if (e.name === 'TimeoutError' || e.name === 'AbortError' || /TIMEOUT/i.test(code ?? '')) {
    return new MlflowUnreachableError('timed out', false);
  }
  const reason = code ?? e.name ?? 'network error';
  return new MlflowUnreachableError(
    reason,
    TLS_CODES.test(reason) || /certificate|tls|ssl/i.test(e.message ?? ''),
  );
}

/** First line only, no SQL echo (MLflow appends the failed statement and its parameters), no secrets. */
export function scrub(message: string, secrets: string[]): string {
  let m = message;
  for (const s of secrets) m = m.split(s).join('[redacted]');
  m = m.split('\n')[0] ?? '';
  const cut = m.indexOf(' Error: (');
  if (cut >= 0) m = m.slice(0, cut);
  // biome-ignore lint/suspicious/noControlCharactersInRegex: replacing control characters is the point
  m = m.replace(/[\u0000-\u001f\u007f]/g, ' ').trim();
  return m.length > 300 ? `${m.slice(0, 300)}…` : m;
}
