import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer as createHttpsServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ensureTls } from '../../src/http/tls.js';
import { type BrokerProcess, startBrokerProcess } from '../support/broker-process.js';
import { ensureVenv, type PythonVenv } from '../support/python-venv.js';
import { apiOf, cliOf, jsonLine, workloadToken } from './helpers.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const DOC_SCRIPT = path.join(HERE, 'azure_ml_doc.py');
const NODE_SCRIPT = path.join(HERE, 'azure_node_sdk.mjs');
const VAULT_SCRIPT = path.join(HERE, 'vault_kv.py');

/** The Azure ML documentation's secret-retrieval code, as published (azure_ml_doc.py starts with it). */
const AZURE_ML_DOC_CODE = `from azure.identity import DefaultAzureCredential
from azure.keyvault.secrets import SecretClient

credential = DefaultAzureCredential()

secret_client = SecretClient(vault_url="https://my-key-vault.vault.azure.net/", credential=credential)
secret = secret_client.get_secret("secret-name")
`;

/** Identity-selecting variables a developer machine may carry; --azure must not let them win. */
const STRAY_AZURE = {
  AZURE_CLIENT_ID: '00000000-0000-0000-0000-000000000001',
  AZURE_TENANT_ID: '00000000-0000-0000-0000-000000000002',
  AZURE_CLIENT_SECRET: 'not-a-real-secret',
  AZURE_FEDERATED_TOKEN_FILE: '/nonexistent/token',
  AZURE_AUTHORITY_HOST: 'https://login.example.invalid',
  MSI_ENDPOINT: 'http://169.254.169.254/stale',
};

/**
 * `custody run --azure` and `--vault` with the official clients, unmodified: the Azure ML docs'
 * Python code (azure-identity + azure-keyvault-secrets), the Node SDKs, and hvac.
 */
