import type { Dispatcher } from 'undici';
import { type HostPolicy, isLoopback } from './allowlist.js';
import type { Credential } from './credentials.js';
import type { CredentialSource } from './source.js';

export interface AuthOptions {
  source: CredentialSource;
  /** Where credentials may go; without one every http(s) host gets them, https enforced for non-loopback. */
  policy?: HostPolicy;
  /** Maximum redirects followed (default 10). */
  maxRedirects?: number;
  /** The fetch to use (default the global one). */
  fetch?: typeof fetch;
}

export class MlflowAuthError extends Error {
  constructor(message: string, opts?: { cause?: unknown }) {
    super(message, opts);
    this.name = 'MlflowAuthError';
  }
}

const hostOf = (u: URL) => `${u.protocol}//${u.host.toLowerCase()}`;

type Replayable = string | Uint8Array | ArrayBuffer | URLSearchParams | null | undefined;
function replayable(body: unknown): body is Replayable {
  return (
    body === undefined ||
    body === null ||
    typeof body === 'string' ||
    body instanceof Uint8Array ||
    body instanceof ArrayBuffer ||
    body instanceof URLSearchParams
  );
}

/**
 * What to send to `url`: the credential when the policy allows the host, nothing otherwise. A plain
 * http URL to a non-loopback allowed host is an error (credentials are never silently dropped there).
 */
async function credentialFor(url: URL, opts: AuthOptions, allowed: boolean): Promise<Credential | undefined> {
  if (!allowed) return undefined;
  const d = opts.policy?.check(url) ?? { allowed: true };
  if (!d.allowed) {
    if (d.reason === 'insecure' || d.reason === 'bad-url') throw new MlflowAuthError(d.message);
    return undefined;
  }
  if (!opts.policy && url.protocol === 'http:') {
    if (!isLoopback(url.hostname)) {
      throw new MlflowAuthError(`credentials are not sent over plain http to ${url.hostname}`);
    }
  }
  try {
    return await opts.source.get();
  } catch (err) {
    // Never degrade to an unauthenticated request.
    throw new MlflowAuthError(`could not get the MLflow credential: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/**
 * `fetch` with MLflow credentials: added only for allowed hosts, redirects followed here (credentials
 * and any caller-set auth header are dropped once a redirect leaves the original host), and on a 401
 * the cached credential is dropped, refetched and the request sent once more. A 403 is returned as is.
 */
export async function fetchWithAuth(
  input: string | URL,
  init: RequestInit = {},
  opts: AuthOptions,
): Promise<Response> {
  const doFetch = opts.fetch ?? fetch;
  const maxRedirects = opts.maxRedirects ?? 10;
  let url = new URL(String(input));
  const origin = hostOf(url);
  let method = (init.method ?? 'GET').toUpperCase();
  let body = init.body;
  const baseHeaders = new Headers(init.headers);
  let sameHost = true;
  let retried = false;
  for (let hop = 0; ; ) {
    const cred = await credentialFor(url, opts, sameHost);
    const headers = new Headers(baseHeaders);
    if (!sameHost) {
      headers.delete('authorization');
      headers.delete('cookie');
      headers.delete('proxy-authorization');
    }
    if (cred) headers.set(cred.header, cred.value);
    const res = await doFetch(url, { ...init, method, body, headers, redirect: 'manual' });
    if (res.status === 401 && cred && !retried && replayable(body)) {
      retried = true;
      await res.body?.cancel().catch(() => {});
      opts.source.invalidate();
      continue;
    }
    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && location && init.redirect !== 'manual') {
      if (init.redirect === 'error') throw new MlflowAuthError(`redirected to ${location}`);
      if (++hop > maxRedirects) throw new MlflowAuthError(`more than ${maxRedirects} redirects`);
      const next = new URL(location, url);
      if ((res.status === 307 || res.status === 308) && !replayable(body)) return res;
      if (res.status === 303 || ((res.status === 301 || res.status === 302) && method === 'POST')) {
        if (method !== 'HEAD') method = 'GET';
        body = undefined;
        baseHeaders.delete('content-type');
        baseHeaders.delete('content-length');
      }
      await res.body?.cancel().catch(() => {});
      if (hostOf(next) !== origin) sameHost = false;
      url = next;
      continue;
    }
    return res;
  }
}

/** A `fetch` bound to one credential source and policy. */
export function authenticatedFetch(opts: AuthOptions): typeof fetch {
  return ((input: string | URL | Request, init?: RequestInit) =>
    fetchWithAuth(input instanceof Request ? input.url : input, init, opts)) as typeof fetch;
}

function headerRecord(h: Dispatcher.DispatchOptions['headers']): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  if (!h) return out;
  if (Array.isArray(h)) {
    for (let i = 0; i + 1 < h.length; i += 2) out[String(h[i]).toLowerCase()] = h[i + 1] as string;
    return out;
  }
  const entries =
    typeof (h as any)[Symbol.iterator] === 'function'
      ? [...(h as Iterable<[string, string]>)]
      : Object.entries(h as Record<string, string | string[] | undefined>);
  for (const [k, v] of entries) if (v !== undefined) out[k.toLowerCase()] = v as string | string[];
  return out;
}

const fakeController = {
  abort() {},
  pause() {},
  resume() {},
  paused: false,
  aborted: false,
  reason: null,
  rawHeaders: [],
  rawTrailers: [],
} as unknown as Dispatcher.DispatchController;

/**
 * An undici interceptor adding MLflow credentials to requests for allowed hosts (other requests are
 * sent as the caller built them), with one retry after a 401 (replayable bodies only).
 * Redirects are not followed (undici's default); each hop a caller follows is checked on its own.
 */
export function mlflowAuthInterceptor(opts: AuthOptions): Dispatcher.DispatcherComposeInterceptor {
  return (dispatch) => (dopts, handler) => {
    const url = new URL(dopts.path, dopts.origin ?? 'http://localhost');
    const canRetry = replayable(dopts.body);
    let retried = false;
    let started = false;
    const attempt = async () => {
      const headers = headerRecord(dopts.headers);
      const cred = await credentialFor(url, opts, true);
      if (cred) headers[cred.header.toLowerCase()] = cred.value;
      let swallow = false;
      const h: Dispatcher.DispatchHandler = {
        onRequestStart(c, ctx) {
          if (!started) {
            started = true;
            handler.onRequestStart?.(c, ctx);
          }
        },
        onRequestUpgrade(c, s, hd, sock) {
          handler.onRequestUpgrade?.(c, s, hd, sock);
        },
        onResponseStart(c, status, hd, msg) {
          if (status === 401 && cred && !retried && canRetry) {
            swallow = true;
            return;
          }
          handler.onResponseStart?.(c, status, hd, msg);
        },
        onResponseData(c, chunk) {
          if (!swallow) handler.onResponseData?.(c, chunk);
        },
        onResponseEnd(c, trailers) {
          if (!swallow) return handler.onResponseEnd?.(c, trailers);
          retried = true;
          opts.source.invalidate();
          run();
        },
        onResponseError(c, err) {
          handler.onResponseError?.(c, err);
        },
      };
      dispatch({ ...dopts, headers }, h);
    };
    const run = () => {
      attempt().catch((err) => handler.onResponseError?.(fakeController, err));
    };
    run();
    return true;
  };
}

/** `dispatcher.compose(mlflowAuthInterceptor(opts))`. */
export function authDispatcher(inner: Dispatcher, opts: AuthOptions): Dispatcher {
  return inner.compose(mlflowAuthInterceptor(opts));
}
