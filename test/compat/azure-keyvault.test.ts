import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { Agent, request } from 'undici';
import { type RunningBroker, startBroker } from '../../src/broker.js';
import { azureTlsHosts, resolveAzureConfig } from '../../src/compat/azure/config.js';
import {
  type ManagedIdentityEndpoint,
  startManagedIdentityEndpoint,
} from '../../src/compat/azure/managed-identity.js';
import { parseVaultHost } from '../../src/compat/azure/vault-host.js';
import { resolveServerConfig } from '../../src/config.js';

/**
 * The Azure Key Vault front door: wire details over raw HTTPS, permission parity with the native
 * door, the managed-identity endpoint, and the official Node SDK (`@azure/keyvault-secrets` with
 * `@azure/identity`) run unmodified in a child process.
 *
 * This file is also that child: with CUSTODY_AZURE_SDK_CHILD=1 it runs `sdkChild()` instead of
 * registering tests (the SDK must start in a fresh process: NODE_EXTRA_CA_CERTS is read at start,
 * msal reads IDENTITY_ENDPOINT at construction).
 */

const THIS_FILE = fileURLToPath(import.meta.url);
const DOMAIN = 'vault.custody.test';

if (process.env.CUSTODY_AZURE_SDK_CHILD === '1') {
  await sdkChild();
} else {
  registerTests();
}

// ---------------------------------------------------------------------------------------------
// The parent: a broker with vault hosts, and the tests.
// ---------------------------------------------------------------------------------------------

interface Reply {
  status: number;
  body: any;
  headers: Record<string, string | string[] | undefined>;
}

interface AzureBroker {
  broker: RunningBroker;
  port: number;
  ca: string;
  caPath: string;
  rootToken: string;
  dataDir: string;
  /** HTTPS to 127.0.0.1 with the given Host header (a vault host, or none for the plain address). */
  call(
    method: string,
    urlPath: string,
    o?: { host?: string; token?: string | null; body?: unknown; rawBody?: string; contentType?: string },
  ): Promise<Reply>;
  audit(): Promise<any[]>;
  stop(): Promise<void>;
}

