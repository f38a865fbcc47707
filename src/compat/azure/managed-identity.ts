import { randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A managed-identity token endpoint on loopback, for workloads whose Azure SDK credential
 * (`ManagedIdentityCredential`, `DefaultAzureCredential`) should receive Custody tokens.
 *
 * It answers the sources both Azure SDKs (JS and Python) pick from environment variables:
 * - App Service: `GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource=…`, header
 *   `X-IDENTITY-HEADER: {IDENTITY_HEADER}`;
 * - Azure ML: `GET {MSI_ENDPOINT}?api-version=2017-09-01&resource=…[&clientid=…]`, header
 *   `secret: {MSI_SECRET}`;
 * - Azure ML on-behalf-of: `GET {OBO_ENDPOINT}?resource=…` with no header at all. That protocol has
 *   no client secret, so this endpoint serves it only on its own unguessable path (`oboEndpoint`),
 *   which is kept like the header secret and is not part of `env` unless the caller adds it.
 *
 * The reply satisfies every source: `{access_token, expires_on, expires_in, token_type, resource}`
 * (epoch seconds and seconds, as strings). Errors are `{error, error_description}`.
 */
export interface TokenRequest {
  /** The resource the client asked for (e.g. `https://vault.custody.test:8443`). */
  resource: string;
  /** A user-assigned identity's client id / object id / resource id, when the client named one. */
  clientId?: string;
  objectId?: string;
  resourceId?: string;
  source: 'app-service' | 'azure-ml' | 'azure-ml-obo';
}

export interface IssuedToken {
  token: string;
  /** When the token stops working: a Date or epoch milliseconds. */
  expiresAt: Date | number;
}

export interface ManagedIdentityEndpointOptions {
  getToken: (request: TokenRequest) => Promise<IssuedToken>;
  /** The value clients must send as `X-IDENTITY-HEADER` / `secret`; random when omitted. */
  secret?: string;
  /** Loopback address to bind (default 127.0.0.1). */
  host?: string;
  /** Port (default: a free one). */
  port?: number;
}

export interface ManagedIdentityEndpoint {
  /** Base URL, e.g. `http://127.0.0.1:40123/msi/token`. */
  url: string;
  /** The on-behalf-of URL (its path is the credential). */
  oboEndpoint: string;
  /** Variables to put in the workload's environment. */
  env: { IDENTITY_ENDPOINT: string; IDENTITY_HEADER: string; MSI_ENDPOINT: string; MSI_SECRET: string };
  close(): Promise<void>;
}

const TOKEN_PATH = '/msi/token';
const LOOPBACK = /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|::1|localhost)$/;

const same = (a: string, b: string) => {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
};

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}

const fail = (res: ServerResponse, status: number, error: string, description: string) =>
  send(res, status, { error, error_description: description });

const header = (req: IncomingMessage, name: string): string | undefined => {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
};

/** Starts the endpoint on loopback; resolves once it listens. */
export async function startManagedIdentityEndpoint(
  opts: ManagedIdentityEndpointOptions,
): Promise<ManagedIdentityEndpoint> {
  const secret = opts.secret ?? randomBytes(24).toString('base64url');
  if (secret.length < 16 || /[\s,]/.test(secret))
    throw new Error('The managed-identity secret is at least 16 characters, without spaces or commas');
  const host = opts.host ?? '127.0.0.1';
  // Azure SDKs only talk to managed-identity endpoints on loopback, and so does this one.
  if (!LOOPBACK.test(host)) throw new Error('The managed-identity endpoint listens on loopback only');
  const oboPath = `/obo/${randomBytes(24).toString('base64url')}`;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const isObo = same(url.pathname, oboPath);
    if (!isObo && url.pathname !== TOKEN_PATH)
      return fail(res, 404, 'invalid_request', 'No managed-identity endpoint at this path');
    if (req.method !== 'GET')
      return fail(res, 405, 'invalid_request', 'The managed-identity endpoint answers GET only');
    const resource = url.searchParams.get('resource');
    if (!resource) return fail(res, 400, 'invalid_request', 'The resource parameter is required');

    let source: TokenRequest['source'] = 'azure-ml-obo';
    if (!isObo) {
      const identityHeader = header(req, 'x-identity-header');
      const msiSecret = header(req, 'secret');
      if (identityHeader === undefined && msiSecret === undefined)
        return fail(res, 400, 'invalid_request', 'The X-IDENTITY-HEADER (or secret) header is required');
      for (const presented of [identityHeader, msiSecret]) {
        if (presented !== undefined && !same(presented, secret))
          return fail(res, 401, 'unauthorized_client', 'The identity header does not match');
      }
      source = identityHeader !== undefined ? 'app-service' : 'azure-ml';
    }
    const str = (k: string) => url.searchParams.get(k) || undefined;
    let issued: IssuedToken;
    try {
      issued = await opts.getToken({
        resource,
        clientId: str('client_id') ?? str('clientid'),
        objectId: str('object_id') ?? str('principal_id'),
        resourceId: str('mi_res_id') ?? str('msi_res_id'),
        source,
      });
    } catch {
      // The reason stays with the caller (it may name things a workload should not see).
      return fail(res, 500, 'server_error', 'No token could be issued');
    }
    const expiresMs = issued.expiresAt instanceof Date ? issued.expiresAt.getTime() : issued.expiresAt;
    const expiresOn = Math.floor(expiresMs / 1000);
    const expiresIn = Math.max(0, expiresOn - Math.floor(Date.now() / 1000));
    send(res, 200, {
      access_token: issued.token,
      expires_on: String(expiresOn),
      expires_in: String(expiresIn),
      token_type: 'Bearer',
      resource,
    });
  }

  const server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) fail(res, 500, 'server_error', 'The managed-identity endpoint failed');
      else res.destroy();
    });
  });
  server.requestTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const base = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  const url = `${base}${TOKEN_PATH}`;
  return {
    url,
    oboEndpoint: `${base}${oboPath}`,
    env: { IDENTITY_ENDPOINT: url, IDENTITY_HEADER: secret, MSI_ENDPOINT: url, MSI_SECRET: secret },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