describe('custody run --azure / --vault: official clients unchanged', () => {
  let broker: BrokerProcess;
  let api: Awaited<ReturnType<typeof apiOf>>;
  let cli: ReturnType<typeof cliOf>;
  let venv: PythonVenv;
  let jobToken: string;
  let work: string;
  let other: Server;
  let otherPort: number;
  let otherCa: string;
  const VALUE = `kv-${Math.random().toString(36).slice(2)}-value`;

  before(async () => {
    venv = await ensureVenv();
    broker = await startBrokerProcess({
      env: {
        CUSTODY_AZURE_VAULTS: 'my-key-vault=prod,locked-vault=locked',
        CUSTODY_VAULT_DEFAULT_ENV: 'prod',
      },
    });
    api = await apiOf(broker);
    cli = cliOf(broker);
    await api.ok('POST', '/v1/envs', { name: 'prod' });
    await api.ok('POST', '/v1/envs', { name: 'locked' });
    await api.ok('PUT', '/v1/secrets/prod/secret-name', { value: VALUE });
    await api.ok('PUT', '/v1/secrets/locked/secret-name', { value: 'no access' });
    await api.ok('PUT', '/v1/secrets/prod/app/config', {
      value: JSON.stringify({ user: 'svc', password: `${VALUE}-vault` }),
      content_type: 'application/json',
    });
    jobToken = await workloadToken(broker, 'prod', 'trainer', [
      ['secrets-user', 'prod/secrets/secret-name'],
      ['secrets-user', 'prod/secrets/app'],
    ]);

    // Somebody else's HTTPS server, with its own CA: reached through the proxy untouched.
    work = await mkdtemp(path.join(tmpdir(), 'custody-run-azure-'));
    const tls = await ensureTls(path.join(work, 'other-tls'), { hosts: [] });
    otherCa = tls.caCertPath;
    other = createHttpsServer({ key: tls.keyPem, cert: tls.certPem }, (req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(
        `other server saw ${req.method} ${req.url} proxy-auth=${req.headers['proxy-authorization'] ?? 'none'}`,
      );
    });
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
    otherPort = (other.address() as AddressInfo).port;
  });

  after(async () => {
    other?.closeAllConnections();
    await new Promise((r) => (other ? other.close(r) : r(null)));
    await api?.close();
    await broker?.cleanup();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('azure_ml_doc.py is the documentation code byte for byte, plus only a print line', async () => {
    const text = await readFile(DOC_SCRIPT, 'utf8');
    assert.ok(text.startsWith(AZURE_ML_DOC_CODE));
    const rest = text.slice(AZURE_ML_DOC_CODE.length).split('\n');
    assert.equal(rest[0], 'print(secret.value)');
    assert.ok(
      rest.slice(1).every((l) => l === '' || l.startsWith('#')),
      'after it: comments only',
    );
  });

  it('Python: the Azure ML doc code reads secret-name from https://my-key-vault.vault.azure.net/ unchanged', async () => {
    const r = await cli(['run', '--azure', '--', venv.python, DOC_SCRIPT], {
      env: { CUSTODY_TOKEN: jobToken, ...STRAY_AZURE },
      timeoutMs: 90_000,
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${VALUE}\n`);
    assert.match(r.stderr, /not passed to the child: .*AZURE_CLIENT_ID/);
    assert.ok(!r.stderr.includes(jobToken));

    // The read went through the Azure door as the job's identity, and was audited as such.
    const audit = (await readFile(path.join(broker.dataDir, 'audit.log'), 'utf8'))
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));
    const hit = audit.find(
      (e) =>
        e.door === 'azure' &&
        e.type === 'response' &&
        e.resource === 'prod/secret-name' &&
        e.action === 'secrets/get' &&
        e.outcome === 'ok',
    );
    assert.ok(hit, 'an audited Azure-door read of prod/secret-name');
    const me = await api.ok('GET', '/v1/auth/token/lookup-self', undefined, jobToken);
    assert.equal(hit.auth.identity, me.identity_id, "the job's identity");
  });

  it('Python: RBAC still decides — a vault mapped to an environment the job may not read is Forbidden', async () => {
    const script = (await readFile(DOC_SCRIPT, 'utf8')).replace('my-key-vault', 'locked-vault');
    const r = await cli(['run', '--azure', '--', venv.python, '-c', script], {
      env: { CUSTODY_TOKEN: jobToken },
      timeoutMs: 90_000,
    });
    assert.equal(r.code, 1, 'the child failed (a Python exception), custody run passes its code on');
    assert.match(r.stderr, /Forbidden|403/);
    assert.ok(!r.stdout.includes('no access'));
  });

  it('Node: @azure/keyvault-secrets + DefaultAzureCredential with the same URL, unchanged', async () => {
    const r = await cli(['run', '--azure', '--', process.execPath, NODE_SCRIPT], {
      env: { CUSTODY_TOKEN: jobToken, ...STRAY_AZURE },
      timeoutMs: 90_000,
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${VALUE}\n`);
  });

  it('the child env: identity endpoint, proxy with a credential, NO_PROXY, CA files in a private dir removed at exit', async () => {
    const r = await cli(
      [
        'run',
        '--azure',
        '--',
        process.execPath,
        '-e',
        `const fs = require('fs'); const path = require('path');
         const e = process.env;
         const dir = path.dirname(e.REQUESTS_CA_BUNDLE);
         const azure = Object.keys(e).filter((k) => k.startsWith('AZURE_'));
         const bundle = fs.readFileSync(e.REQUESTS_CA_BUNDLE, 'utf8');
         console.log(JSON.stringify({ env: { IDENTITY_ENDPOINT: e.IDENTITY_ENDPOINT, MSI_ENDPOINT: e.MSI_ENDPOINT,
           header: (e.IDENTITY_HEADER || '').length, HTTPS_PROXY: e.HTTPS_PROXY, https_proxy: e.https_proxy,
           HTTP_PROXY: e.HTTP_PROXY, http_proxy: e.http_proxy, NO_PROXY: e.NO_PROXY, no_proxy: e.no_proxy,
           SSL_CERT_FILE: e.SSL_CERT_FILE, CURL_CA_BUNDLE: e.CURL_CA_BUNDLE, NODE_EXTRA_CA_CERTS: e.NODE_EXTRA_CA_CERTS,
           REQUESTS_CA_BUNDLE: e.REQUESTS_CA_BUNDLE }, azure, dir, mode: (fs.statSync(dir).mode & 0o777).toString(8),
           certs: (bundle.match(/BEGIN CERTIFICATE/g) || []).length, extra: fs.readFileSync(e.NODE_EXTRA_CA_CERTS, 'utf8') }));`,
      ],
      { env: { CUSTODY_TOKEN: jobToken, ...STRAY_AZURE } },
    );
    assert.equal(r.code, 0, r.stderr);
    const got = jsonLine(r.stdout, 'env');
    const e = got.env;
    assert.match(e.IDENTITY_ENDPOINT, /^http:\/\/127\.0\.0\.1:\d+\//);
    assert.equal(e.MSI_ENDPOINT, e.IDENTITY_ENDPOINT);
    assert.ok(e.header >= 16);
    assert.match(e.HTTPS_PROXY, /^http:\/\/custody:[A-Za-z0-9_-]{16,}@127\.0\.0\.1:\d+$/);
    for (const k of ['https_proxy', 'HTTP_PROXY', 'http_proxy']) assert.equal(e[k], e.HTTPS_PROXY, k);
    assert.equal(e.NO_PROXY, 'localhost,127.0.0.1,::1');
    assert.equal(e.no_proxy, e.NO_PROXY);
    for (const k of ['SSL_CERT_FILE', 'CURL_CA_BUNDLE']) assert.equal(e[k], e.REQUESTS_CA_BUNDLE, k);
    assert.deepEqual(got.azure, [], 'no AZURE_* variable reaches the child');
    assert.equal(got.mode, '700');
    assert.ok(got.certs > 50, 'public roots are in the bundle, not only Custody’s CA');
    const ca = await readFile(broker.caCertPath!, 'utf8');
    assert.ok(
      got.extra.trim().endsWith(ca.trim()),
      "NODE_EXTRA_CA_CERTS: Custody's CA (after any the parent had)",
    );
    assert.equal(existsSync(got.dir), false, 'the private dir is removed at exit');
  });

  /** A child that fetches `url` through HTTPS_PROXY with undici's ProxyAgent (which ignores NO_PROXY). */
  const viaProxy = (url: string) =>
    `const { ProxyAgent, request } = require('undici');
     (async () => {
       const dispatcher = new ProxyAgent({ uri: process.env.HTTPS_PROXY, requestTls: { ca: require('fs').readFileSync(${JSON.stringify(otherCa)}) } });
       try {
         const r = await request(${JSON.stringify(url)}, { dispatcher });
         console.log(JSON.stringify({ result: { status: r.statusCode, body: await r.body.text() } }));
       } catch (e) { console.log(JSON.stringify({ result: { error: String(e.message) } })); }
       await dispatcher.close();
     })();`;

  it('other hosts pass through the proxy untouched (TLS with their own CA), or get 403 with --proxy-deny-others', async () => {
    const url = `https://127.0.0.1:${otherPort}/hello?x=1`;
    const pass = await cli(['run', '--azure', '--', process.execPath, '-e', viaProxy(url)], {
      env: { CUSTODY_TOKEN: jobToken },
    });
    assert.equal(pass.code, 0, pass.stderr);
    assert.deepEqual(jsonLine(pass.stdout, 'result').result, {
      status: 200,
      body: 'other server saw GET /hello?x=1 proxy-auth=none',
    });

    const deny = await cli(
      ['run', '--azure', '--proxy-deny-others', '--', process.execPath, '-e', viaProxy(url)],
      {
        env: { CUSTODY_TOKEN: jobToken },
      },
    );
    assert.equal(deny.code, 0, deny.stderr);
    assert.match(jsonLine(deny.stdout, 'result').result.error, /403/);

    // Key Vault hosts still work with --proxy-deny-others.
    const kv = await cli(['run', '--azure', '--proxy-deny-others', '--', venv.python, DOC_SCRIPT], {
      env: { CUSTODY_TOKEN: jobToken },
      timeoutMs: 90_000,
    });
    assert.equal(kv.code, 0, kv.stderr);
    assert.equal(kv.stdout, `${VALUE}\n`);
    const kvNode = await cli(['run', '--azure', '--proxy-deny-others', '--', process.execPath, NODE_SCRIPT], {
      env: { CUSTODY_TOKEN: jobToken },
      timeoutMs: 90_000,
    });
    assert.equal(kvNode.code, 0, kvNode.stderr);
    assert.equal(kvNode.stdout, `${VALUE}\n`);
  });

  it('--azure needs an HTTPS broker and its CA (exit 1 with a hint, nothing started)', async () => {
    const r = await cli(['run', '--azure', '--', 'true'], { env: { CUSTODY_CACERT: undefined } });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /\((AzureNeedsCaCert|TlsUntrusted)\)\nhint: /);
  });

  it('--vault: hvac with nothing but the environment reads a KV v2 secret through the Vault door', async () => {
    const r = await cli(['run', '--vault', '--', venv.python, VAULT_SCRIPT], {
      env: { CUSTODY_TOKEN: jobToken, VAULT_NAMESPACE: 'ignored' },
      timeoutMs: 60_000,
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${VALUE}-vault\n`);
  });
});
