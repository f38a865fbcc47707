import assert from 'node:assert/strict';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import {
  type ConnectProxy,
  isVaultHost,
  type ProxyEvent,
  parseAuthority,
  startConnectProxy,
} from '../../src/runtime/connect-proxy.js';

/** A TCP server that answers every connection with `<name>:` + whatever it receives (echo). */
async function echoServer(name: string): Promise<{ server: Server; port: number; seen: string[] }> {
  const seen: string[] = [];
  const server = createServer((s) => {
    s.on('data', (d) => {
      seen.push(d.toString('utf8'));
      s.write(`${name}:${d.toString('utf8')}`);
    });
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as AddressInfo).port, seen };
}

/** Sends raw bytes to the proxy and collects what comes back until `until` matches or the socket ends. */
function raw(port: number, text: string, until: RegExp = /$^/): Promise<string> {
  return new Promise((resolve, reject) => {
    const s: Socket = connect(port, '127.0.0.1');
    let got = '';
    const done = () => {
      s.destroy();
      resolve(got);
    };
    s.on('data', (d) => {
      got += d.toString('utf8');
      if (until.test(got)) done();
    });
    s.on('end', done);
    s.on('close', () => resolve(got));
    s.on('error', reject);
    s.write(text);
    setTimeout(done, 5000).unref();
  });
}

