import { randomBytes, timingSafeEqual } from 'node:crypto';
import {
  createServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import { type AddressInfo, connect, isIP, type Socket } from 'node:net';

/**
 * The loopback forward proxy `custody run --azure` gives its child through `HTTPS_PROXY`.
 *
 * - `CONNECT <vault>.vault.azure.net:443` (and the US Government and China clouds' vault domains):
 *   a TCP connection to the broker, bytes piped both ways. Nothing is decrypted here: the client
 *   does TLS end to end with the broker (SNI = the vault host), which presents a certificate for
 *   `*.vault.azure.net` & co. signed by Custody's CA, and reads the vault out of the Host header.
 *   Vault hosts never reach the internet, whatever the port, so a Custody token cannot leak there.
 * - `CONNECT` anywhere else: a TCP connection to that host, piped untouched, or 403 with
 *   `denyOthers`.
 * - Plain-HTTP requests in absolute form (`GET http://host/path`): forwarded, or 403 with
 *   `denyOthers`. Key Vault hosts over plain HTTP are always refused.
 *
 * It listens on 127.0.0.1 on a free port and requires `Proxy-Authorization: Basic` with a random
 * password (407 otherwise), which goes to the child inside the proxy URL
 * (`http://custody:<password>@127.0.0.1:<port>`): other local users cannot ride on it.
 */

/** The public clouds' Key Vault DNS domains (vault = first label). */
export const KEY_VAULT_DOMAINS = ['vault.azure.net', 'vault.usgovcloudapi.net', 'vault.azure.cn'] as const;

export interface ConnectProxyOptions {
  /** Where Key Vault hosts are sent: the broker's host and port. */
  broker: { host: string; port: number };
  /** Domains whose hosts go to the broker (default: KEY_VAULT_DOMAINS). */
  vaultDomains?: readonly string[];
  /** Refuse (403) everything that is not a vault host. */
  denyOthers?: boolean;
  /** The proxy password (user `custody`); random when omitted. */
  password?: string;
  /** Address to listen on (default 127.0.0.1). */
  host?: string;
  /** How long to wait for an upstream TCP connection (default 10 s). */
  connectTimeoutMs?: number;
  /** Called for each decision (hosts and ports only, nothing else), for diagnostics and tests. */
  onEvent?: (event: ProxyEvent) => void;
}

export interface ProxyEvent {
  kind: 'broker' | 'pass' | 'deny' | 'auth-failed' | 'bad-request' | 'upstream-failed';
  method: string;
  host?: string;
  port?: number;
}

export interface ConnectProxy {
  /** `http://custody:<password>@127.0.0.1:<port>` — the value for HTTPS_PROXY / HTTP_PROXY. */
  url: string;
  host: string;
  port: number;
  /** Closes the listener and every open tunnel. */
  close(): Promise<void>;
}

const USER = 'custody';
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authorization',
  'proxy-authenticate',
  'proxy-connection',
  'te',
  'trailer',
  'upgrade',
]);

/** `host:port` / `[v6]:port` of a CONNECT request line; null when malformed. */
export function parseAuthority(authority: string): { host: string; port: number } | null {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]/\s@]+)):(\d{1,5})$/.exec(authority);
  if (!m) return null;
  const port = Number(m[3]);
  if (port < 1 || port > 65_535) return null;
  const host = (m[1] ?? m[2]).toLowerCase().replace(/\.$/, '');
  if (m[1] !== undefined && isIP(host) !== 6) return null;
  if (host === '') return null;
  return { host, port };
}

/** True when `host` is a vault domain or under one (`my-vault.vault.azure.net`). */
export function isVaultHost(host: string, domains: readonly string[] = KEY_VAULT_DOMAINS): boolean {
  const h = host.toLowerCase().replace(/\.$/, '');
  return domains.some((d) => h === d || h.endsWith(`.${d}`));
}

