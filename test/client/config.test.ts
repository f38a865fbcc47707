import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError, loadConfig, providersFromConfig, secretRefFor } from '../../src/client/config.js';

const VAULT = {
  VAULT_ADDR: 'https://vault:8200',
  VAULT_TOKEN: 'hvs.x',
  MLFLOW_VAULT_SECRET_PATH: 'secret/mlflow',
};
const AWS = { MLFLOW_AWS_SECRET_ID: 'mlflow/auth', AWS_REGION: 'eu-west-1' };
const AZURE = { AZURE_KEY_VAULT_URL: 'https://kv.vault.azure.net', MLFLOW_AZURE_SECRET_NAME: 'mlflow-token' };

describe('valid configurations', () => {
  const valid: [string, Record<string, string>, (c: ReturnType<typeof loadConfig>) => void][] = [
    ['nothing enabled', {}, (c) => assert.deepEqual(c.providers, [])],
    [
      'comma list, case-insensitive, in its order',
      { MLFLOW_SECRETS_AUTH_ENABLE: 'Azure-Key-Vault, vault', ...VAULT, ...AZURE },
      (c) => assert.deepEqual(c.providers, ['azure-key-vault', 'vault']),
    ],
    [
      'per-provider flags (- → _), fixed priority after the list',
      {
        MLFLOW_SECRETS_AUTH_ENABLE: 'azure-key-vault',
        MLFLOW_SECRETS_AUTH_ENABLE_AWS_SECRETS_MANAGER: 'yes',
        MLFLOW_SECRETS_AUTH_ENABLE_VAULT: 'ON',
        ...VAULT,
        ...AWS,
        ...AZURE,
      },
      (c) => assert.deepEqual(c.providers, ['azure-key-vault', 'vault', 'aws-secrets-manager']),
    ],
    [
      'a false flag is fine',
      { MLFLOW_SECRETS_AUTH_ENABLE_VAULT: 'false' },
      (c) => assert.deepEqual(c.providers, []),
    ],
    [
      'vault approle + namespace, per-provider mode and TTL',
      {
        MLFLOW_SECRETS_AUTH_ENABLE: 'vault',
        VAULT_ADDR: 'http://127.0.0.1:8200',
        VAULT_ROLE_ID: 'r',
        VAULT_SECRET_ID: 's',
        VAULT_NAMESPACE: 'team-a',
        MLFLOW_VAULT_SECRET_PATH: 'kv/mlflow',
        MLFLOW_VAULT_AUTH_MODE: 'BASIC',
        MLFLOW_VAULT_TTL_SEC: '86400',
      },
      (c) => {
        assert.equal(c.vault.roleId, 'r');
        assert.equal(c.vault.namespace, 'team-a');
        assert.equal(c.vault.authMode, 'basic');
        assert.equal(c.vault.ttlSec, 86400);
        assert.equal(c.aws.ttlSec, 300, 'default TTL');
        assert.equal(secretRefFor(c, 'vault'), 'kv/mlflow');
      },
    ],
    [
      'documented aliases: MLFLOW_AWS_SECRET_NAME, MLFLOW_AZURE_KEY_VAULT_URL; sovereign cloud; version',
      {
        MLFLOW_SECRETS_AUTH_ENABLE: 'aws-secrets-manager,azure-key-vault',
        MLFLOW_AWS_SECRET_NAME: 'n',
        MLFLOW_AZURE_KEY_VAULT_URL: 'https://kv.vault.usgovcloudapi.net',
        MLFLOW_AZURE_SECRET_NAME: 'tok',
        MLFLOW_AZURE_SECRET_VERSION: '0123456789abcdef0123456789abcdef',
        AZURE_CLOUD_ENVIRONMENT: 'azureusgovernment',
      },
      (c) => {
        assert.equal(c.aws.secretId, 'n');
        assert.equal(c.azure.vaultUrl, 'https://kv.vault.usgovcloudapi.net');
        assert.equal(c.azure.cloud, 'AzureUSGovernment');
        assert.equal(c.azure.secretVersion, '0123456789abcdef0123456789abcdef');
      },
    ],
    [
      'allowlist, header, log level',
      {
        MLFLOW_SECRETS_ALLOWED_HOSTS: ' MLflow.Example.com ,*.corp.internal,10.0.0.5:5000 ',
        MLFLOW_AUTH_HEADER_NAME: 'X-MLflow-Token',
        MLFLOW_SECRETS_LOG_LEVEL: 'warning',
      },
      (c) => {
        assert.deepEqual(c.allowedHosts, ['mlflow.example.com', '*.corp.internal', '10.0.0.5:5000']);
        assert.equal(c.authHeaderName, 'X-MLflow-Token');
        assert.equal(c.logLevel, 'warn');
      },
    ],
    [
      'custody provider with AppRole login',
      {
        MLFLOW_SECRETS_AUTH_ENABLE: 'custody',
        CUSTODY_ADDR: 'https://broker:8270',
        CUSTODY_LOGIN: 'prod/approle/trainer',
        CUSTODY_ROLE_ID: 'rid_x',
        CUSTODY_SECRET_ID: 'sid_y',
        CUSTODY_MLFLOW_SECRET: 'prod/mlflow/token#token',
      },
      (c) => {
        assert.deepEqual(c.custody.login?.approle, { roleId: 'rid_x', secretId: 'sid_y' });
        assert.equal(secretRefFor(c, 'custody'), 'prod/mlflow/token#token');
        assert.equal(c.authHeaderName, 'Authorization');
        assert.equal(c.allowedHosts, undefined);
      },
    ],
  ];
  for (const [name, env, check] of valid) test(name, () => check(loadConfig(env)));

  test('providersFromConfig builds the enabled providers in order', async () => {
    const c = loadConfig({ MLFLOW_SECRETS_AUTH_ENABLE: 'aws-secrets-manager,vault', ...VAULT, ...AWS });
    const ps = providersFromConfig(c);
    assert.deepEqual(
      ps.map((p) => p.name),
      ['aws-secrets-manager', 'vault'],
    );
    await Promise.all(ps.map((p) => p.close()));
  });
});

