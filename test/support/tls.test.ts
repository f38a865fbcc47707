import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import { ensureTls, issueLeafCertificate, loadCa } from '../../src/http/tls.js';

const HOSTS = ['custody.internal', '*.vault.custody.test', '10.1.2.3'];

function listen(server: https.Server | tls.Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
}

function close(server: https.Server | tls.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

function get(port: number, opts: { ca?: string; servername?: string }): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = https.get({ host: '127.0.0.1', port, path: '/', agent: false, ...opts }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => {
        body += c;
      });
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
  });
}

function tlsConnect(port: number, servername: string, ca: string): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername, ca }, () => resolve(socket));
    socket.on('error', reject);
  });
}

const mode = async (p: string) => (await stat(p)).mode & 0o777;

describe('ensureTls', () => {
  let dir: string;
  let first: Awaited<ReturnType<typeof ensureTls>>;
  let server: https.Server;
  let port: number;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'custody-tls-'));
    const t0 = performance.now();
    first = await ensureTls(join(dir, 'tls'), { hosts: HOSTS });
    const ms = Math.round(performance.now() - t0);
    if (process.env.CUSTODY_TEST_TIMINGS) console.log(`ensureTls (fresh CA + server cert): ${ms} ms`);
    server = https.createServer({ cert: first.certPem, key: first.keyPem }, (_req, res) => res.end('ok'));
    port = await listen(server);
  });

  after(async () => {
    await close(server);
    await rm(dir, { recursive: true, force: true });
  });

  it('creates a CA and a server certificate with the expected shape', async () => {
    const tlsDir = join(dir, 'tls');
    assert.equal(first.caCertPath, join(tlsDir, 'ca.pem'));
    assert.deepEqual((await readdir(tlsDir)).sort(), [
      'ca-key.pem',
      'ca.pem',
      'server-key.pem',
      'server.pem',
    ]);
    assert.match(first.keyPem, /^-----BEGIN PRIVATE KEY-----\n/);
    const ca = new X509Certificate(first.caCertPem);
    assert.equal(ca.ca, true);
    assert.match(ca.subject, /^CN=Custody Local CA [0-9a-f]+$/);
    assert.equal(ca.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.ok(Date.parse(ca.validTo) - Date.now() > 9 * 365 * 86_400_000);
    const cert = new X509Certificate(first.certPem);
    assert.equal(cert.ca, false);
    assert.ok(cert.checkIssued(ca) && cert.verify(ca.publicKey));
    assert.deepEqual(cert.keyUsage, ['1.3.6.1.5.5.7.3.1']);
    const days = (Date.parse(cert.validTo) - Date.now()) / 86_400_000;
    assert.ok(days > 360 && days < 367, `server cert valid for ${days} days`);
    for (const h of ['localhost', 'custody.internal', 'kv.vault.custody.test'])
      assert.ok(cert.checkHost(h), h);
    assert.equal(cert.checkHost('a.b.vault.custody.test'), undefined);
    for (const ip of ['127.0.0.1', '::1', '10.1.2.3']) assert.equal(cert.checkIP(ip), ip);
  });

  it('key files are 0600', async () => {
    assert.equal(await mode(join(dir, 'tls', 'ca-key.pem')), 0o600);
    assert.equal(await mode(join(dir, 'tls', 'server-key.pem')), 0o600);
  });

  it('serves HTTPS that verifies against the CA by IP and by name', async () => {
    assert.equal(await get(port, { ca: first.caCertPem }), 'ok');
    assert.equal(await get(port, { ca: first.caCertPem, servername: 'localhost' }), 'ok');
    assert.equal(await get(port, { ca: first.caCertPem, servername: 'a.vault.custody.test' }), 'ok');
  });

  it('rejects a client that does not trust the CA, and names the certificate does not cover', async () => {
    await assert.rejects(get(port, {}), (err: NodeJS.ErrnoException) => {
      assert.match(String(err.code), /UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT|SELF_SIGNED/);
      return true;
    });
    await assert.rejects(get(port, { ca: first.caCertPem, servername: 'evil.example.com' }), {
      code: 'ERR_TLS_CERT_ALTNAME_INVALID',
    });
  });

  it('reuses the CA and the server certificate on the next call', async () => {
    const again = await ensureTls(join(dir, 'tls'), { hosts: [...HOSTS].reverse() });
    assert.equal(again.caCertPem, first.caCertPem);
    assert.equal(again.certPem, first.certPem);
    assert.equal(again.keyPem, first.keyPem);
    assert.equal((await loadCa(join(dir, 'tls'))).certPem, first.caCertPem);
  });

  it('reissues the server certificate under the same CA when a host is added', async () => {
    const more = await ensureTls(join(dir, 'tls'), { hosts: [...HOSTS, 'broker.example.org'] });
    assert.equal(more.caCertPem, first.caCertPem);
    assert.notEqual(more.certPem, first.certPem);
    assert.notEqual(more.keyPem, first.keyPem);
    const cert = new X509Certificate(more.certPem);
    assert.ok(cert.verify(new X509Certificate(first.caCertPem).publicKey));
    assert.equal(cert.checkHost('broker.example.org'), 'broker.example.org');
    assert.equal(cert.checkHost('custody.internal'), 'custody.internal');
    assert.equal(await mode(join(dir, 'tls', 'server-key.pem')), 0o600);
    assert.ok(!(await readdir(join(dir, 'tls'))).some((f) => f.endsWith('.tmp')));
  });

  it('reissues a server certificate that expires within 30 days', async () => {
    const tlsDir = join(dir, 'tls');
    const ca = await loadCa(tlsDir);
    const short = await issueLeafCertificate(ca, ['localhost', '127.0.0.1', '::1', ...HOSTS], 10);
    await writeFile(join(tlsDir, 'server.pem'), short.certPem);
    await writeFile(join(tlsDir, 'server-key.pem'), short.keyPem, { mode: 0o600 });
    const renewed = await ensureTls(tlsDir, { hosts: HOSTS });
    assert.equal(renewed.caCertPem, first.caCertPem);
    assert.notEqual(renewed.certPem, short.certPem);
    assert.ok(Date.parse(new X509Certificate(renewed.certPem).validTo) - Date.now() > 300 * 86_400_000);
  });

  it('rejects hosts that are neither names nor IP addresses', async () => {
    await assert.rejects(ensureTls(join(dir, 'tls'), { hosts: ['bad host'] }), { code: 'InvalidHost' });
    await assert.rejects(ensureTls(join(dir, 'tls'), { hosts: ['a.*.example.com'] }), {
      code: 'InvalidHost',
    });
  });
});

