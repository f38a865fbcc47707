import { readFileSync } from 'node:fs';
import { constants } from 'node:os';
import type { Command } from 'commander';
import { resolveWorkloadIdentity } from '../../runtime/identity.js';
import { stderrReporter } from '../../runtime/reporter.js';
import { checkVariableClashes, runJob } from '../../runtime/run.js';
import {
  type CredsSpec,
  parseCredsSpec,
  parseEnvTemplate,
  parseMlflowSecretSpec,
  parseSecretSpec,
  type SecretSpec,
  SpecError,
} from '../../runtime/specs.js';
import * as A from '../args.js';
import { collect, examples, globalsOf } from '../context.js';
import { usageError } from '../errors.js';

/** Spec parsing errors are usage errors (exit 2). */
function asUsage<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof SpecError) throw usageError(err.message, err.hint, err.code);
    throw err;
  }
}

export function registerRun(program: Command): void {
  const run = program
    .command('run')
    .description(
      'Run a command with secrets and leased credentials in its environment; revoke the leases when it exits',
    )
    .argument('<command...>', 'the command and its arguments (after --)')
    .option(
      '--secret <VAR=ENV/NAME[#field]>',
      'put a secret (or one field of a JSON secret) in VAR (repeatable)',
      collect,
    )
    .option(
      '--creds <PREFIX=ENV/ENGINE/ROLE>',
      'issue a lease: PREFIX_USERNAME, PREFIX_PASSWORD, PREFIX_LEASE_ID and its data fields (repeatable)',
      collect,
    )
    .option(
      '--mlflow <ENV/ENGINE/ROLE>',
      'lease MLflow credentials: MLFLOW_TRACKING_URI, MLFLOW_TRACKING_USERNAME, MLFLOW_TRACKING_PASSWORD',
    )
    .option(
      '--mlflow-secret <ENV/NAME[#field]>',
      'stored MLflow credentials ({"token"} → MLFLOW_TRACKING_TOKEN; {"username","password"} or user:pass)',
    )
    .option(
      '--mlflow-provider-env',
      'MLflow credentials from the mlflow-secrets-auth providers (MLFLOW_SECRETS_AUTH_ENABLE=vault,…)',
    )
    .option(
      '--vault',
      "VAULT_ADDR (a loopback proxy to Custody's Vault-compatible API) and a run-local VAULT_TOKEN",
    )
    .option(
      '--azure',
      'managed-identity endpoint + a proxy routing *.vault.azure.net to Custody, so Azure SDK code runs unchanged',
    )
    .option('--proxy-deny-others', 'with --azure: the proxy refuses every host that is not a Key Vault host')
    .option('--kill-grace <duration>', 'after forwarding a signal, wait this long before SIGKILL', '10s')
    .option('--no-mask', "do not mask the injected values in the command's stdout/stderr")
    .option(
      '--files',
      'deliver each value as a 0600 file in a private tmpfs directory (/dev/shm); the variable holds its path',
    )
    .option(
      '--env-template <file>',
      'variables from a file: VAR=ENV/NAME[#field] or VAR=creds:ENV/ENGINE/ROLE#username|password|lease_id|<field>',
    )
    .option(
      '--on-rotate <signal>',
      'with --files: after a lease near its max TTL was replaced (files rewritten), send this signal (e.g. SIGHUP)',
    )
    .option(
      '--rotate-grace <duration>',
      'with --files: keep a replaced lease this long (a connection pool can drain), then revoke it',
      '30s',
    )
    .option(
      '--login <ENV/METHOD/ROLE>',
      'log in as a workload (with --jwt-file, or --role-id + --secret-id-file)',
    )
    .option(
      '--jwt-file <file>',
      'with --login: a JWT file, re-read at every login (a rotated token is picked up)',
    )
    .option('--role-id <id>', 'with --login: an AppRole role id')
    .option('--secret-id-file <file>', 'with --login and --role-id: a file holding the AppRole secret id')
    .option(
      '--expect <duration>',
      'how long the command should run: say which credential ends first, warn when one ends sooner',
    )
    .option(
      '--strict-expect',
      'with --expect: exit 1 (without starting the command) when a credential ends sooner',
    )
    .option(
      '--warn-before <duration>',
      'warn (stderr and audit trail) this long before a credential the command holds stops working',
      '15m',
    )
    .option('--pass-token', "keep CUSTODY_TOKEN in the child's environment (removed by default)")
    // Everything after the command name belongs to the command: `custody run python -u x.py`.
    .passThroughOptions()
    .action(async (argv: string[], o, cmd: Command) => {
      const [command, ...args] = argv;
      if (!command)
        throw usageError(
          'No command to run',
          'Example: custody run --secret K=prod/api/key -- python train.py',
        );
      const secrets: SecretSpec[] = asUsage(() => (o.secret ?? []).map(parseSecretSpec));
      const creds: CredsSpec[] = asUsage(() => (o.creds ?? []).map(parseCredsSpec));
      if (o.envTemplate) {
        let text: string;
        try {
          text = readFileSync(o.envTemplate, 'utf8');
        } catch (err) {
          throw usageError(
            `--env-template ${o.envTemplate}: cannot read it (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
            'Give the path of a readable file.',
          );
        }
        const t = asUsage(() => parseEnvTemplate(text, o.envTemplate));
        secrets.push(...t.secrets);
        creds.push(...t.creds);
      }
      let onRotate: NodeJS.Signals | undefined;
      if (o.onRotate !== undefined) {
        const name = String(o.onRotate).toUpperCase();
        const sig = name.startsWith('SIG') ? name : `SIG${name}`;
        if (!(sig in constants.signals) || sig === 'SIGKILL' || sig === 'SIGSTOP')
          throw usageError(`--on-rotate: ${o.onRotate} is not a signal name`, 'Example: --on-rotate SIGHUP.');
        onRotate = sig as NodeJS.Signals;
      }
      const rotateGraceMs = A.seconds(o.rotateGrace, '--rotate-grace') * 1000;
      const mlflowPrefix = o.mlflow ? 'MLFLOW' : undefined;
      if (o.mlflow) creds.push(asUsage(() => parseCredsSpec(`MLFLOW=${o.mlflow}`)));
      const mlflowSecret = o.mlflowSecret ? asUsage(() => parseMlflowSecretSpec(o.mlflowSecret)) : undefined;
      const mlflowProviderEnv = o.mlflowProviderEnv === true;
      if ([o.mlflow, mlflowSecret, mlflowProviderEnv || undefined].filter(Boolean).length > 1)
        throw usageError(
          'Only one of --mlflow, --mlflow-secret and --mlflow-provider-env sets the MLflow credentials',
          'Use one of them.',
        );
      if (o.proxyDenyOthers && !o.azure)
        throw usageError(
          '--proxy-deny-others goes with --azure',
          'Example: custody run --azure --proxy-deny-others -- python train.py',
        );
      const killGraceMs = A.seconds(o.killGrace, '--kill-grace') * 1000;
      const vault = o.vault === true;
      const azure = o.azure === true;
      asUsage(() => checkVariableClashes({ secrets, creds, vault, azure, mlflowSecret, mlflowProviderEnv }));

      if (o.strictExpect && !o.expect)
        throw usageError(
          '--strict-expect goes with --expect',
          'Example: custody run --expect 36h --strict-expect -- ./train.sh',
        );
      const expectMs = o.expect ? A.seconds(o.expect, '--expect') * 1000 : undefined;
      const warnBeforeMs = A.seconds(o.warnBefore, '--warn-before') * 1000;
      const globals = globalsOf(cmd);
      const identity = await resolveWorkloadIdentity(globals, {
        login: o.login,
        jwtFile: o.jwtFile,
        roleId: o.roleId,
        secretIdFile: o.secretIdFile,
      });
      const report = stderrReporter(globals.format === 'json' ? 'json' : 'table');
      process.exitCode = await runJob(
        identity,
        {
          command,
          args,
          secrets,
          creds,
          vault,
          azure,
          proxyDenyOthers: o.proxyDenyOthers === true,
          killGraceMs,
          passToken: o.passToken === true,
          mlflowPrefix,
          mlflowSecret,
          mlflowProviderEnv,
          mask: o.mask !== false,
          files: o.files === true,
          expectMs,
          strictExpect: o.strictExpect === true,
          onRotate,
          rotateGraceMs,
          warnBeforeMs,
        },
        report,
      );
    });
  examples(run, [
    '$ custody run --secret API_KEY=prod/openai/key -- python train.py',
    '$ custody run --secret DB_USER=prod/db/credentials#user --secret DB_PASS=prod/db/credentials#password -- ./etl.sh',
    '$ custody run --creds PG=prod/warehouse/reader -- sh -c \'psql "host=db user=$PG_USERNAME password=$PG_PASSWORD"\'',
    '$ custody run --vault -- python uses_hvac.py          # hvac.Client() from VAULT_ADDR / VAULT_TOKEN',
    "$ MLFLOW_SECRETS_AUTH_ENABLE=vault custody run --mlflow-provider-env -- python train.py   # the plugin's settings",
    '$ custody run --azure -- python train.py              # SecretClient("https://NAME.vault.azure.net/") unchanged',
    '$ custody run --azure --proxy-deny-others -- node job.js',
    '$ custody run --login prod/jwt/train --jwt-file /var/run/secrets/job.jwt --creds PG=prod/warehouse/reader -- ./etl.sh',
    '$ custody run --login prod/approle/etl --role-id "$ROLE_ID" --secret-id-file /run/secret-id -- ./etl.sh',
    '$ custody run --expect 36h --strict-expect --creds PG=prod/warehouse/reader -- python train.py',
    '$ custody run --files --on-rotate SIGHUP --creds PG=prod/warehouse/reader -- ./server   # re-reads $PG_PASSWORD on SIGHUP',
    '$ custody run --creds DATA=prod/lake/reader -- python train.py     # azure-blob: AZURE_STORAGE_SAS_TOKEN, AZURE_STORAGE_ACCOUNT_URL',
    '$ custody run --files --creds DATA=prod/s3/reader -- python train.py   # aws-s3: AWS_SHARED_CREDENTIALS_FILE, AWS_REGION',
    '$ custody run --env-template job.env -- ./etl.sh',
    '',
    'job.env (# comments, blank lines; every creds: line on one role shares one lease):',
    '    API_KEY=prod/openai/key',
    '    DB_HOST=prod/db/credentials#host',
    '    PGUSER=creds:prod/warehouse/reader#username',
    '    PGPASSWORD=creds:prod/warehouse/reader#password',
    '',
    'Identity, first match wins: --login with --jwt-file or --role-id/--secret-id-file; CUSTODY_JWT_FILE',
    '(+ CUSTODY_LOGIN=ENV/METHOD/ROLE); the Kubernetes service-account token with CUSTODY_LOGIN;',
    'CUSTODY_ROLE_ID + CUSTODY_SECRET_ID (+ CUSTODY_LOGIN); else --token / CUSTODY_TOKEN. A login is',
    "repeated before the token's max TTL (the JWT file is read again); leases are renewed meanwhile.",
    '',
    "Values go into the child's environment only: never its arguments, a log line or a file. The",
    'command after -- is run directly (not by a shell). Leases are renewed at about 2/3 of their TTL',
    "while the command runs (never past the role's max TTL: a warning says when that is near) and",
    'revoked as soon as it exits, also when it crashes or custody run gets SIGINT/SIGTERM/SIGHUP.',
    "Those signals go to the command's process group; after --kill-grace it is killed (SIGKILL).",
    '',
    "Past the max TTL: with --files, a lease whose role's max TTL is near (within max(2s, TTL/3)) is",
    'replaced by a fresh one before it ends: its files are rewritten atomically, the new password is',
    'masked, the --on-rotate signal goes to the command, and the old lease is revoked after',
    '--rotate-grace. Without --files the environment cannot change: the command keeps the old',
    "credentials until the lease's max TTL (a warning says when).",
    '',
    'Before anything the command holds stops working (a lease at its max TTL, a token that cannot be',
    'renewed or replaced by a new login), custody run warns on stderr and records the notice in the',
    'audit trail (CredentialExpiresSoon, --warn-before ahead but not before 4/5 of its life), and',
    'again once it has ended (CredentialExpired).',
    '',
    "Exit code: the command's, or 128+signal when a signal ended it; 2 for usage errors; 1 when",
    'something failed before the command started (then nothing was left running or issued).',
    '',
    '--azure: DefaultAzureCredential finds a managed-identity endpoint on 127.0.0.1 (IDENTITY_ENDPOINT,',
    "MSI_ENDPOINT) that hands out this job's Custody token; HTTPS_PROXY points at a loopback proxy that",
    'sends *.vault.azure.net, *.vault.usgovcloudapi.net and *.vault.azure.cn to the broker (the vault',
    'name maps to an environment: CUSTODY_AZURE_VAULTS on the broker) and passes other hosts through;',
    "REQUESTS_CA_BUNDLE, SSL_CERT_FILE, CURL_CA_BUNDLE and NODE_EXTRA_CA_CERTS add Custody's CA.",
    'AZURE_CLIENT_ID, AZURE_TENANT_ID, … are removed so the credential chain lands on that endpoint.',
  ]);
}
