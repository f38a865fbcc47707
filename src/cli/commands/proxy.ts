import type { Command } from 'commander';
import type { ClientConfig as EnvClientConfig } from '../../client/config.js';
import type { CustodyClient } from '../../client/custody-client.js';
import { HostPolicy, HostPolicyError } from '../../client/mlflow/allowlist.js';
import type { LeakGuardMode } from '../../client/mlflow/leak-guard.js';
import type { CredentialSource } from '../../client/mlflow/source.js';
import type { FailoverProvider } from '../../client/providers/failover.js';
import { redactingLogger } from '../../client/redact.js';
import { parseRoleRef, parseSecretRef } from '../../client/refs.js';
import * as A from '../args.js';
import { resolveClientConfig } from '../config.js';
import { collect, examples, globalsOf } from '../context.js';
import { CliError, usageError } from '../errors.js';

/** The client's configuration and providers load the AWS and Azure SDKs: only when the proxy runs. */
async function lib() {
  const [config, cc, provEnv, proxy, source] = await Promise.all([
    import('../../client/config.js'),
    import('../../client/custody-client.js'),
    import('../../client/mlflow/provider-env.js'),
    import('../../client/mlflow/proxy.js'),
    import('../../client/mlflow/source.js'),
  ]);
  return { ...config, ...cc, ...provEnv, ...proxy, ...source };
}

const MODES = ['refuse', 'redact', 'off'] as const;

function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:]+)):(\d{1,5})$/.exec(text.trim());
  if (!m) throw usageError(`--listen must be HOST:PORT, got "${text}"`, 'Example: --listen 127.0.0.1:5001');
  const port = Number(m[3]);
  if (port > 65_535) throw usageError(`--listen: port ${port} is out of range`);
  return { host: m[1] ?? m[2], port };
}