export async function startConnectProxy(opts: ConnectProxyOptions): Promise<ConnectProxy> {
  const password = opts.password ?? randomBytes(18).toString('base64url');
  const expected = Buffer.from(`${USER}:${password}`);
  const domains = opts.vaultDomains ?? KEY_VAULT_DOMAINS;
  const listenHost = opts.host ?? '127.0.0.1';
  const connectTimeout = opts.connectTimeoutMs ?? 10_000;
  const event = (e: ProxyEvent) => {
    try {
      opts.onEvent?.(e);
    } catch {}
  };
  const sockets = new Set<Socket>();

  function authorized(headers: IncomingHttpHeaders): boolean {
    const m = /^\s*basic\s+([A-Za-z0-9+/=._~-]+)\s*$/i.exec(headers['proxy-authorization'] ?? '');
    if (!m) return false;
    const given = Buffer.from(m[1], 'base64');
    return given.length === expected.length && timingSafeEqual(given, expected);
  }

  /** Where a target goes: the broker, the target itself, or nowhere. */
  function route(target: { host: string; port: number }): { host: string; port: number } | 'deny' {
    if (isVaultHost(target.host, domains)) return opts.broker;
    return opts.denyOthers ? 'deny' : target;
  }

  const server = createServer((req, res) => forward(req, res));
  // Tunnels and forwarded uploads may last as long as the job.
  server.requestTimeout = 0;
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });

  server.on('connect', (req: IncomingMessage, client: Socket, head: Buffer) => {
    const reply = (status: string, extra = '') => {
      client.end(`HTTP/1.1 ${status}\r\n${extra}Content-Length: 0\r\nConnection: close\r\n\r\n`);
    };
    client.on('error', () => client.destroy());
    if (!authorized(req.headers)) {
      event({ kind: 'auth-failed', method: 'CONNECT' });
      return reply('407 Proxy Authentication Required', 'Proxy-Authenticate: Basic realm="custody run"\r\n');
    }
    const target = parseAuthority(req.url ?? '');
    if (!target) {
      event({ kind: 'bad-request', method: 'CONNECT' });
      return reply('400 Bad Request');
    }
    const to = route(target);
    if (to === 'deny') {
      event({ kind: 'deny', method: 'CONNECT', ...target });
      return reply('403 Forbidden');
    }
    event({ kind: to === opts.broker ? 'broker' : 'pass', method: 'CONNECT', ...target });
    const upstream = connect({ host: to.host, port: to.port });
    sockets.add(upstream);
    upstream.once('close', () => sockets.delete(upstream));
    upstream.setTimeout(connectTimeout, () => upstream.destroy(new Error('connect timeout')));
    let connected = false;
    upstream.once('connect', () => {
      connected = true;
      upstream.setTimeout(0);
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.on('error', () => {
      if (!connected) {
        event({ kind: 'upstream-failed', method: 'CONNECT', ...target });
        reply('502 Bad Gateway');
      } else client.destroy();
    });
    client.once('close', () => upstream.destroy());
    upstream.once('close', () => client.destroy());
  });

  function forward(req: IncomingMessage, res: ServerResponse): void {
    const fail = (status: number, extra: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-length': '0', connection: 'close', ...extra });
      res.end();
      req.resume();
    };
    if (!authorized(req.headers)) {
      event({ kind: 'auth-failed', method: req.method ?? '' });
      fail(407, { 'proxy-authenticate': 'Basic realm="custody run"' });
      return;
    }
    let url: URL;
    try {
      url = new URL(req.url ?? '');
    } catch {
      event({ kind: 'bad-request', method: req.method ?? '' });
      fail(400);
      return;
    }
    if (url.protocol !== 'http:') {
      event({ kind: 'bad-request', method: req.method ?? '' });
      fail(400);
      return;
    }
    const host = url.hostname.replace(/^\[|\]$/g, '').toLowerCase();
    const port = Number(url.port || 80);
    // Key Vault is HTTPS only: a vault host in clear is never forwarded anywhere.
    if (isVaultHost(host, domains) || opts.denyOthers) {
      event({ kind: 'deny', method: req.method ?? '', host, port });
      fail(403);
      return;
    }
    event({ kind: 'pass', method: req.method ?? '', host, port });
    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(req.headers))
      if (v !== undefined && !HOP_BY_HOP.has(k)) headers[k] = v;
    const up = httpRequest({
      host,
      port,
      method: req.method,
      path: `${url.pathname}${url.search}`,
      headers,
      agent: false,
      timeout: connectTimeout,
    });
    up.on('socket', (s) => s.once('connect', () => up.setTimeout(0)));
    up.on('timeout', () => up.destroy(new Error('connect timeout')));
    up.on('response', (upRes) => {
      const out: Record<string, string | string[]> = {};
      for (const [k, v] of Object.entries(upRes.headers))
        if (v !== undefined && !HOP_BY_HOP.has(k)) out[k] = v;
      res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, out);
      upRes.pipe(res);
      upRes.on('error', () => res.destroy());
    });
    up.on('error', () => {
      if (!res.headersSent) {
        event({ kind: 'upstream-failed', method: req.method ?? '', host, port });
        fail(502);
      } else res.destroy();
    });
    req.pipe(up);
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, listenHost, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const hostInUrl = listenHost.includes(':') ? `[${listenHost}]` : listenHost;
  return {
    url: `http://${USER}:${password}@${hostInUrl}:${port}`,
    host: listenHost,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
        server.closeAllConnections();
      }),
  };
}
