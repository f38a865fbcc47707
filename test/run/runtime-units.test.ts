import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { rootCertificates } from 'node:tls';
import { CliError } from '../../src/cli/errors.js';
import { ensureTls } from '../../src/http/tls.js';
import { AZURE_IDENTITY_VARIABLES, checkVaultCertificate } from '../../src/runtime/azure.js';
import { makePrivateDir, writeCaBundle } from '../../src/runtime/ca-bundle.js';
import { baseChildEnv, checkVariableClashes } from '../../src/runtime/run.js';
import { leaseVariables, parseCredsSpec, parseSecretSpec, SpecError } from '../../src/runtime/specs.js';
import { exitCodeOf } from '../../src/runtime/supervisor.js';
import { vaultAddr } from '../../src/runtime/vault.js';

describe('custody run: building blocks', () => {
  let work: string;
  before(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'custody-run-units-'));
  });
  after(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('parses --secret and --creds specs; errors name the flag, never a value', () => {
    assert.deepEqual(parseSecretSpec('A=prod/db/password'), {
      variable: 'A',
      env: 'prod',
      name: 'db/password',
    });
    assert.deepEqual(parseSecretSpec('_b1=dev/x#user.name'), {
      variable: '_b1',
      env: 'dev',
      name: 'x',
      field: 'user.name',
    });
    assert.deepEqual(parseSecretSpec('C=dev/x#a#b'), { variable: 'C', env: 'dev', name: 'x', field: 'a#b' });
    assert.deepEqual(parseCredsSpec('PG=prod/warehouse/reader'), {
      prefix: 'PG',
      env: 'prod',
      engine: 'warehouse',
      role: 'reader',
    });
    for (const bad of [
      '',
      '=prod/x',
      'A',
      'A-B=prod/x',
      '9=prod/x',
      'A=Prod/x',
      'A=prod/',
      'A=prod/../x',
      'A=prod/x#',
    ])
      assert.throws(() => parseSecretSpec(bad), SpecError, bad);
    for (const bad of [
      'PG=prod/warehouse',
      'PG=prod/warehouse/reader/x',
      'PG=prod//reader',
      'PG=prod/Ware/reader',
      'P G=prod/a/b',
    ])
      assert.throws(() => parseCredsSpec(bad), SpecError, bad);
    assert.throws(
      () =>
        checkVariableClashes({
          secrets: [parseSecretSpec('HTTPS_PROXY=prod/x')],
          creds: [],
          vault: false,
          azure: true,
        }),
      /HTTPS_PROXY is set by both --azure and --secret HTTPS_PROXY/,
    );
    assert.doesNotThrow(() =>
      checkVariableClashes({
        secrets: [parseSecretSpec('HTTPS_PROXY=prod/x')],
        creds: [],
        vault: true,
        azure: false,
      }),
    );
  });

  it('maps a lease to PREFIX_* variables like `creds issue --format env`', () => {
    assert.deepEqual(
      leaseVariables(
        {
          lease_id: 'prod/pg/r/abc',
          username: 'u',
          password: 'p',
          data: { connection_url: 'postgres://h/db', 'db-name': 'x' },
        },
        'PG',
      ),
      [
        ['PG_USERNAME', 'u'],
        ['PG_PASSWORD', 'p'],
        ['PG_LEASE_ID', 'prod/pg/r/abc'],
        ['PG_CONNECTION_URL', 'postgres://h/db'],
        ['PG_DB_NAME', 'x'],
      ],
    );
    const mlflow = new Map(
      leaseVariables(
        {
          lease_id: 'prod/ml/t/abc',
          username: 'u',
          password: 'p',
          data: { MLFLOW_TRACKING_URI: 'http://m', MLFLOW_TRACKING_USERNAME: 'u' },
        },
        'ML',
      ),
    );
    assert.equal(mlflow.get('MLFLOW_TRACKING_URI'), 'http://m');
    assert.equal(mlflow.get('MLFLOW_TRACKING_PASSWORD'), 'p');
    assert.equal(mlflow.get('ML_PASSWORD'), 'p');
  });

  it('exit codes: the code, or 128 + the signal number', () => {
    assert.equal(exitCodeOf(0, null), 0);
    assert.equal(exitCodeOf(3, null), 3);
    assert.equal(exitCodeOf(null, 'SIGKILL'), 137);
    assert.equal(exitCodeOf(null, 'SIGTERM'), 143);
    assert.equal(exitCodeOf(null, 'SIGINT'), 130);
    assert.equal(exitCodeOf(null, 'SIGHUP'), 129);
  });

  it("the child's base environment: no CUSTODY_TOKEN, and with --azure no identity-selecting variables", () => {
    const parent = {
      PATH: '/bin',
      CUSTODY_TOKEN: 't',
      CUSTODY_ADDR: 'a',
      AZURE_CLIENT_ID: 'c',
      AZURE_STORAGE_ACCOUNT: 's',
      MSI_SECRET: 'm',
    };
    const plain = baseChildEnv(parent, { azure: false, vault: false, passToken: false });
    assert.deepEqual(plain.env, {
      PATH: '/bin',
      CUSTODY_ADDR: 'a',
      AZURE_CLIENT_ID: 'c',
      AZURE_STORAGE_ACCOUNT: 's',
      MSI_SECRET: 'm',
    });
    const azure = baseChildEnv(parent, { azure: true, vault: false, passToken: true });
    assert.deepEqual(azure.env, {
      PATH: '/bin',
      CUSTODY_TOKEN: 't',
      CUSTODY_ADDR: 'a',
      AZURE_STORAGE_ACCOUNT: 's',
    });
    assert.deepEqual(azure.removed, ['AZURE_CLIENT_ID', 'MSI_SECRET']);
    assert.ok(AZURE_IDENTITY_VARIABLES.includes('AZURE_FEDERATED_TOKEN_FILE'));
    assert.equal(vaultAddr('https://h:8270/'), 'https://h:8270/vault');
  });

  it('CA files: a 0700 private dir; the bundle = public roots + system/parent bundles + Custody CA; removed after', async () => {
    const dir = await makePrivateDir();
    assert.equal((await stat(dir.path)).mode & 0o777, 0o700);
    const tls = await ensureTls(path.join(work, 'ca1'), { hosts: [] });
    const custodyCa = await readFile(tls.caCertPath, 'utf8');
    const other = await ensureTls(path.join(work, 'ca2'), { hosts: [] });
    const parentBundle = path.join(work, 'corp-bundle.pem');
    await writeFile(parentBundle, await readFile(other.caCertPath, 'utf8'));
    const { bundlePath, extraPath } = await writeCaBundle(dir.path, custodyCa, {
      REQUESTS_CA_BUNDLE: parentBundle,
      NODE_EXTRA_CA_CERTS: '/nonexistent.pem',
    });
    const bundle = await readFile(bundlePath, 'utf8');
    assert.ok(bundle.includes(custodyCa.trim()));
    assert.ok(
      bundle.includes((await readFile(other.caCertPath, 'utf8')).trim()),
      "the parent's bundle is kept",
    );
    assert.ok(bundle.includes(rootCertificates[0]));
    assert.equal((await readFile(extraPath, 'utf8')).trim(), custodyCa.trim());
    await assert.rejects(writeCaBundle(dir.path, 'not a pem', {}), /no PEM/);
    await dir.remove();
    assert.equal(existsSync(dir.path), false);
    await dir.remove();
  });

  describe('TLS pre-flight for --azure', () => {
    const servers: Server[] = [];
    const serve = async (dir: string, hosts: string[]) => {
      const tls = await ensureTls(path.join(work, dir), { hosts });
      const s = createServer({ key: tls.keyPem, cert: tls.certPem }, (_q, r) => r.end('ok'));
      servers.push(s);
      await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
      return { port: (s.address() as AddressInfo).port, ca: await readFile(tls.caCertPath, 'utf8') };
    };
    after(() => {
      for (const s of servers) s.close();
    });

    it('passes when the broker certificate covers the Key Vault wildcards, names what is missing otherwise', async () => {
      const good = await serve('good', [
        '*.vault.azure.net',
        '*.vault.usgovcloudapi.net',
        '*.vault.azure.cn',
      ]);
      await checkVaultCertificate('127.0.0.1', good.port, good.ca);
      const old = await serve('old', ['*.vault.azure.net']);
      await assert.rejects(checkVaultCertificate('127.0.0.1', old.port, old.ca), (err: unknown) => {
        assert.ok(err instanceof CliError);
        assert.equal(err.code, 'AzureVaultCertificateMissing');
        assert.match(err.message, /\*\.vault\.usgovcloudapi\.net, \*\.vault\.azure\.cn$/);
        assert.match(err.hint!, /--tls-host/);
        return true;
      });
      await assert.rejects(
        checkVaultCertificate('127.0.0.1', good.port, old.ca),
        /AzureVaultCertificateUnverified|failed/,
      );
    });
  });
});
