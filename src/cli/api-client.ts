import { readFile } from 'node:fs/promises';
import { Agent, request } from 'undici';
import { redact } from '../client/redact.js';
import { type ClientConfig, caHint, missingTokenError } from './config.js';
import { CliError } from './errors.js';

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface CallOptions {
  body?: unknown;
  query?: Record<string, string | number | undefined>;
  /** Send the token (default). Anonymous calls: health, seal status, init, unseal. */
  auth?: boolean;
  /** Statuses ≥ 400 that are answers, not errors (health answers 501/503). */
  accept?: number[];
}

export interface ApiResponse<T> {
  status: number;
  body: T;
}

const CONNECT_TIMEOUT_MS = 10_000;
const RESPONSE_TIMEOUT_MS = 60_000;

const TLS_TRUST_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
]);

/** Encodes `db/password` segment by segment so `/` keeps separating path segments. */
export const pathOf = (name: string) => name.split('/').map(encodeURIComponent).join('/');

/** The native /v1 API over undici. One instance per command; close() releases its sockets. */
export class ApiClient {
  private constructor(
    readonly config: ClientConfig,
    private readonly dispatcher: Agent,
  ) {}

  static async create(config: ClientConfig): Promise<ApiClient> {
    let ca: string | undefined;
    if (config.caCertPath) {
      try {
        ca = await readFile(config.caCertPath, 'utf8');
      } catch (err) {
        throw new CliError(
          'CaCertUnreadable',
          `Cannot read the CA certificate ${config.caCertPath} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
          "Point CUSTODY_CACERT (or --ca-cert) at the broker's <data-dir>/tls/ca.pem.",
        );
      }
    }
    const dispatcher = new Agent({
      connect: { ...(ca ? { ca } : {}), timeout: CONNECT_TIMEOUT_MS },
      headersTimeout: RESPONSE_TIMEOUT_MS,
      bodyTimeout: RESPONSE_TIMEOUT_MS,
    });
    return new ApiClient(config, dispatcher);
  }

  async call<T = any>(method: Method, path: string, opts: CallOptions = {}): Promise<ApiResponse<T>> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (opts.auth !== false) {
      if (!this.config.token) throw missingTokenError(this.config);
      headers.authorization = `Bearer ${this.config.token}`;
    }
    let body: string | undefined;
    if (opts.body !== undefined) {
      body = JSON.stringify(opts.body);
      headers['content-type'] = 'application/json';
    }
    const query = opts.query
      ? Object.fromEntries(Object.entries(opts.query).filter(([, v]) => v !== undefined))
      : undefined;
    let status: number;
    let text: string;
    try {
      const res = await request(`${this.config.addr}${path}`, {
        method,
        headers,
        body,
        query,
        dispatcher: this.dispatcher,
      });
      status = res.statusCode;
      text = await res.body.text();
    } catch (err) {
      throw networkError(err, this.config);
    }
    let parsed: any = null;
    if (text) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = text;
      }
    }
    if (status >= 400 && !opts.accept?.includes(status)) {
      const e = parsed?.error;
      if (e && typeof e.code === 'string') {
        throw new CliError(e.code, String(e.message ?? ''), e.hint, 1, status);
      }
      throw new CliError(
        'HttpError',
        `${method} ${path} answered HTTP ${status}`,
        'Is CUSTODY_ADDR a Custody broker?',
        1,
        status,
      );
    }
    return { status, body: parsed as T };
  }

  get<T = any>(path: string, opts?: CallOptions) {
    return this.call<T>('GET', path, opts);
  }

  post<T = any>(path: string, body?: unknown, opts?: CallOptions) {
    return this.call<T>('POST', path, { ...opts, body });
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }
}

function errCode(err: unknown): string | undefined {
  const e = err as { code?: string; cause?: { code?: string }; errors?: { code?: string }[] };
  return e?.code ?? e?.cause?.code ?? e?.errors?.[0]?.code;
}

/** Connection and TLS failures → a code and a hint that says what to do. */
export function networkError(err: unknown, cfg: ClientConfig): CliError {
  const code = errCode(err);
  const where = cfg.addr;
  const running =
    'Is the broker running? Start it with `custody server`, or set CUSTODY_ADDR (or --addr) to its address.';
  if (code === 'ECONNREFUSED') {
    return new CliError('ConnectionRefused', `Cannot connect to ${where}: connection refused`, running);
  }
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    return new CliError(
      'HostNotFound',
      `Cannot resolve the host of ${where}`,
      'Check CUSTODY_ADDR (or --addr).',
    );
  }
  if (code === 'ETIMEDOUT' || code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'EHOSTUNREACH') {
    return new CliError('ConnectTimeout', `Cannot reach ${where} (${code})`, running);
  }
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
    return new CliError('Timeout', `${where} did not answer in time`, 'Check the broker logs, then retry.');
  }
  if (code && TLS_TRUST_CODES.has(code)) {
    return new CliError('TlsUntrusted', `The broker's TLS certificate is not trusted (${code})`, caHint(cfg));
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return new CliError(
      'TlsHostMismatch',
      `The broker's certificate does not cover the host in ${where}`,
      'Use an address the certificate names (localhost, 127.0.0.1), or restart the server with --tls-host <name>.',
    );
  }
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') {
    return new CliError(
      'TlsCertExpired',
      `The broker's certificate is not valid now (${code})`,
      'Restart the broker: it renews its certificate.',
    );
  }
  if (code === 'EPROTO' || code === 'ERR_SSL_WRONG_VERSION_NUMBER') {
    return new CliError(
      'TlsHandshakeFailed',
      `TLS handshake with ${where} failed`,
      'A broker started with --insecure-http speaks plain HTTP: use http:// in CUSTODY_ADDR.',
    );
  }
  if (code === 'UND_ERR_SOCKET' || code === 'ECONNRESET') {
    return new CliError(
      'ConnectionClosed',
      `${where} closed the connection`,
      where.startsWith('http:')
        ? 'The broker speaks HTTPS unless started with --insecure-http: use https:// in CUSTODY_ADDR.'
        : 'Check the broker logs, then retry.',
    );
  }
  const message = err instanceof Error ? err.message : String(err);
  return new CliError('NetworkError', redact(`Request to ${where} failed: ${message}`), running);
}
