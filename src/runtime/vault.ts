import { randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent, request } from 'undici';
import { HOP_BY_HOP } from '../client/http.js';

/**
 * `custody run --vault`: the child talks to a loopback Vault API proxy (as with Vault Agent's API
 * proxy and auto-auth) instead of holding the job's Custody token. Its VAULT_TOKEN is a random
 * run-local token that only this proxy accepts; the proxy swaps it for the job's current token on
 * the way to the broker's Vault door. So a new login before the token's max TTL reaches the child
 * without touching its environment, and the child's VAULT_TOKEN is worth nothing outside this run.
 * A request carrying any other token (one the child got by its own login) passes unchanged.
 */

/**
 * Where the broker serves its HashiCorp Vault-compatible API: under this path prefix, so that
 * `VAULT_ADDR=https://HOST:PORT/vault` and clients append `/v1/…`. Must equal `VAULT_PREFIX` in
 * src/compat/vault/door.ts (not imported: that module pulls in the server; a test checks they match).
 */
export const VAULT_PATH_PREFIX = '/vault';

/** What `--vault` puts in the child's environment. */
export const VAULT_CHILD_VARIABLES = ['VAULT_ADDR', 'VAULT_TOKEN', 'VAULT_CACERT'] as const;

/** Vault settings the Custody door does not follow; removed from the child's environment. */
export const VAULT_UNSUPPORTED_VARIABLES = ['VAULT_NAMESPACE', 'VAULT_CACERT', 'VAULT_CAPATH'] as const;

/** The Vault door's address for a broker address: `https://127.0.0.1:8270` → `…:8270/vault`. */
export const vaultAddr = (brokerAddr: string) => `${brokerAddr.replace(/\/+$/, '')}${VAULT_PATH_PREFIX}`;

export interface VaultProxyOptions {
  /** The broker's address (https) and CA file. */
  addr: string;
  caCertPath: string | undefined;
  /** The job's Custody token now (it changes when custody run logs in again). */
  currentToken: () => string;
}

export interface VaultProxy {
  /** What the child gets: VAULT_ADDR (the loopback proxy) and VAULT_TOKEN (the run-local token). */
  env: { VAULT_ADDR: string; VAULT_TOKEN: string };
  close(): Promise<void>;
}

export async function startVaultProxy(opts: VaultProxyOptions): Promise<VaultProxy> {
  const ca = opts.caCertPath ? await readFile(opts.caCertPath, 'utf8') : undefined;
  const agent = new Agent({ connect: ca ? { ca } : {} });
  // `cst_` so every redaction rule treats it as the credential it stands for.
  const localToken = `cst_local_${randomBytes(24).toString('base64url')}`;
  const local = Buffer.from(localToken);
  const isLocal = (v: string | undefined) => {
    if (v === undefined) return false;
    const b = Buffer.from(v);
    return b.length === local.length && timingSafeEqual(b, local);
  };
  const upstream = vaultAddr(opts.addr);

  const forwardHeaders = (h: IncomingHttpHeaders): Record<string, string | string[]> => {
    const out: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(h)) if (v !== undefined && !HOP_BY_HOP.has(k)) out[k] = v;
    const vt = h['x-vault-token'];
    if (typeof vt === 'string' && isLocal(vt)) out['x-vault-token'] = opts.currentToken();
    const auth = h.authorization;
    if (typeof auth === 'string' && /^bearer /i.test(auth) && isLocal(auth.slice(7).trim()))
      out.authorization = `Bearer ${opts.currentToken()}`;
    return out;
  };

  const fail = (res: ServerResponse, status: number, message: string) => {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ errors: [`custody run --vault: ${message}`] }));
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? '';
    // Origin-form paths only: this is an API endpoint, not a forward proxy.
    if (!url.startsWith('/') || url.startsWith('//')) {
      fail(res, 400, 'expected a Vault API path such as /v1/secret/data/NAME');
      return;
    }
    const method = (req.method ?? 'GET').toUpperCase();
    const hasBody = !['GET', 'HEAD', 'DELETE', 'OPTIONS'].includes(method) || req.headers['content-length'];
    try {
      const r = await request(`${upstream}${url}`, {
        method: method as 'GET',
        headers: forwardHeaders(req.headers),
        body: hasBody ? req : undefined,
        dispatcher: agent,
      });
      const headers: Record<string, string | string[]> = {};
      for (const [k, v] of Object.entries(r.headers))
        if (v !== undefined && !HOP_BY_HOP.has(k)) headers[k] = v as string | string[];
      res.writeHead(r.statusCode, headers);
      for await (const chunk of r.body) res.write(chunk);
      res.end();
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      fail(res, 502, `the broker did not answer (${typeof code === 'string' ? code : 'error'})`);
    }
  };

  const server = createServer((req, res) => void handle(req, res));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    env: { VAULT_ADDR: `http://127.0.0.1:${port}`, VAULT_TOKEN: localToken },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await agent.close();
    },
  };
}