const basic = (user: string, pass: string) => `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;

describe('custody run: the loopback CONNECT proxy', () => {
  let broker: Awaited<ReturnType<typeof echoServer>>;
  let other: Awaited<ReturnType<typeof echoServer>>;
  let web: HttpServer;
  let webPort: number;
  let proxy: ConnectProxy;
  let strict: ConnectProxy;
  let auth: string;
  const events: ProxyEvent[] = [];

  before(async () => {
    broker = await echoServer('broker');
    other = await echoServer('other');
    web = createHttpServer((req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'x-upstream': 'yes' });
      res.end(
        `web ${req.method} ${req.url} host=${req.headers.host} pa=${req.headers['proxy-authorization'] ?? 'none'}`,
      );
    });
    await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
    webPort = (web.address() as AddressInfo).port;
    proxy = await startConnectProxy({
      broker: { host: '127.0.0.1', port: broker.port },
      password: 'p4ssw0rd-for-tests',
      onEvent: (e) => events.push(e),
    });
    strict = await startConnectProxy({ broker: { host: '127.0.0.1', port: broker.port }, denyOthers: true });
    auth = basic('custody', 'p4ssw0rd-for-tests');
  });

  after(async () => {
    await proxy?.close();
    await strict?.close();
    await new Promise((r) => broker.server.close(r));
    await new Promise((r) => other.server.close(r));
    web.closeAllConnections();
    await new Promise((r) => web.close(r));
  });

  it('listens on 127.0.0.1 and carries a random credential in its URL', async () => {
    assert.match(proxy.url, /^http:\/\/custody:p4ssw0rd-for-tests@127\.0\.0\.1:\d+$/);
    assert.match(strict.url, /^http:\/\/custody:[A-Za-z0-9_-]{24}@127\.0\.0\.1:\d+$/);
    const again = await startConnectProxy({ broker: { host: '127.0.0.1', port: 1 } });
    assert.notEqual(new URL(again.url).password, new URL(strict.url).password);
    await again.close();
  });

  it('requires Proxy-Authorization: 407 with a Basic challenge otherwise', async () => {
    for (const header of [
      '',
      `Proxy-Authorization: ${basic('custody', 'wrong')}\r\n`,
      `Proxy-Authorization: ${basic('other', 'p4ssw0rd-for-tests')}\r\n`,
      'Proxy-Authorization: Bearer x\r\n',
    ]) {
      const r = await raw(
        proxy.port,
        `CONNECT my-vault.vault.azure.net:443 HTTP/1.1\r\nHost: x\r\n${header}\r\n`,
      );
      assert.match(r, /^HTTP\/1\.1 407 /, header);
      assert.match(r, /Proxy-Authenticate: Basic realm="custody run"/i);
      const g = await raw(
        proxy.port,
        `GET http://127.0.0.1:${webPort}/ HTTP/1.1\r\nHost: x\r\n${header}Connection: close\r\n\r\n`,
      );
      assert.match(g, /^HTTP\/1\.1 407 /, header);
    }
    assert.equal(broker.seen.length, 0, 'nothing reached the broker');
  });

  it('CONNECT to a Key Vault host (any cloud, any case, any port) is piped to the broker, head bytes included', async () => {
    for (const host of [
      'my-vault.vault.azure.net:443',
      'MY-VAULT.Vault.Azure.NET.:443',
      'x.vault.usgovcloudapi.net:443',
      'x.vault.azure.cn:8443',
      'a.b.vault.azure.net:443',
    ]) {
      const r = await raw(
        proxy.port,
        `CONNECT ${host} HTTP/1.1\r\nHost: ${host}\r\nProxy-Authorization: ${auth}\r\n\r\nhello-${host}`,
        /broker:hello/,
      );
      assert.match(r, /^HTTP\/1\.1 200 Connection Established\r\n\r\n/, host);
      assert.ok(r.endsWith(`broker:hello-${host}`), `${host}: ${r}`);
    }
    assert.deepEqual(
      events.filter((e) => e.kind === 'broker').map((e) => e.host),
      [
        'my-vault.vault.azure.net',
        'my-vault.vault.azure.net',
        'x.vault.usgovcloudapi.net',
        'x.vault.azure.cn',
        'a.b.vault.azure.net',
      ],
    );
  });

  it('CONNECT elsewhere is passed through untouched; refused with 403 under denyOthers (vault hosts still allowed)', async () => {
    const r = await raw(
      proxy.port,
      `CONNECT 127.0.0.1:${other.port} HTTP/1.1\r\nProxy-Authorization: ${auth}\r\n\r\n`,
      /200 Connection Established\r\n\r\n/,
    );
    assert.match(r, /^HTTP\/1\.1 200 /);
    const piped = await new Promise<string>((resolve) => {
      const s = connect(proxy.port, '127.0.0.1');
      let got = '';
      s.on('data', (d) => {
        got += d.toString();
        if (got.includes('\r\n\r\n') && !got.includes('other:')) s.write('ping');
        if (got.includes('other:ping')) {
          s.destroy();
          resolve(got);
        }
      });
      s.write(`CONNECT 127.0.0.1:${other.port} HTTP/1.1\r\nProxy-Authorization: ${auth}\r\n\r\n`);
    });
    assert.match(piped, /other:ping$/);

    const pa = basic('custody', new URL(strict.url).password);
    const denied = await raw(
      strict.port,
      `CONNECT 127.0.0.1:${other.port} HTTP/1.1\r\nProxy-Authorization: ${pa}\r\n\r\n`,
    );
    assert.match(denied, /^HTTP\/1\.1 403 /);
    const vault = await raw(
      strict.port,
      `CONNECT kv.vault.azure.net:443 HTTP/1.1\r\nProxy-Authorization: ${pa}\r\n\r\nhi`,
      /broker:hi/,
    );
    assert.match(vault, /broker:hi$/);
  });

  it('plain-HTTP absolute-URI requests are forwarded without the proxy credential; vault hosts in clear never', async () => {
    const r = await raw(
      proxy.port,
      `GET http://127.0.0.1:${webPort}/a/b?c=d HTTP/1.1\r\nHost: 127.0.0.1:${webPort}\r\nProxy-Authorization: ${auth}\r\nConnection: close\r\n\r\n`,
      /pa=\w+/,
    );
    assert.match(r, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(r, /x-upstream: yes/i);
    assert.match(r, new RegExp(`web GET /a/b\\?c=d host=127\\.0\\.0\\.1:${webPort} pa=none`));

    const kv = await raw(
      proxy.port,
      `GET http://my-vault.vault.azure.net/secrets/x HTTP/1.1\r\nHost: my-vault.vault.azure.net\r\nProxy-Authorization: ${auth}\r\n\r\n`,
    );
    assert.match(kv, /^HTTP\/1\.1 403 /);
    const pa = basic('custody', new URL(strict.url).password);
    const denied = await raw(
      strict.port,
      `GET http://127.0.0.1:${webPort}/ HTTP/1.1\r\nHost: x\r\nProxy-Authorization: ${pa}\r\n\r\n`,
    );
    assert.match(denied, /^HTTP\/1\.1 403 /);
  });

  it('bad targets get 400, unreachable ones 502', async () => {
    for (const target of ['no-port', 'host:0', 'host:99999', '[not-v6]:443', 'user@host:443']) {
      const r = await raw(proxy.port, `CONNECT ${target} HTTP/1.1\r\nProxy-Authorization: ${auth}\r\n\r\n`);
      assert.match(r, /^HTTP\/1\.1 400 /, target);
    }
    const origin = await raw(
      proxy.port,
      `GET /just-a-path HTTP/1.1\r\nHost: x\r\nProxy-Authorization: ${auth}\r\n\r\n`,
    );
    assert.match(origin, /^HTTP\/1\.1 400 /);
    const closed = await raw(
      proxy.port,
      `CONNECT 127.0.0.1:1 HTTP/1.1\r\nProxy-Authorization: ${auth}\r\n\r\n`,
    );
    assert.match(closed, /^HTTP\/1\.1 502 /);
  });

  it('host matching: vault domains and their subdomains only, no look-alikes', () => {
    for (const h of [
      'kv.vault.azure.net',
      'KV.VAULT.AZURE.NET',
      'kv.vault.azure.net.',
      'kv.vault.usgovcloudapi.net',
      'kv.vault.azure.cn',
      'vault.azure.net',
    ])
      assert.equal(isVaultHost(h), true, h);
    for (const h of [
      'kv.vault.azure.net.evil.test',
      'evilvault.azure.net',
      'kv.vaultazure.net',
      'vault.azure.com',
      'kv.vault.azure.cn.example',
      '127.0.0.1',
    ])
      assert.equal(isVaultHost(h), false, h);
    assert.deepEqual(parseAuthority('Kv.Vault.Azure.Net:443'), { host: 'kv.vault.azure.net', port: 443 });
    assert.deepEqual(parseAuthority('[::1]:8443'), { host: '::1', port: 8443 });
    for (const bad of ['', ':443', 'h:', 'h:65536', 'h:0', '[zz]:1', 'a b:1', 'h:1:2'])
      assert.equal(parseAuthority(bad), null, bad);
  });
});