async function startAzureBroker(env: Record<string, string>): Promise<AzureBroker> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'custody-azure-'));
  // `*.vault.custody.test` is added by the broker itself (a configured vault domain); the public
  // clouds' names are added here so the raw-HTTPS tests can send those Host headers too.
  const tlsHost = [
    '*.vault.azure.net',
    '*.vault.usgovcloudapi.net',
    '*.vault.azure.cn',
    '*.vault.example.org',
  ];
  const config = resolveServerConfig(
    { dataDir, listen: '127.0.0.1:0', logLevel: 'warn', tlsHost },
    { CUSTODY_AZURE_DOMAINS: DOMAIN, ...env },
  );
  const broker = await startBroker(config, pino({ level: 'warn' }, { write: () => {} }));
  const ca = await readFile(broker.caCertPath!, 'utf8');
  const rootToken = (await readFile(broker.rootTokenPath!, 'utf8')).trim();
  const port = Number(new URL(broker.url).port);
  const dispatcher = new Agent({ connect: { ca } });
  return {
    broker,
    port,
    ca,
    caPath: broker.caCertPath!,
    rootToken,
    dataDir,
    async call(method, urlPath, o = {}) {
      const headers: Record<string, string> = {};
      if (o.host) headers.host = o.host;
      const token = o.token === undefined ? rootToken : o.token;
      if (token) headers.authorization = `Bearer ${token}`;
      const body = o.rawBody ?? (o.body === undefined ? undefined : JSON.stringify(o.body));
      if (body !== undefined || o.contentType) headers['content-type'] = o.contentType ?? 'application/json';
      const res = await request(`${broker.url}${urlPath}`, {
        method: method as 'GET',
        headers,
        body,
        dispatcher,
      });
      const text = await res.body.text();
      let parsed: any = text;
      try {
        parsed = text ? JSON.parse(text) : null;
      } catch {}
      return { status: res.statusCode, body: parsed, headers: res.headers };
    },
    async audit() {
      const text = await readFile(path.join(dataDir, 'audit.log'), 'utf8');
      return text
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
    },
    async stop() {
      await broker.close();
      await dispatcher.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** A logged-in identity with an environment-bound token (what an auth method's login produces). */
async function login(b: AzureBroker, env: string, name: string) {
  const { identities, tokens } = b.broker.services;
  const identity = await identities.upsertFromLogin({
    env,
    authMethod: 'jwt',
    loginRole: 'test',
    kind: 'workload',
    name,
    metadata: {},
  });
  const { token, info } = await tokens.create({
    policies: [],
    identityId: identity.id,
    env,
    authMethod: 'jwt',
    ttlSeconds: 3600,
  });
  return { token, expiresAt: info.expiresAt!, ref: `${env}/${name}` };
}

async function assign(b: AzureBroker, principal: string, role: string, scope: string) {
  const res = await b.call('POST', '/v1/access/assignments', {
    body: { principal, role, scope, reason: 'azure door test', allow_management: true },
  });
  assert.equal(res.status, 200, JSON.stringify(res.body));
}

function registerTests() {
  let b: AzureBroker;
  let vault: string; // dev.vault.custody.test:PORT
  const api = '?api-version=7.6';

  before(async () => {
    b = await startAzureBroker({
      CUSTODY_AZURE_VAULTS: 'my-key-vault=prod',
      CUSTODY_AZURE_TENANT: 'contoso',
    });
    vault = `dev.${DOMAIN}:${b.port}`;
    for (const body of [{ name: 'dev' }, { name: 'prod', retention_days: 30, purge_protection: true }]) {
      const res = await b.call('POST', '/v1/envs', { body });
      assert.equal(res.status, 200, JSON.stringify(res.body));
    }
  });
  after(async () => {
    await b?.stop();
  });

  describe('vault routing and challenge', () => {
    test('Key Vault paths are answered only on vault hosts; native routes keep working there', async () => {
      const plain = await b.call('GET', `/secrets${api}`);
      assert.equal(plain.status, 404);
      assert.equal(plain.body.error.code, 'NotFound');
      assert.match(plain.body.error.message, /not a Key Vault host/);
      const other = await b.call('GET', `/secrets${api}`, { host: `dev.vault.example.org:${b.port}` });
      assert.equal(other.status, 404, 'an unconfigured domain is no vault host');
      // (no certificate names two labels under a domain: injected without TLS)
      const nested = await b.broker.app.inject({
        method: 'GET',
        url: `/secrets${api}`,
        headers: { host: `a.dev.${DOMAIN}:${b.port}`, authorization: `Bearer ${b.rootToken}` },
      });
      assert.equal(nested.statusCode, 404, 'a vault is one DNS label');
      assert.match(nested.json().error.message, /not a Key Vault host/);
      assert.equal((await b.call('GET', '/v1/envs')).status, 200);
      assert.equal((await b.call('GET', '/v1/envs', { host: vault })).status, 200);
    });

    test('a request without Authorization gets 401 and exactly the Key Vault challenge', async () => {
      for (const [method, p, rawBody] of [
        ['GET', `/secrets/x/${api}`, undefined],
        ['PUT', `/secrets/x${api}`, ''], // the SDK's first request: body removed, Content-Type kept
        ['GET', `/secrets${api}`, undefined],
      ] as const) {
        const res = await b.call(method, p, { host: vault, token: null, rawBody });
        assert.equal(res.status, 401, `${method} ${p}`);
        assert.equal(
          res.headers['www-authenticate'],
          `Bearer authorization="https://login.microsoftonline.com/contoso", resource="https://${DOMAIN}:${b.port}"`,
        );
        assert.equal(res.body.error.code, 'Unauthorized');
      }
      const azure = await b.call('GET', `/secrets/x/${api}`, { host: 'dev.vault.azure.net', token: null });
      assert.equal(
        azure.headers['www-authenticate'],
        'Bearer authorization="https://login.microsoftonline.com/contoso", resource="https://vault.azure.net"',
      );
      const bad = await b.call('GET', `/secrets/x/${api}`, { host: vault, token: 'cst_not-a-token' });
      assert.equal(bad.status, 401);
      assert.match(String(bad.headers['www-authenticate']), /^Bearer authorization=/);
      const entries = (await b.audit()).filter((e) => e.door === 'azure' && e.error_code === 'MissingToken');
      assert.ok(
        entries.length >= 3,
        'the challenge round trips are authenticated, and audited, by the pipeline',
      );
    });

    test('vault names map to environments: the table first, else the environment of that name', async () => {
      const prodHost = `my-key-vault.${DOMAIN}:${b.port}`;
      const set = await b.call('PUT', `/secrets/routing${api}`, {
        host: prodHost,
        body: { value: 'in-prod' },
      });
      assert.equal(set.status, 200, JSON.stringify(set.body));
      const native = await b.call('GET', '/v1/secrets/prod/routing');
      assert.equal(native.body.value, 'in-prod');
      assert.equal(
        set.body.attributes.recoveryLevel,
        'CustomizedRecoverable',
        'prod has purge protection and a retention under 90 days',
      );
      assert.equal(set.body.attributes.recoverableDays, 30);
      for (const host of [
        vault,
        'dev.vault.azure.net',
        'dev.vault.usgovcloudapi.net',
        'dev.vault.azure.cn:443',
      ]) {
        const res = await b.call('PUT', `/secrets/routing${api}`, { host, body: { value: `dev:${host}` } });
        assert.equal(res.status, 200, host);
        assert.equal(res.body.attributes.recoveryLevel, 'Recoverable+Purgeable');
        assert.equal(res.body.attributes.recoverableDays, 90);
        assert.ok(res.body.id.startsWith(`https://${host}/secrets/routing/`), res.body.id);
      }
      assert.equal((await b.call('GET', '/v1/secrets/dev/routing')).body.value, 'dev:dev.vault.azure.cn:443');
      const unknown = await b.call('GET', `/secrets${api}`, { host: `nope.${DOMAIN}:${b.port}` });
      assert.equal(unknown.status, 404);
      assert.equal(unknown.body.error.code, 'VaultNotFound');
    });
  });

  describe('configuration', () => {
    test('CUSTODY_AZURE_* variables are parsed strictly; vault hosts are read from the Host header', () => {
      const c = resolveAzureConfig({
        CUSTODY_AZURE_VAULTS: 'My-Key-Vault=prod, dev-vault=dev',
        CUSTODY_AZURE_DOMAINS: 'Vault.Custody.Test,.kv.example.org.',
        CUSTODY_AZURE_TENANT: 'contoso',
      });
      assert.deepEqual(c.vaults, { 'my-key-vault': 'prod', 'dev-vault': 'dev' });
      assert.deepEqual(c.domains, ['vault.custody.test', 'kv.example.org']);
      assert.deepEqual(azureTlsHosts(c), ['*.vault.custody.test', '*.kv.example.org']);
      assert.equal(resolveAzureConfig({}).tenant, 'custody');
      for (const env of [
        { CUSTODY_AZURE_VAULTS: 'novalue' },
        { CUSTODY_AZURE_VAULTS: 'a=b=c' },
        { CUSTODY_AZURE_VAULTS: 'x=Prod!' },
        { CUSTODY_AZURE_VAULTS: 'v=dev,v=prod' },
        { CUSTODY_AZURE_DOMAINS: 'nodots' },
        { CUSTODY_AZURE_TENANT: 'a b' },
        { CUSTODY_AZURE_DEFAULT_VAULT: 'not_a_vault' },
      ]) {
        assert.throws(() => resolveAzureConfig(env), { code: 'InvalidAzureConfig' }, JSON.stringify(env));
      }
      const host = (h: string) => parseVaultHost(c, h);
      assert.deepEqual(host('dev-vault.kv.example.org:8443'), {
        vault: 'dev-vault',
        env: 'dev',
        authority: 'dev-vault.kv.example.org:8443',
        resource: 'https://kv.example.org:8443',
      });
      assert.equal(
        host('Team-A.Vault.Azure.Net')?.env,
        'team-a',
        'unlisted vaults map to the same-named env',
      );
      assert.equal(host('team-a.vault.azure.net')?.resource, 'https://vault.azure.net');
      assert.equal(host('127.0.0.1:8270'), null);
      assert.equal(host('vault.azure.net'), null);
      assert.equal(host('a.b.vault.azure.net'), null);
      assert.equal(host('x.vault.azure.net.evil.org'), null);
      const withDefault = { ...c, defaultVault: 'dev-vault' };
      assert.deepEqual(parseVaultHost(withDefault, '127.0.0.1:8270'), {
        vault: 'dev-vault',
        env: 'dev',
        authority: '127.0.0.1:8270',
        resource: 'https://127.0.0.1:8270',
      });
    });
  });

  describe('operations and shapes', () => {
    test('set, get latest (trailing slash) and by version, with Key Vault bundle shapes', async () => {
      const nbf = Math.floor(Date.now() / 1000) - 60;
      const set = await b.call('PUT', `/secrets/shape${api}`, {
        host: vault,
        body: {
          value: 's3cret',
          contentType: 'text/plain',
          tags: { team: 'ml' },
          attributes: { enabled: true, nbf },
        },
      });
      assert.equal(set.status, 200);
      assert.match(String(set.headers['content-type']), /^application\/json/);
      const v1 = set.body.id.split('/').pop();
      assert.match(v1, /^[0-9a-f]{32}$/);
      assert.equal(set.body.id, `https://${vault}/secrets/shape/${v1}`);
      assert.equal(set.body.value, 's3cret');
      assert.equal(set.body.contentType, 'text/plain');
      assert.deepEqual(set.body.tags, { team: 'ml' });
      assert.equal(set.body.attributes.nbf, nbf);
      assert.equal(set.body.attributes.enabled, true);
      assert.ok(Number.isInteger(set.body.attributes.created) && set.body.attributes.created < 1e11);
      await b.call('PUT', `/secrets/shape${api}`, { host: vault, body: { value: 'second' } });
      // The JS SDK percent-encodes the query key.
      const latest = await b.call('GET', '/secrets/shape/?api%2Dversion=2025-07-01', { host: vault });
      assert.equal(latest.status, 200);
      assert.equal(latest.body.value, 'second');
      const first = await b.call('GET', `/secrets/shape/${v1}${api}`, { host: vault });
      assert.equal(first.body.value, 's3cret');
      assert.equal(first.body.id, set.body.id);
    });

    test('update properties, disable a version: 403 Forbidden with inner SecretDisabled', async () => {
      const set = await b.call('PUT', `/secrets/toggle${api}`, { host: vault, body: { value: 'v' } });
      const id = set.body.id.split('/').pop();
      const upd = await b.call('PATCH', `/secrets/toggle/${id}${api}`, {
        host: vault,
        body: { contentType: 'application/json', attributes: { enabled: false }, tags: { a: 'b' } },
      });
      assert.equal(upd.status, 200, JSON.stringify(upd.body));
      assert.equal(upd.body.value, undefined, 'update returns no value');
      assert.equal(upd.body.attributes.enabled, false);
      assert.equal(upd.body.contentType, 'application/json');
      const get = await b.call('GET', `/secrets/toggle/${id}${api}`, { host: vault });
      assert.equal(get.status, 403);
      assert.equal(get.body.error.code, 'Forbidden');
      assert.equal(get.body.error.innererror.code, 'SecretDisabled');
    });

    test('list pages with maxresults and an absolute nextLink on the same host and port', async () => {
      for (const n of ['page-a', 'page-b', 'page-c', 'page-d', 'page-e'])
        await b.call('PUT', `/v1/secrets/dev/${n}`, { body: { value: n } });
      await b.call('PUT', '/v1/secrets/dev/nested/name', { body: { value: 'x' } });
      const names: string[] = [];
      let link: string | null = `https://${vault}/secrets?api%2Dversion=7.6&maxresults=2`;
      let pages = 0;
      while (link) {
        const u: URL = new URL(link);
        assert.equal(u.host, vault);
        assert.equal(u.protocol, 'https:');
        const res = await b.call('GET', u.pathname + u.search, { host: vault });
        assert.equal(res.status, 200, JSON.stringify(res.body));
        assert.ok(res.body.value.length <= 2);
        for (const item of res.body.value) {
          assert.equal(item.value, undefined, 'items carry no value');
          assert.ok(
            !/\/secrets\/[^/]+\/[0-9a-f]{32}$/.test(item.id),
            'list items have no version in their id',
          );
          names.push(item.id.split('/').pop());
        }
        assert.ok('nextLink' in res.body);
        link = res.body.nextLink;
        if (link) assert.match(link, /\$skiptoken=/);
        pages++;
      }
      assert.ok(pages >= 3);
      for (const n of ['page-a', 'page-b', 'page-c', 'page-d', 'page-e']) assert.ok(names.includes(n), n);
      assert.ok(!names.includes('nested'), 'nested Custody names are not representable as Key Vault ids');
      const bad = await b.call('GET', '/secrets?api-version=7.6&maxresults=26', { host: vault });
      assert.equal(bad.status, 400);
      assert.equal(bad.body.error.code, 'BadParameter');
      const badToken = await b.call('GET', '/secrets?api-version=7.6&$skiptoken=zz', { host: vault });
      assert.equal(badToken.status, 400);

      const versions = await b.call('GET', `/secrets/shape/versions${api}&maxresults=1`, { host: vault });
      assert.equal(versions.body.value.length, 1);
      assert.match(versions.body.value[0].id, /\/secrets\/shape\/[0-9a-f]{32}$/);
      const next = new URL(versions.body.nextLink);
      const page2 = await b.call('GET', next.pathname + next.search, { host: vault });
      assert.equal(page2.body.value.length, 1);
      assert.equal(page2.body.nextLink, null);
    });

    test('delete, deleted bundle, 409 for a deleted name, recover, purge (204)', async () => {
      await b.call('PUT', `/secrets/gone${api}`, { host: vault, body: { value: 'bye' } });
      const del = await b.call('DELETE', `/secrets/gone${api}`, { host: vault });
      assert.equal(del.status, 200);
      assert.equal(del.body.recoveryId, `https://${vault}/deletedsecrets/gone`);
      assert.ok(del.body.scheduledPurgeDate - del.body.deletedDate >= 90 * 86400 - 1);
      assert.equal(del.body.value, undefined);
      const conflict = await b.call('PUT', `/secrets/gone${api}`, { host: vault, body: { value: 'again' } });
      assert.equal(conflict.status, 409);
      assert.equal(conflict.body.error.code, 'Conflict');
      const getLive = await b.call('GET', `/secrets/gone/${api}`, { host: vault });
      assert.equal(getLive.status, 404, 'a deleted name is out of the live collection, as in Key Vault');
      assert.equal(getLive.body.error.code, 'SecretNotFound');
      assert.match(getLive.body.error.message, /deleted/);
      const getDel = await b.call('GET', `/deletedsecrets/gone${api}`, { host: vault });
      assert.equal(getDel.status, 200);
      assert.equal(getDel.body.recoveryId, del.body.recoveryId);
      const list = await b.call('GET', `/deletedsecrets${api}`, { host: vault });
      assert.ok(list.body.value.some((d: any) => d.recoveryId === del.body.recoveryId));
      assert.equal(list.body.nextLink, null);
      const rec = await b.call('POST', `/deletedsecrets/gone/recover${api}`, { host: vault });
      assert.equal(rec.status, 200);
      assert.equal((await b.call('GET', `/secrets/gone/${api}`, { host: vault })).body.value, 'bye');
      await b.call('DELETE', `/secrets/gone${api}`, { host: vault });
      const purge = await b.call('DELETE', `/deletedsecrets/gone${api}`, { host: vault });
      assert.equal(purge.status, 204);
      assert.equal(purge.body, null);
      const none = await b.call('GET', `/deletedsecrets/gone${api}`, { host: vault });
      assert.equal(none.status, 404);
      assert.equal(none.body.error.code, 'SecretNotFound');
      const prodHost = `my-key-vault.${DOMAIN}:${b.port}`;
      await b.call('PUT', `/secrets/protected${api}`, { host: prodHost, body: { value: 'p' } });
      const prodDel = await b.call('DELETE', `/secrets/protected${api}`, { host: prodHost });
      assert.equal(prodDel.body.scheduledPurgeDate - prodDel.body.deletedDate, 30 * 86400);
      const protectedPurge = await b.call('DELETE', `/deletedsecrets/protected${api}`, { host: prodHost });
      assert.equal(protectedPurge.status, 403, 'purge protection');
      assert.equal(protectedPurge.body.error.code, 'Forbidden');
      assert.equal(protectedPurge.body.error.innererror.code, 'PurgeProtected');
      const missing = await b.call('GET', `/secrets/never-was/${api}`, { host: vault });
      assert.equal(missing.status, 404);
      assert.equal(missing.body.error.code, 'SecretNotFound');
    });

    test('backup and restore: a sealed blob that restores only into its own vault', async () => {
      await b.call('PUT', `/secrets/keep${api}`, { host: vault, body: { value: 'one', contentType: 'a/b' } });
      await b.call('PUT', `/secrets/keep${api}`, { host: vault, body: { value: 'two', tags: { t: '1' } } });
      const backup = await b.call('POST', `/secrets/keep/backup${api}`, { host: vault });
      assert.equal(backup.status, 200, JSON.stringify(backup.body));
      assert.match(backup.body.value, /^[A-Za-z0-9_-]+$/, 'base64url');
      assert.ok(!Buffer.from(backup.body.value, 'base64url').toString().includes('two'), 'values are sealed');
      const exists = await b.call('POST', `/secrets/restore${api}`, { host: vault, body: backup.body });
      assert.equal(exists.status, 409, 'restoring over an existing secret is a conflict');
      await b.call('DELETE', `/secrets/keep${api}`, { host: vault });
      await b.call('DELETE', `/deletedsecrets/keep${api}`, { host: vault });
      const prodHost = `my-key-vault.${DOMAIN}:${b.port}`;
      const elsewhere = await b.call('POST', `/secrets/restore${api}`, { host: prodHost, body: backup.body });
      assert.equal(elsewhere.status, 400, 'another vault cannot open it');
      assert.equal(elsewhere.body.error.code, 'BadParameter');
      const envelope = JSON.parse(Buffer.from(backup.body.value, 'base64url').toString());
      const renamed = Buffer.from(JSON.stringify({ ...envelope, name: 'other' })).toString('base64url');
      const tampered = await b.call('POST', `/secrets/restore${api}`, {
        host: vault,
        body: { value: renamed },
      });
      assert.equal(tampered.status, 400, 'the name is bound to the sealed content');
      const restored = await b.call('POST', `/secrets/restore${api}`, { host: vault, body: backup.body });
      assert.equal(restored.status, 200, JSON.stringify(restored.body));
      assert.match(restored.body.id, new RegExp(`^https://${vault.replace(/\./g, '\\.')}/secrets/keep/`));
      const versions = await b.call('GET', '/v1/secret-versions/dev/keep');
      assert.deepEqual(
        versions.body.items.map((v: any) => [v.content_type, v.tags]),
        [
          ['a/b', {}],
          [null, { t: '1' }],
        ],
      );
      assert.equal((await b.call('GET', '/v1/secrets/dev/keep?version=1')).body.value, 'one');
      assert.equal((await b.call('GET', '/v1/secrets/dev/keep')).body.value, 'two');
      const junk = await b.call('POST', `/secrets/restore${api}`, { host: vault, body: { value: 'bm9wZQ' } });
      assert.equal(junk.status, 400);
    });

    test('bad input gets BadParameter, never a 500', async () => {
      for (const [method, p, body] of [
        ['PUT', `/secrets/x${api}`, { value: 42 }],
        ['PUT', `/secrets/x${api}`, { value: 'v', attributes: { exp: 'tomorrow' } }],
        ['PUT', `/secrets/x${api}`, { value: 'v', attributes: { nbf: 2_000_000_000, exp: 1_000_000_000 } }],
        ['PUT', `/secrets/bad%20name${api}`, { value: 'v' }],
        ['PUT', `/secrets/a%2Fb${api}`, { value: 'v' }],
        ['GET', `/secrets/shape/not-a-version${api}`, undefined],
      ] as const) {
        const res = await b.call(method, p, { host: vault, body });
        assert.equal(res.status, 400, `${method} ${p} ${JSON.stringify(res.body)}`);
        assert.equal(res.body.error.code, 'BadParameter');
      }
      const malformed = await b.call('PUT', `/secrets/x${api}`, { host: vault, rawBody: '{"value":' });
      assert.equal(malformed.status, 400);
      assert.equal(malformed.body.error.code, 'BadParameter');
      const wrongMethod = await b.call('POST', `/secrets/x/abc${api}`, { host: vault });
      assert.equal(wrongMethod.status, 405);
      const noRoute = await b.call('GET', `/secrets/x/y/z${api}`, { host: vault });
      assert.equal(noRoute.status, 404);
    });
  });

  describe('permission parity', () => {
    test('an identity denied by RBAC is denied alike through both doors, and both denials are audited', async () => {
      await b.call('PUT', '/v1/secrets/prod/allowed', { body: { value: 'ok' } });
      await b.call('PUT', '/v1/secrets/prod/forbidden', { body: { value: 'no' } });
      const job = await login(b, 'prod', 'parity-job');
      await assign(b, job.ref, 'secrets-user', 'prod/secrets/allowed');
      const prodHost = `my-key-vault.${DOMAIN}:${b.port}`;
      const t = { token: job.token };

      const nativeOk = await b.call('GET', '/v1/secrets/prod/allowed', t);
      const azureOk = await b.call('GET', `/secrets/allowed/${api}`, { ...t, host: prodHost });
      assert.equal(nativeOk.body.value, 'ok');
      assert.equal(azureOk.body.value, 'ok');

      const cases: [string, string, string, string, unknown][] = [
        ['GET', '/v1/secrets/prod/forbidden', 'GET', `/secrets/forbidden/${api}`, undefined],
        ['PUT', '/v1/secrets/prod/allowed', 'PUT', `/secrets/allowed${api}`, { value: 'overwrite' }],
        ['DELETE', '/v1/secrets/prod/allowed', 'DELETE', `/secrets/allowed${api}`, undefined],
      ];
      for (const [nm, np, am, ap, body] of cases) {
        const n = await b.call(nm, np, { ...t, body });
        const a = await b.call(am, ap, { ...t, host: prodHost, body });
        assert.equal(n.status, 403, `${nm} ${np}`);
        assert.equal(a.status, 403, `${am} ${ap}`);
        assert.equal(n.body.error.code, 'PermissionDenied');
        assert.equal(a.body.error.code, 'Forbidden');
        assert.equal(a.body.error.innererror.code, 'ForbiddenByRbac');
        assert.equal(a.body.error.message, n.body.error.message, 'the same decision, word for word');
      }
      const denied = (await b.audit()).filter(
        (e) => e.type === 'request' && e.outcome === 'denied' && e.resource?.startsWith('prod/'),
      );
      for (const [action, resource] of [
        ['secrets/get', 'prod/forbidden'],
        ['secrets/set', 'prod/allowed'],
        ['secrets/delete', 'prod/allowed'],
      ]) {
        const doors = denied
          .filter(
            (e) => e.action === action && e.resource === resource && e.error_code === 'PermissionDenied',
          )
          .map((e) => e.door)
          .sort();
        assert.deepEqual(doors, ['azure', 'native'], `${action} ${resource}`);
      }
      const azureEntry = denied.find((e) => e.door === 'azure');
      assert.equal(azureEntry.data.vault, 'my-key-vault');
    });
  });

  describe('managed-identity endpoint', () => {
    let mi: ManagedIdentityEndpoint;
    const issued: string[] = [];
    before(async () => {
      mi = await startManagedIdentityEndpoint({
        secret: 'mi-secret-0123456789abcdef',
        getToken: async (r) => {
          issued.push(`${r.source}:${r.resource}:${r.clientId ?? ''}`);
          return { token: 'tok-from-custody', expiresAt: Date.now() + 3_600_000 };
        },
      });
    });
    after(async () => {
      await mi?.close();
    });
    const get = async (url: string, headers: Record<string, string> = {}) => {
      const res = await request(url, { headers });
      return { status: res.statusCode, body: (await res.body.json()) as any };
    };

    test('App Service, Azure ML and on-behalf-of styles get the token in the shape every SDK reads', async () => {
      assert.equal(mi.env.IDENTITY_ENDPOINT, mi.url);
      assert.equal(mi.env.MSI_ENDPOINT, mi.url);
      assert.equal(mi.env.IDENTITY_HEADER, 'mi-secret-0123456789abcdef');
      assert.equal(mi.env.MSI_SECRET, 'mi-secret-0123456789abcdef');
      assert.match(mi.url, /^http:\/\/127\.0\.0\.1:\d+\//);
      const resource = encodeURIComponent('https://vault.custody.test:8443');
      const app = await get(`${mi.url}?api-version=2019-08-01&resource=${resource}`, {
        'X-IDENTITY-HEADER': mi.env.IDENTITY_HEADER,
      });
      assert.equal(app.status, 200);
      assert.equal(app.body.access_token, 'tok-from-custody');
      assert.equal(app.body.token_type, 'Bearer');
      assert.equal(app.body.resource, 'https://vault.custody.test:8443');
      assert.match(app.body.expires_on, /^\d{10}$/);
      assert.ok(Number(app.body.expires_in) > 3500 && Number(app.body.expires_in) <= 3600);
      const ml = await get(`${mi.url}?api-version=2017-09-01&resource=${resource}&clientid=abc`, {
        secret: mi.env.MSI_SECRET,
      });
      assert.equal(ml.status, 200);
      assert.equal(ml.body.access_token, 'tok-from-custody');
      const obo = await get(`${mi.oboEndpoint}?resource=${resource}`);
      assert.equal(obo.status, 200);
      assert.equal(obo.body.access_token, 'tok-from-custody');
      assert.deepEqual(issued, [
        'app-service:https://vault.custody.test:8443:',
        'azure-ml:https://vault.custody.test:8443:abc',
        'azure-ml-obo:https://vault.custody.test:8443:',
      ]);
    });

    test('a missing or wrong secret, a missing resource or a wrong path gets no token', async () => {
      const resource = 'resource=https%3A%2F%2Fvault.azure.net';
      const missing = await get(`${mi.url}?api-version=2019-08-01&${resource}`);
      assert.equal(missing.status, 400);
      assert.equal(missing.body.error, 'invalid_request');
      assert.ok(missing.body.error_description);
      const wrong = await get(`${mi.url}?api-version=2019-08-01&${resource}`, {
        'X-IDENTITY-HEADER': 'mi-secret-0123456789abcdeX',
      });
      assert.equal(wrong.status, 401);
      assert.equal(wrong.body.error, 'unauthorized_client');
      const wrongMl = await get(`${mi.url}?api-version=2017-09-01&${resource}`, { secret: 'nope' });
      assert.equal(wrongMl.status, 401);
      const noResource = await get(`${mi.url}?api-version=2019-08-01`, {
        'X-IDENTITY-HEADER': mi.env.IDENTITY_HEADER,
      });
      assert.equal(noResource.status, 400);
      const guessedObo = await get(`${new URL(mi.url).origin}/obo/guess?${resource}`);
      assert.equal(guessedObo.status, 404);
      assert.equal(issued.length, 3, 'no token was issued for any of these');
    });
  });

  describe('official Node SDK (@azure/keyvault-secrets + @azure/identity)', () => {
    test('every mapped operation and the error cases, through ManagedIdentityCredential and DefaultAzureCredential', async () => {
      const officer = await login(b, 'dev', 'sdk-officer');
      await assign(b, officer.ref, 'secrets-officer', 'dev');
      const reader = await login(b, 'dev', 'sdk-reader');
      await assign(b, reader.ref, 'reader', 'dev');
      const tokens = new Map<string, { token: string; expiresAt: number }>();
      let current = officer;
      const mi = await startManagedIdentityEndpoint({
        getToken: async (r) => {
          tokens.set(r.resource, current);
          return current;
        },
      });
      try {
        const run = async (credential: string, scenario: string) => {
          const out = await runChild({
            ...mi.env,
            NODE_EXTRA_CA_CERTS: b.caPath,
            CUSTODY_AZURE_SDK_CHILD: '1',
            CUSTODY_TEST_VAULT_URL: `https://dev.${DOMAIN}:${b.port}/`,
            CUSTODY_TEST_CREDENTIAL: credential,
            CUSTODY_TEST_SCENARIO: scenario,
          });
          return out;
        };
        const full = await run('managed', 'full');
        assert.equal(full.code, 0, full.output);
        assert.match(full.output, /SDK-CHILD-OK full/);
        assert.deepEqual([...tokens.keys()], [`https://${DOMAIN}:${b.port}`], 'the challenge resource');

        current = reader;
        const denied = await run('default', 'reader');
        assert.equal(denied.code, 0, denied.output);
        assert.match(denied.output, /SDK-CHILD-OK reader/);
      } finally {
        await mi.close();
      }
      const sdkEntries = (await b.audit()).filter((e) => e.door === 'azure' && e.auth?.identity);
      assert.ok(sdkEntries.some((e) => e.action === 'secrets/purge' && e.outcome === 'ok'));
      assert.ok(sdkEntries.some((e) => e.action === 'secrets/get' && e.outcome === 'denied'));
    });
  });
}

function runChild(env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
    // Not a test-runner subprocess: a plain script.
    delete childEnv.NODE_TEST_CONTEXT;
    const child = spawn(process.execPath, ['--import', 'tsx', THIS_FILE], {
      env: childEnv,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (c) => (output += c));
    child.stderr.on('data', (c) => (output += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

// ---------------------------------------------------------------------------------------------
// The child: the official SDK, unmodified, as a workload would use it.
// ---------------------------------------------------------------------------------------------

async function sdkChild(): Promise<void> {
  // Test-only name resolution: `*.custody.test` → 127.0.0.1 (such names do not resolve here).
  const dns = (await import('node:dns')).default;
  const original = dns.lookup;
  (dns as any).lookup = (host: string, opts: any, cb: any) => {
    if (typeof opts === 'function') [cb, opts] = [opts, {}];
    if (typeof host === 'string' && host.endsWith('.custody.test')) {
      const o = typeof opts === 'number' ? { family: opts } : (opts ?? {});
      if (o.all) return process.nextTick(cb, null, [{ address: '127.0.0.1', family: 4 }]);
      return process.nextTick(cb, null, '127.0.0.1', 4);
    }
    return (original as any).call(dns, host, opts, cb);
  };

  const { SecretClient } = await import('@azure/keyvault-secrets');
  const { DefaultAzureCredential, ManagedIdentityCredential } = await import('@azure/identity');
  const vaultUrl = process.env.CUSTODY_TEST_VAULT_URL!;
  const credential =
    process.env.CUSTODY_TEST_CREDENTIAL === 'default'
      ? new DefaultAzureCredential()
      : new ManagedIdentityCredential();
  const client = new SecretClient(vaultUrl, credential, {
    retryOptions: { maxRetries: 0 },
  });
  const scenario = process.env.CUSTODY_TEST_SCENARIO;
  const rejects = async (p: Promise<unknown>, status: number, code: string, inner?: string) => {
    try {
      await p;
    } catch (err: any) {
      assert.equal(err.statusCode, status, `${err.statusCode} ${err.code} ${err.message}`);
      assert.equal(err.code, code);
      if (inner) assert.match(JSON.stringify(err.details ?? {}), new RegExp(inner));
      return err;
    }
    assert.fail(`expected ${status} ${code}`);
  };

  if (scenario === 'full') {
    // set / get latest / get by version / properties
    const s1 = await client.setSecret('sdk-db-password', 'hunter2', {
      contentType: 'text/plain',
      tags: { owner: 'ml' },
    });
    assert.equal(s1.value, 'hunter2');
    assert.equal(s1.name, 'sdk-db-password');
    assert.match(s1.properties.version!, /^[0-9a-f]{32}$/);
    assert.equal(s1.properties.vaultUrl, vaultUrl.replace(/\/$/, ''));
    assert.equal(s1.properties.recoveryLevel, 'Recoverable+Purgeable');
    assert.equal(s1.properties.recoverableDays, 90);
    const s2 = await client.setSecret('sdk-db-password', 'hunter3', {
      expiresOn: new Date(Date.now() + 86_400_000),
    });
    const latest = await client.getSecret('sdk-db-password');
    assert.equal(latest.value, 'hunter3');
    assert.equal(latest.properties.version, s2.properties.version);
    assert.ok(latest.properties.expiresOn instanceof Date);
    assert.ok(latest.properties.createdOn instanceof Date);
    const old = await client.getSecret('sdk-db-password', { version: s1.properties.version });
    assert.equal(old.value, 'hunter2');
    assert.deepEqual(old.properties.tags, { owner: 'ml' });
    assert.equal(old.properties.contentType, 'text/plain');

    // update properties; a disabled version is refused with 403 Forbidden / SecretDisabled
    const upd = await client.updateSecretProperties('sdk-db-password', s1.properties.version!, {
      enabled: false,
      tags: { owner: 'ml', state: 'retired' },
    });
    assert.equal(upd.enabled, false);
    assert.deepEqual(upd.tags, { owner: 'ml', state: 'retired' });
    await rejects(
      client.getSecret('sdk-db-password', { version: s1.properties.version }),
      403,
      'Forbidden',
      'SecretDisabled',
    );

    // list (paged with an absolute nextLink) and list versions
    for (let i = 0; i < 4; i++) await client.setSecret(`sdk-page-${i}`, `p${i}`);
    const names: string[] = [];
    let pages = 0;
    for await (const page of client.listPropertiesOfSecrets().byPage({ maxPageSize: 2 })) {
      pages++;
      for (const p of page) names.push(p.name);
    }
    assert.ok(pages >= 3, `pages: ${pages}`);
    for (const n of ['sdk-db-password', 'sdk-page-0', 'sdk-page-3']) assert.ok(names.includes(n), n);
    const versions: string[] = [];
    for await (const v of client.listPropertiesOfSecretVersions('sdk-db-password')) versions.push(v.version!);
    assert.deepEqual(versions.sort(), [s1.properties.version, s2.properties.version].sort());

    // not found
    await rejects(client.getSecret('sdk-no-such-secret'), 404, 'SecretNotFound');

    // backup / restore
    const blob = await client.backupSecret('sdk-page-0');
    assert.ok(blob instanceof Uint8Array && blob.length > 0);

    // delete (polled until the deleted secret shows), get/list deleted, 409 on the deleted name
    const delPoller = await client.beginDeleteSecret('sdk-page-0');
    const deleted = await delPoller.pollUntilDone();
    assert.equal(deleted.name, 'sdk-page-0');
    assert.ok(deleted.properties.deletedOn instanceof Date);
    assert.ok(deleted.properties.scheduledPurgeDate instanceof Date);
    assert.match(deleted.properties.recoveryId!, /\/deletedsecrets\/sdk-page-0$/);
    const gotDeleted = await client.getDeletedSecret('sdk-page-0');
    assert.equal(gotDeleted.name, 'sdk-page-0');
    const deletedNames: string[] = [];
    for await (const d of client.listDeletedSecrets()) deletedNames.push(d.name);
    assert.ok(deletedNames.includes('sdk-page-0'));
    await rejects(client.setSecret('sdk-page-0', 'again'), 409, 'Conflict');
    await rejects(client.getSecret('sdk-page-0'), 404, 'SecretNotFound');

    // recover (polled until the secret reads again)
    const recPoller = await client.beginRecoverDeletedSecret('sdk-page-0');
    const recovered = await recPoller.pollUntilDone();
    assert.equal(recovered.name, 'sdk-page-0');
    assert.equal((await client.getSecret('sdk-page-0')).value, 'p0');

    // purge, then restore from the backup
    await (await client.beginDeleteSecret('sdk-page-0')).pollUntilDone();
    await client.purgeDeletedSecret('sdk-page-0');
    await rejects(client.getDeletedSecret('sdk-page-0'), 404, 'SecretNotFound');
    const restored = await client.restoreSecretBackup(blob);
    assert.equal(restored.name, 'sdk-page-0');
    assert.equal((await client.getSecret('sdk-page-0')).value, 'p0');
    await rejects(client.restoreSecretBackup(blob), 409, 'Conflict');
  } else if (scenario === 'reader') {
    // Key Vault Reader ≙ reader: metadata yes, values and writes no.
    const names: string[] = [];
    for await (const p of client.listPropertiesOfSecrets()) names.push(p.name);
    assert.ok(names.includes('sdk-db-password'));
    await rejects(client.getSecret('sdk-db-password'), 403, 'Forbidden', 'ForbiddenByRbac');
    await rejects(client.setSecret('sdk-db-password', 'x'), 403, 'Forbidden', 'ForbiddenByRbac');
    await rejects(client.beginDeleteSecret('sdk-db-password'), 403, 'Forbidden', 'ForbiddenByRbac');
  } else {
    throw new Error(`unknown scenario ${scenario}`);
  }
  process.stdout.write(`SDK-CHILD-OK ${scenario}\n`);
}
