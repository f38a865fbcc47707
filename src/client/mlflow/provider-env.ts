import {
  type ClientConfig,
  type ProviderName,
  type ProviderSettings,
  providersFromConfig,
  secretRefFor,
  secretVersionFor,
} from '../config.js';
import { FailoverProvider } from '../providers/failover.js';
import type { LogFn } from '../redact.js';
import { credentialFromSecret } from './credentials.js';
import { type CredentialSource, providerSource } from './source.js';

/**
 * MLflow credentials from the providers the mlflow-secrets-auth variables enable
 * (`MLFLOW_SECRETS_AUTH_ENABLE=vault,…`): what `custody proxy --provider-env` and
 * `custody run --mlflow-provider-env` serve, so a team on Vault, Azure Key Vault or AWS Secrets
 * Manager switches by setting one variable.
 */

export function settingsOf(cfg: ClientConfig, p: ProviderName): ProviderSettings {
  switch (p) {
    case 'vault':
      return cfg.vault;
    case 'aws-secrets-manager':
      return cfg.aws;
    case 'azure-key-vault':
      return cfg.azure;
    case 'custody':
      return cfg.custody;
  }
}

/**
 * The enabled providers in their order, each reading its own reference and version and parsing its
 * secret with its own `MLFLOW_<P>_AUTH_MODE`; a provider whose secret is missing, unreadable or not
 * a usable credential fails over to the next. What each serves is handed on as a JSON credential
 * (`{"token"}` or `{"username","password"}`) that needs no auth mode. Throws (plain Error) when a
 * provider cannot be built from the configuration.
 */
export function mlflowProviderFailover(cfg: ClientConfig, log?: LogFn): FailoverProvider {
  const providers = providersFromConfig(cfg, { log });
  const wrapped = providers.map((p, i) => {
    const name = cfg.providers[i];
    const ref = secretRefFor(cfg, name);
    const version = secretVersionFor(cfg, name);
    const { authMode } = settingsOf(cfg, name);
    return {
      name: p.name,
      async get() {
        const raw = await p.get(ref, version ? { version } : {});
        // Checks the format and mode here, so a provider with an unusable secret fails over.
        const cred = credentialFromSecret(raw, { authMode });
        if (cred.value.startsWith('Basic ')) {
          const pair = Buffer.from(cred.value.slice(6), 'base64').toString('utf8');
          const colon = pair.indexOf(':');
          return JSON.stringify({ username: pair.slice(0, colon), password: pair.slice(colon + 1) });
        }
        return JSON.stringify({ token: cred.secrets[0] });
      },
      close: () => p.close(),
    };
  });
  return new FailoverProvider(wrapped, { log });
}

/** A cached credential source over `mlflowProviderFailover` (the shortest TTL of the providers). */
export function providerEnvSource(
  cfg: ClientConfig,
  opts: { log?: LogFn; headerName?: string } = {},
): { source: CredentialSource; failover: FailoverProvider } {
  const failover = mlflowProviderFailover(cfg, opts.log);
  // Any of them may serve after a failover: the shortest cache TTL applies.
  const ttlSec = Math.min(...cfg.providers.map((p) => settingsOf(cfg, p).ttlSec));
  const source = providerSource(
    { name: 'failover', get: () => failover.get(''), close: () => failover.close() },
    '',
    { headerName: opts.headerName, ttlSec },
  );
  return { source, failover };
}