describe('issueLeafCertificate', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'custody-tls-leaf-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('mints a certificate for an arbitrary host that verifies against the CA', async () => {
    const { caCertPem } = await ensureTls(dir, { hosts: [] });
    const ca = await loadCa(dir);
    const t0 = performance.now();
    const leaf = await issueLeafCertificate(ca, ['my-key-vault.vault.azure.net']);
    const ms = Math.round(performance.now() - t0);
    if (process.env.CUSTODY_TEST_TIMINGS) console.log(`issueLeafCertificate: ${ms} ms`);
    const server = tls.createServer({ cert: leaf.certPem, key: leaf.keyPem }, (s) => s.end('hello'));
    const port = await listen(server);
    try {
      const socket = await tlsConnect(port, 'my-key-vault.vault.azure.net', caCertPem);
      assert.equal(socket.authorized, true);
      assert.equal(socket.getPeerCertificate().subject.CN, 'my-key-vault.vault.azure.net');
      socket.destroy();
      await assert.rejects(tlsConnect(port, 'other-vault.vault.azure.net', caCertPem), {
        code: 'ERR_TLS_CERT_ALTNAME_INVALID',
      });
    } finally {
      await close(server);
    }
  });

  it('honours the validity in days', async () => {
    const ca = await loadCa(dir);
    const leaf = await issueLeafCertificate(ca, ['x.example.com'], 2);
    const days = (Date.parse(new X509Certificate(leaf.certPem).validTo) - Date.now()) / 86_400_000;
    assert.ok(days > 1.9 && days <= 2, `leaf valid for ${days} days`);
  });
});
