/**
 * Where MLflow credentials may go. Patterns are shell-style globs (`*`, `?`, `[abc]`, `[!abc]`) on the
 * lower-cased host name — `*` also matches dots — with an optional `:port` (itself a glob); IPv6
 * literals are written in brackets (`[::1]`, `[::1]:5000`). A pattern matches the whole host, so
 * `mlflow.example.com` never matches `mlflow.example.com.evil.test`.
 */

export interface HostPolicyOptions {
  /** Host globs; undefined or empty = no allowlist (every host, unless `strict`). */
  allowedHosts?: readonly string[];
  /** Allow credentials over plain http to a non-loopback host (default false). */
  allowInsecureHttp?: boolean;
  /** Refuse to run without an allowlist. */
  strict?: boolean;
}

export type HostDecision =
  | { allowed: true }
  | { allowed: false; reason: 'not-allowed' | 'insecure' | 'bad-url'; message: string };

export class HostPolicyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HostPolicyError';
  }
}

interface Pattern {
  text: string;
  host: RegExp;
  port?: RegExp;
}

function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '[') {
      const end = glob.indexOf(']', i + 2);
      if (end < 0) re += '\\[';
      else {
        let body = glob.slice(i + 1, end);
        let neg = false;
        if (body.startsWith('!') || body.startsWith('^')) {
          neg = true;
          body = body.slice(1);
        }
        re += `[${neg ? '^' : ''}${body.replace(/[\\\]^]/g, '\\$&')}]`;
        i = end;
      }
    } else re += c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** Parses one allowlist entry. */
export function parsePattern(raw: string): Pattern {
  const text = raw.trim().toLowerCase();
  if (!text) throw new HostPolicyError('an empty host pattern');
  let host: string;
  let port: string | undefined;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0) throw new HostPolicyError(`"${raw}": unclosed [ of an IPv6 address`);
    host = text.slice(1, close);
    const rest = text.slice(close + 1);
    if (rest) {
      if (!rest.startsWith(':') || rest.length === 1)
        throw new HostPolicyError(`"${raw}": expected [ipv6]:port`);
      port = rest.slice(1);
    }
  } else if ((text.match(/:/g) ?? []).length > 1) {
    host = text; // a bare IPv6 address
  } else {
    const colon = text.indexOf(':');
    host = colon < 0 ? text : text.slice(0, colon);
    port = colon < 0 ? undefined : text.slice(colon + 1);
    if (port === '') throw new HostPolicyError(`"${raw}": empty port`);
  }
  if (!host) throw new HostPolicyError(`"${raw}": empty host`);
  if (port !== undefined && !/^[0-9*?[\]!-]+$/.test(port))
    throw new HostPolicyError(`"${raw}": bad port "${port}"`);
  return {
    text,
    host: globToRegExp(host.replace(/\.$/, '')),
    port: port === undefined ? undefined : globToRegExp(port),
  };
}

/** The normalized host (lower case, no brackets, no trailing dot) and port of a URL. */
export function hostAndPort(url: URL): { host: string; port: string } {
  let host = url.hostname.toLowerCase();
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  host = host.replace(/\.$/, '');
  const port = url.port || (url.protocol === 'https:' ? '443' : url.protocol === 'http:' ? '80' : '');
  return { host, port };
}

/** Loopback: `localhost`, `*.localhost`, 127.0.0.0/8, ::1 (also IPv4-mapped). */
export function isLoopback(host: string): boolean {
  const h = host
    .toLowerCase()
    .replace(/^\[|\]$/g, '')
    .replace(/\.$/, '');
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h)) return true;
  if (h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
  const mapped = /^::ffff:(127\.\d{1,3}\.\d{1,3}\.\d{1,3})$/.exec(h);
  if (mapped) return true;
  if (/^::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}$/.test(h)) return true;
  return false;
}

/** Decides, per URL, whether MLflow credentials may be attached. */
export class HostPolicy {
  private readonly patterns: Pattern[];
  readonly allowInsecureHttp: boolean;
  readonly strict: boolean;

  constructor(opts: HostPolicyOptions = {}) {
    this.patterns = (opts.allowedHosts ?? []).filter((p) => p.trim() !== '').map(parsePattern);
    this.allowInsecureHttp = opts.allowInsecureHttp ?? false;
    this.strict = opts.strict ?? false;
    if (this.strict && this.patterns.length === 0) {
      throw new HostPolicyError(
        'strict mode needs an allowlist: set MLFLOW_SECRETS_ALLOWED_HOSTS (or --allow-host) to the MLflow host',
      );
    }
  }

  get hasAllowlist(): boolean {
    return this.patterns.length > 0;
  }

  get allowedHosts(): string[] {
    return this.patterns.map((p) => p.text);
  }

  /** Whether the host (and port) of `url` is on the allowlist (always true without an allowlist). */
  matches(url: URL | string): boolean {
    const u = typeof url === 'string' ? new URL(url) : url;
    if (!this.hasAllowlist) return true;
    const { host, port } = hostAndPort(u);
    return this.patterns.some((p) => p.host.test(host) && (p.port === undefined || p.port.test(port)));
  }

  check(url: URL | string): HostDecision {
    let u: URL;
    try {
      u = typeof url === 'string' ? new URL(url) : url;
    } catch {
      return { allowed: false, reason: 'bad-url', message: `not a URL: ${String(url)}` };
    }
    if (u.protocol !== 'https:' && u.protocol !== 'http:') {
      return {
        allowed: false,
        reason: 'bad-url',
        message: `credentials are only sent over http(s), not ${u.protocol}`,
      };
    }
    const { host } = hostAndPort(u);
    if (!this.matches(u)) {
      return {
        allowed: false,
        reason: 'not-allowed',
        message: `host ${host} is not on the allowlist (${this.allowedHosts.join(', ')})`,
      };
    }
    if (u.protocol === 'http:' && !this.allowInsecureHttp && !isLoopback(host)) {
      return {
        allowed: false,
        reason: 'insecure',
        message: `credentials are not sent over plain http to ${host} (use https, or allow insecure http explicitly)`,
      };
    }
    return { allowed: true };
  }
}