export function registerProxy(program: Command): void {
  const cmd = program
    .command('proxy')
    .description(
      'A local MLflow reverse proxy that adds credentials to every request and guards against secret leaks',
    )
    .requiredOption('--upstream <url>', 'the MLflow tracking server')
    .option('--listen <host:port>', 'where to listen (loopback only unless --allow-remote)', '127.0.0.1:5001')
    .option(
      '--secret <ENV/NAME[#field]>',
      'the MLflow credential, a Custody secret (token, user:pass or JSON)',
    )
    .option(
      '--creds <ENV/ENGINE/ROLE>',
      'dynamic MLflow credentials: a Custody lease, renewed and replaced as needed',
    )
    .option(
      '--provider-env',
      'the credential from the MLFLOW_SECRETS_AUTH_* providers (Vault, AWS, Azure, Custody)',
    )
    .option(
      '--guard-secret <ENV/NAME[#field]>',
      'another secret value the leak guard refuses (repeatable)',
      collect,
    )
    .option(
      '--allow-host <glob>',
      'allowlist entry for the upstream host (repeatable; adds to MLFLOW_SECRETS_ALLOWED_HOSTS)',
      collect,
    )
    .option('--strict', 'refuse to run without an allowlist')
    .option('--allow-insecure-http', 'allow plain http to a non-loopback upstream')
    .option('--allow-remote', 'allow listening on a non-loopback address')
    .option('--leak-guard <mode>', 'refuse | redact | off', 'refuse')
    .action(async (o, c: Command) => {
      const chosen = [o.secret, o.creds, o.providerEnv].filter((x) => x !== undefined && x !== false);
      if (chosen.length !== 1)
        throw usageError(
          'Give exactly one of --secret, --creds, --provider-env',
          'Example: custody proxy --upstream https://mlflow.example.com --secret prod/mlflow/token',
        );
      let upstream: URL;
      try {
        upstream = new URL(o.upstream);
      } catch {
        throw usageError(`--upstream is not a URL: ${o.upstream}`);
      }
      const listen = parseListen(o.listen);
      const mode = A.oneOf(o.leakGuard, MODES, '--leak-guard') as LeakGuardMode;
      if (o.secret) {
        try {
          parseSecretRef(o.secret);
        } catch (err) {
          throw usageError((err as Error).message);
        }
      }
      if (o.creds) {
        try {
          parseRoleRef(o.creds);
        } catch (err) {
          throw usageError((err as Error).message);
        }
      }
      const log = redactingLogger(
        (level, msg) => process.stderr.write(`custody proxy: ${level}: ${msg}\n`),
        'info',
      );
      const L = await lib();
      let envConfig: EnvClientConfig | undefined;
      try {
        envConfig = L.loadConfig(process.env);
      } catch (err) {
        if (o.providerEnv) throw usageError((err as Error).message);
      }
      let policy: HostPolicy;
      try {
        policy = new HostPolicy({
          allowedHosts: [...(envConfig?.allowedHosts ?? []), ...(o.allowHost ?? [])],
          strict: o.strict === true,
          allowInsecureHttp: o.allowInsecureHttp === true,
        });
      } catch (err) {
        if (err instanceof HostPolicyError) throw usageError(err.message);
        throw err;
      }
      const headerName = envConfig?.authHeaderName;

      let client: CustodyClient | undefined;
      const custody = () => {
        const cfg = resolveClientConfig(globalsOf(c));
        client ??= new L.CustodyClient({ addr: cfg.addr, token: cfg.token, caCertFile: cfg.caCertPath, log });
        return client;
      };
      let source: CredentialSource;
      let fo: FailoverProvider | undefined;
      if (o.secret) {
        const cl = custody();
        source = L.providerSource(
          { name: 'custody', get: (ref) => cl.getSecret(ref, { noCache: true }), close: async () => {} },
          o.secret,
          { headerName, ttlSec: envConfig?.custody.ttlSec },
        );
      } else if (o.creds) {
        source = L.leaseSource(custody(), o.creds, {
          headerName,
          onLease: (l) => log('info', `using lease ${l.id} (expires ${l.expiresAt.toISOString()})`),
        });
      } else {
        const cfg = envConfig!;
        if (cfg.providers.length === 0)
          throw usageError(
            '--provider-env: no provider is enabled',
            'Set MLFLOW_SECRETS_AUTH_ENABLE=vault (or aws-secrets-manager, azure-key-vault, custody).',
          );
        try {
          ({ source, failover: fo } = L.providerEnvSource(cfg, { log, headerName }));
        } catch (err) {
          throw usageError(`--provider-env: ${(err as Error).message}`);
        }
      }
      const guard: string[] = [];
      const guardRefs: string[] = [...(o.guardSecret ?? [])];
      if (o.secret) guardRefs.push(o.secret);
      try {
        // Fail fast: fetch the credential (and guarded values) before listening.
        await source.get();
        if (fo?.lastReport.served) log('info', `MLflow credential from provider ${fo.lastReport.served}`);
        for (const ref of guardRefs) guard.push(await custody().getSecret(ref));
      } catch (err) {
        await source.close?.();
        await client?.close();
        throw new CliError(
          'CredentialUnavailable',
          `could not get the MLflow credential: ${(err as Error).message}`,
        );
      }
      let proxy: Awaited<ReturnType<typeof L.startMlflowProxy>>;
      try {
        proxy = await L.startMlflowProxy({
          upstream: upstream.toString(),
          source,
          policy,
          host: listen.host,
          port: listen.port,
          allowRemote: o.allowRemote === true,
          leakGuard: mode,
          secrets: guard,
          log,
        });
      } catch (err) {
        await source.close?.();
        await client?.close();
        throw usageError((err as Error).message);
      }
      process.stdout.write(`MLFLOW_TRACKING_URI=${proxy.url}\n`);
      log('info', `forwarding to ${upstream.origin} (leak guard: ${mode}); Ctrl-C to stop`);
      await new Promise<void>((resolve) => {
        const stop = () => resolve();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
      await proxy.close();
      await source.close?.();
      await client?.close();
    });
  examples(cmd, [
    '$ custody proxy --upstream https://mlflow.example.com --secret prod/mlflow/token',
    '$ custody proxy --upstream https://mlflow.example.com --creds prod/mlflow/trainer --listen 127.0.0.1:5001',
    '$ MLFLOW_SECRETS_AUTH_ENABLE=vault custody proxy --provider-env --upstream https://mlflow.example.com --strict --allow-host mlflow.example.com',
    '',
    'Prints MLFLOW_TRACKING_URI=http://127.0.0.1:PORT: point any MLflow client at it, with no credentials of',
    'its own. Requests that log params, metrics, tags, batches or traces containing a secret value (or',
    'its base64, URL-encoded or JSON-escaped forms) are refused with 400 (--leak-guard redact masks them).',
    '',
    'On a 401 from MLflow the credential is fetched again and the request resent once (a 403 is never',
    'retried). Request bodies stream upstream; up to 8 MiB of each is kept in memory so that it can be',
    'resent. Past that (a big artifact upload) the copy is dropped and memory stays flat: a 401 then goes',
    'to the client, and the next request (or its own retry) goes out with the fresh credential.',
    '',
    'With --provider-env each enabled provider reads its own secret with its own MLFLOW_<P>_AUTH_MODE; a',
    'provider that fails (unreachable, missing secret, unusable format) fails over to the next, in order.',
  ]);
}