describe('invalid values are errors that say what is wrong', () => {
  const invalid: [Record<string, string>, RegExp][] = [
    [{ MLFLOW_SECRETS_AUTH_ENABLE: 'vault,gcp' }, /unknown provider "gcp"/],
    [{ MLFLOW_SECRETS_AUTH_ENABLE_VAULT: 'maybe' }, /MLFLOW_SECRETS_AUTH_ENABLE_VAULT must be one of/],
    [{ MLFLOW_SECRETS_AUTH_ENABLE: 'vault' }, /VAULT_ADDR is not set/],
    [
      { MLFLOW_SECRETS_AUTH_ENABLE: 'vault', VAULT_ADDR: 'https://v' },
      /neither VAULT_TOKEN nor VAULT_ROLE_ID/,
    ],
    [
      { ...VAULT, MLFLOW_SECRETS_AUTH_ENABLE: 'vault', MLFLOW_VAULT_SECRET_PATH: '' },
      /MLFLOW_VAULT_SECRET_PATH/,
    ],
    [{ VAULT_ADDR: 'vault:8200' }, /VAULT_ADDR is not a URL|VAULT_ADDR must be/],
    [{ VAULT_ROLE_ID: 'r' }, /VAULT_ROLE_ID and VAULT_SECRET_ID must be set together/],
    [
      { MLFLOW_VAULT_TTL_SEC: '0' },
      /MLFLOW_VAULT_TTL_SEC must be a whole number of seconds from 1 to 86400, got "0"/,
    ],
    [{ MLFLOW_AWS_TTL_SEC: '86401' }, /MLFLOW_AWS_TTL_SEC/],
    [{ MLFLOW_AZURE_TTL_SEC: '5m' }, /MLFLOW_AZURE_TTL_SEC.*"5m"/],
    [{ MLFLOW_VAULT_AUTH_MODE: 'digest' }, /MLFLOW_VAULT_AUTH_MODE must be bearer or basic, got "digest"/],
    [{ MLFLOW_SECRETS_AUTH_ENABLE: 'aws-secrets-manager' }, /MLFLOW_AWS_SECRET_ID/],
    [{ MLFLOW_AWS_SECRET_ID: 'a', MLFLOW_AWS_SECRET_NAME: 'b' }, /both set and differ/],
    [{ AWS_REGION: 'Europe' }, /AWS_REGION is not a region name/],
    [{ AZURE_KEY_VAULT_URL: 'http://kv.vault.azure.net' }, /AZURE_KEY_VAULT_URL must be an https URL/],
    [
      { MLFLOW_SECRETS_AUTH_ENABLE: 'azure-key-vault', AZURE_KEY_VAULT_URL: 'https://kv' },
      /MLFLOW_AZURE_SECRET_NAME is not set/,
    ],
    [{ MLFLOW_AZURE_SECRET_NAME: 'bad_name!' }, /MLFLOW_AZURE_SECRET_NAME must be/],
    [{ MLFLOW_AZURE_SECRET_VERSION: 'v/1' }, /MLFLOW_AZURE_SECRET_VERSION/],
    [{ AZURE_CLOUD_ENVIRONMENT: 'AzureGermanCloud' }, /AZURE_CLOUD_ENVIRONMENT must be/],
    [{ MLFLOW_SECRETS_ALLOWED_HOSTS: 'ok.example.com,bad host' }, /"bad host" is not a host name/],
    [{ MLFLOW_SECRETS_ALLOWED_HOSTS: ' , ' }, /names no host/],
    [{ MLFLOW_AUTH_HEADER_NAME: 'X Bad:Header' }, /MLFLOW_AUTH_HEADER_NAME is not a valid HTTP header name/],
    [{ MLFLOW_SECRETS_LOG_LEVEL: 'verbose' }, /MLFLOW_SECRETS_LOG_LEVEL must be/],
    [
      { MLFLOW_SECRETS_AUTH_ENABLE: 'custody', CUSTODY_ADDR: 'https://b' },
      /neither CUSTODY_TOKEN nor CUSTODY_LOGIN/,
    ],
    [{ CUSTODY_LOGIN: 'prod/approle' }, /CUSTODY_LOGIN must be ENV\/METHOD\/ROLE/],
    [{ CUSTODY_MLFLOW_SECRET: 'no-env' }, /CUSTODY_MLFLOW_SECRET: invalid secret reference/],
  ];
  for (const [env, re] of invalid) {
    test(`${JSON.stringify(env)} → ${re.source}`, () => {
      assert.throws(
        () => loadConfig(env),
        (err: unknown) => err instanceof ConfigError && re.test(err.message),
      );
    });
  }

  test('every problem is listed at once, and secrets are not echoed', () => {
    try {
      loadConfig({ MLFLOW_VAULT_TTL_SEC: 'x', MLFLOW_AWS_AUTH_MODE: 'y', VAULT_TOKEN: 'hvs.topsecret' });
      assert.fail('expected an error');
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.problems.length, 2);
      assert.ok(!err.message.includes('hvs.topsecret'));
    }
  });
});
