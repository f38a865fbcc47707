import { CliError } from '../cli/errors.js';
import { describeError } from '../client/redact.js';
import type { Reporter } from './reporter.js';

/**
 * `custody run --mlflow-provider-env`: the MLflow credential from the providers the
 * mlflow-secrets-auth variables enable (`MLFLOW_SECRETS_AUTH_ENABLE=vault`, `VAULT_ADDR`,
 * `MLFLOW_VAULT_SECRET_PATH`, … — the plugin's own settings, unchanged), in their order with
 * failover, for the child's `MLFLOW_TRACKING_*`. The host allowlist (`MLFLOW_SECRETS_ALLOWED_HOSTS`)
 * and the HTTPS rule are checked against the child's `MLFLOW_TRACKING_URI` first: the credential
 * is not handed to a job that would send it elsewhere.
 *
 * The client configuration loads the cloud SDKs: imported only when the option is used.
 */
export async function mlflowCredentialFromProviders(
  env: NodeJS.ProcessEnv,
  report: Reporter,
): Promise<string> {
  const [{ loadConfig }, { mlflowProviderFailover }, { HostPolicy }] = await Promise.all([
    import('../client/config.js'),
    import('../client/mlflow/provider-env.js'),
    import('../client/mlflow/allowlist.js'),
  ]);
  const usage = (message: string, hint: string) =>
    new CliError('InvalidConfiguration', `--mlflow-provider-env: ${message}`, hint, 2);
  let cfg: ReturnType<typeof loadConfig>;
  try {
    cfg = loadConfig(env);
  } catch (err) {
    throw usage((err as Error).message, 'Fix the MLFLOW_SECRETS_AUTH_* / provider variables named above.');
  }
  if (cfg.providers.length === 0)
    throw usage(
      'no provider is enabled',
      'Set MLFLOW_SECRETS_AUTH_ENABLE=vault (or aws-secrets-manager, azure-key-vault, custody).',
    );
  const uri = env.MLFLOW_TRACKING_URI;
  if (uri === undefined || uri === '') {
    report.warn(
      'NoTrackingUri',
      'MLFLOW_TRACKING_URI is not set: the MLflow client will log locally and the credential goes unused',
    );
  } else if (/^https?:/i.test(uri)) {
    let decision: ReturnType<InstanceType<typeof HostPolicy>['check']>;
    try {
      decision = new HostPolicy({ allowedHosts: cfg.allowedHosts }).check(uri);
    } catch (err) {
      throw usage((err as Error).message, 'Check MLFLOW_SECRETS_ALLOWED_HOSTS.');
    }
    if (!decision.allowed)
      throw new CliError(
        'HostNotAllowed',
        `--mlflow-provider-env: the credential is not given to this job's MLFLOW_TRACKING_URI: ${decision.message}`,
        'Point MLFLOW_TRACKING_URI at an allowed HTTPS host, or add it to MLFLOW_SECRETS_ALLOWED_HOSTS.',
      );
  }
  let failover: ReturnType<typeof mlflowProviderFailover>;
  try {
    failover = mlflowProviderFailover(cfg, (level, message) => {
      if (level === 'warn' || level === 'error') report.warn('ProviderFailover', message);
    });
  } catch (err) {
    throw usage(describeError(err), 'Check the variables of the enabled providers.');
  }
  try {
    const raw = await failover.get('');
    report.note(`MLflow credential from provider ${failover.lastReport.served}`);
    return raw;
  } catch (err) {
    throw new CliError(
      'CredentialUnavailable',
      `--mlflow-provider-env: no provider served the MLflow credential (${describeError(err)})`,
      'Run `custody doctor` with the same environment for a step-by-step diagnosis.',
    );
  } finally {
    await failover.close();
  }
}
