import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Agent, request } from 'undici';
import { HostPolicy } from '../../src/client/mlflow/allowlist.js';
import { credentialFromSecret } from '../../src/client/mlflow/credentials.js';
import { authDispatcher, fetchWithAuth } from '../../src/client/mlflow/fetch-with-auth.js';
import { type CredentialSource, providerSource } from '../../src/client/mlflow/source.js';

interface Seen {
  path: string;
  host: string;
  auth?: string;
  body: string;
}

describe('fetchWithAuth and the auth dispatcher', () => {
  let server: http.Server;
  let port: number;
  const seen: Seen[] = [];
  let fail401 = 0;
  before(async () => {
    server = http.createServer(async (req, res) => {
      let body = '';
      for await (const c of req) body += c;
      seen.push({ path: req.url!, host: req.headers.host!, auth: req.headers.authorization, body });
      if (req.url === '/redirect-other') {
        res.writeHead(302, { location: `http://localhost:${port}/landed` }).end();
      } else if (req.url === '/redirect-same') {
        res.writeHead(307, { location: '/landed' }).end();
      } else if (req.url === '/flaky' && fail401 > 0) {
        fail401--;
        res.writeHead(401).end('expired');
      } else if (req.url === '/forbidden') {
        res.writeHead(403).end('no');
      } else res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  let fetches = 0;
  const counting = (): CredentialSource =>
    providerSource(
      {
        name: 'test',
        get: async () => `{"token":"tok-${++fetches}"}`,
        close: async () => {},
      },
      'x',
    );
  const policy = new HostPolicy({ allowedHosts: ['127.0.0.1', 'localhost'] });

  it('adds the credential and caches it', async () => {
    seen.length = 0;
    fetches = 0;
    const source = counting();
    for (let i = 0; i < 3; i++) {
      const r = await fetchWithAuth(`http://127.0.0.1:${port}/a`, {}, { source, policy });
      assert.equal(await r.text(), 'ok');
    }
    assert.deepEqual(
      seen.map((s) => s.auth),
      ['Bearer tok-1', 'Bearer tok-1', 'Bearer tok-1'],
    );
  });

  it('strips credentials on a cross-host redirect, keeps them on a same-host one', async () => {
    seen.length = 0;
    const source = counting();
    const r = await fetchWithAuth(
      `http://127.0.0.1:${port}/redirect-other`,
      { headers: { authorization: 'Basic caller' } },
      { source, policy },
    );
    assert.equal(r.status, 200);
    assert.equal(seen[1].path, '/landed');
    assert.match(seen[1].host, /^localhost:/);
    assert.equal(seen[1].auth, undefined);
    seen.length = 0;
    await fetchWithAuth(
      `http://127.0.0.1:${port}/redirect-same`,
      { method: 'POST', body: 'b' },
      { source, policy },
    );
    assert.equal(seen[1].path, '/landed');
    assert.match(seen[1].auth!, /^Bearer tok-/);
    assert.equal(seen[1].body, 'b');
  });

  it('on 401 drops the credential, refetches and retries once; a 403 is not retried', async () => {
    seen.length = 0;
    fetches = 0;
    const source = counting();
    fail401 = 1;
    const r = await fetchWithAuth(
      `http://127.0.0.1:${port}/flaky`,
      { method: 'POST', body: '{}' },
      { source, policy },
    );
    assert.equal(r.status, 200);
    assert.deepEqual(
      seen.map((s) => s.auth),
      ['Bearer tok-1', 'Bearer tok-2'],
    );
    fail401 = 5;
    const r2 = await fetchWithAuth(`http://127.0.0.1:${port}/flaky`, {}, { source, policy });
    assert.equal(r2.status, 401);
    fail401 = 0;
    seen.length = 0;
    const r3 = await fetchWithAuth(`http://127.0.0.1:${port}/forbidden`, {}, { source, policy });
    assert.equal(r3.status, 403);
    assert.equal(seen.length, 1);
  });

  it('sends nothing to a host off the allowlist and refuses plain http to a remote host', async () => {
    seen.length = 0;
    const source = counting();
    await fetchWithAuth(
      `http://localhost:${port}/a`,
      {},
      { source, policy: new HostPolicy({ allowedHosts: ['127.0.0.1'] }) },
    );
    assert.equal(seen[0].auth, undefined);
    await assert.rejects(
      fetchWithAuth(
        'http://mlflow.example.com/a',
        {},
        { source, policy: new HostPolicy({ allowedHosts: ['mlflow.example.com'] }) },
      ),
      /plain http/,
    );
  });

  it('never sends a request when the credential cannot be fetched', async () => {
    seen.length = 0;
    const source = providerSource(
      { name: 't', get: async () => Promise.reject(new Error('down')), close: async () => {} },
      'x',
    );
    await assert.rejects(
      fetchWithAuth(`http://127.0.0.1:${port}/a`, {}, { source, policy }),
      /could not get/,
    );
    assert.equal(seen.length, 0);
  });

  it('the dispatcher adds credentials for allowed hosts and retries a 401 once', async () => {
    seen.length = 0;
    fetches = 0;
    const agent = new Agent();
    const d = authDispatcher(agent, {
      source: counting(),
      policy: new HostPolicy({ allowedHosts: ['127.0.0.1'] }),
    });
    fail401 = 1;
    const r = await request(`http://127.0.0.1:${port}/flaky`, { method: 'POST', body: 'x', dispatcher: d });
    assert.equal(r.statusCode, 200);
    assert.equal(await r.body.text(), 'ok');
    const r2 = await request(`http://localhost:${port}/a`, {
      dispatcher: d,
      headers: { authorization: 'Bearer mine' },
    });
    await r2.body.text();
    assert.deepEqual(
      seen.map((s) => s.auth),
      ['Bearer tok-1', 'Bearer tok-2', 'Bearer mine'],
    );
    await agent.close();
  });

  it('basic credentials', () => {
    assert.equal(credentialFromSecret('u:p').value, `Basic ${Buffer.from('u:p').toString('base64')}`);
  });
});
