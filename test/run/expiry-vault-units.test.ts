import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { ExpiryWatch } from '../../src/runtime/expiry-watch.js';
import type { Reporter } from '../../src/runtime/reporter.js';
import { startVaultProxy, type VaultProxy } from '../../src/runtime/vault.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(check: () => boolean, ms = 10_000) {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await sleep(20);
  }
}

function recorder() {
  const lines: { level: string; code?: string; message: string }[] = [];
  const report: Reporter = {
    warn: (code, message) => lines.push({ level: 'warn', code, message }),
    note: (message) => lines.push({ level: 'note', message }),
  };
  return { lines, report };
}

describe('ExpiryWatch: warnings before and at the end (stderr + audit notice)', () => {
  it('warns ahead (not before 4/5 of the way), then at the end; both recorded unless told otherwise', async () => {
    const { lines, report } = recorder();
    const notices: { code: string; subject: string }[] = [];
    const w = new ExpiryWatch(report, async (n) => void notices.push(n), 60_000);
    const start = Date.now();
    w.watch('lease-1', 'lease lease-1 (PG_*)', start + 2000);
    w.watch('token', "the job's token", start + 2000, { auditEnd: false });
    await sleep(1000);
    assert.equal(lines.length, 0, 'a 60 s lead is cut to 1/5 of the life left (at 1.6 s): nothing yet');
    const codes = () => lines.map((l) => l.code).sort();
    await until(() => lines.length >= 2);
    assert.ok(Date.now() - start >= 1600);
    assert.deepEqual(codes(), ['CredentialExpiresSoon', 'CredentialExpiresSoon']);
    assert.ok(
      lines.some((l) =>
        /^lease lease-1 \(PG_\*\) stops working at .* while the command is still running$/.test(l.message),
      ),
      JSON.stringify(lines),
    );
    await until(() => lines.length >= 4);
    assert.ok(Date.now() - start >= 2000);
    assert.deepEqual(codes(), [
      'CredentialExpired',
      'CredentialExpired',
      'CredentialExpiresSoon',
      'CredentialExpiresSoon',
    ]);
    await w.stop();
    assert.deepEqual(notices.map((n) => `${n.code}:${n.subject}`).sort(), [
      'CredentialExpired:lease-1',
      'CredentialExpiresSoon:lease-1',
      'CredentialExpiresSoon:token',
    ]);
  });

  it('unwatch (renewed, rotated, logged in again) and stop cancel what is pending', async () => {
    const { lines, report } = recorder();
    const w = new ExpiryWatch(report, undefined, 100);
    w.watch('a', 'a', Date.now() + 300);
    w.watch('b', 'b', Date.now() + 300);
    w.unwatch('a');
    assert.deepEqual(w.keys, ['b']);
    await w.stop();
    await sleep(400);
    assert.deepEqual(lines, []);
  });

  it('a failing audit notice is a note, not a crash', async () => {
    const { lines, report } = recorder();
    const w = new ExpiryWatch(
      report,
      async () => {
        throw Object.assign(new Error('down'), { code: 'NetworkError' });
      },
      10,
    );
    w.watch('x', 'x', Date.now() + 100);
    await sleep(150);
    await w.stop();
    assert.ok(
      lines.some((l) => l.level === 'note' && /could not record .* \(NetworkError\)/.test(l.message)),
    );
  });
});

describe('--vault loopback proxy', () => {
  let upstream: Server;
  let proxy: VaultProxy;
  let current = 'cst_first';
  const seen: { url: string; headers: IncomingHttpHeaders; body: string }[] = [];
  before(async () => {
    upstream = createServer((req, res) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        seen.push({ url: req.url ?? '', headers: req.headers, body });
        res.writeHead(req.url?.includes('missing') ? 404 : 200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ data: { echo: body } }));
      });
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', () => r()));
    const { port } = upstream.address() as AddressInfo;
    proxy = await startVaultProxy({
      addr: `http://127.0.0.1:${port}`,
      caCertPath: undefined,
      currentToken: () => current,
    });
  });
  after(async () => {
    await proxy?.close();
    upstream?.close();
  });

  const call = (
    path: string,
    headers: Record<string, string>,
    method: 'GET' | 'POST' = 'GET',
    body?: string,
  ) =>
    request(`${proxy.env.VAULT_ADDR}${path}`, { method, headers, body }).then(async (r) => ({
      status: r.statusCode,
      body: await r.body.text(),
    }));

  it('gives the child a loopback address and a run-local token', () => {
    assert.match(proxy.env.VAULT_ADDR, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.match(proxy.env.VAULT_TOKEN, /^cst_local_[A-Za-z0-9_-]{32}$/);
  });

  it('swaps the run-local token for the current one, under the /vault prefix, bodies and statuses intact', async () => {
    const r1 = await call('/v1/secret/data/a', { 'x-vault-token': proxy.env.VAULT_TOKEN });
    assert.equal(r1.status, 200);
    current = 'cst_after_relogin';
    const r2 = await call(
      '/v1/secret/data/b',
      { 'x-vault-token': proxy.env.VAULT_TOKEN, 'content-type': 'application/json' },
      'POST',
      '{"data":{"k":"v"}}',
    );
    assert.equal(JSON.parse(r2.body).data.echo, '{"data":{"k":"v"}}');
    const r3 = await call('/v1/missing', { authorization: `Bearer ${proxy.env.VAULT_TOKEN}` });
    assert.equal(r3.status, 404);
    assert.deepEqual(
      seen.slice(-3).map((s) => [s.url, s.headers['x-vault-token'] ?? s.headers.authorization]),
      [
        ['/vault/v1/secret/data/a', 'cst_first'],
        ['/vault/v1/secret/data/b', 'cst_after_relogin'],
        ['/vault/v1/missing', 'Bearer cst_after_relogin'],
      ],
    );
  });

  it('passes any other token unchanged (a token the child got by its own login)', async () => {
    await call('/v1/auth/token/lookup-self', { 'x-vault-token': 'cst_childs_own' });
    assert.equal(seen.at(-1)?.headers['x-vault-token'], 'cst_childs_own');
    // A near miss is not the run-local token.
    await call('/v1/x', { 'x-vault-token': `${proxy.env.VAULT_TOKEN}x` });
    assert.equal(seen.at(-1)?.headers['x-vault-token'], `${proxy.env.VAULT_TOKEN}x`);
  });

  it('refuses absolute-form requests (not a forward proxy); a dead broker is a 502 in Vault shape', async () => {
    const n = seen.length;
    const abs = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const u = new URL(proxy.env.VAULT_ADDR);
      const s = connect(Number(u.port), '127.0.0.1', () => {
        s.write('GET http://example.com/v1/x HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n');
      });
      let text = '';
      s.on('data', (d: Buffer) => (text += d));
      s.on('end', () => resolve({ status: Number(text.split(' ')[1]), body: text.split('\r\n\r\n')[1] }));
      s.on('error', reject);
    });
    assert.equal(abs.status, 400);
    assert.match(abs.body, /"errors":\["custody run --vault: expected a Vault API path/);
    assert.equal(seen.length, n, 'nothing forwarded');

    const dead = await startVaultProxy({
      addr: 'http://127.0.0.1:1',
      caCertPath: undefined,
      currentToken: () => 'cst_x',
    });
    try {
      const r = await request(`${dead.env.VAULT_ADDR}/v1/sys/health`);
      assert.equal(r.statusCode, 502);
      assert.deepEqual(await r.body.json(), {
        errors: ['custody run --vault: the broker did not answer (ECONNREFUSED)'],
      });
    } finally {
      await dead.close();
    }
  });
});
