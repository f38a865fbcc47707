import type { Command } from 'commander';
import type { ClientConfig } from '../../client/config.js';
import { describeError, redact } from '../../client/redact.js';
import { parseDuration } from '../../duration.js';
import * as A from '../args.js';
import { examples, globalsOf, outputOf } from '../context.js';
import { checkAws } from '../doctor/aws.js';
import { checkAzure } from '../doctor/azure.js';
import { type Check, Doctor, sdk } from '../doctor/checks.js';
import { type CustodySession, checkCustody } from '../doctor/custody.js';
import { type CredsRef, checkLeases, parseCredsOption } from '../doctor/leases.js';
import { checkMlflow } from '../doctor/mlflow.js';
import { checkVault } from '../doctor/vault.js';
import { usageError } from '../errors.js';

/*
 * `custody doctor`: every step between a job and an authenticated MLflow request, each a
 * PASS/FAIL/WARN line with an actionable hint. Secret values are never printed: every line goes
 * through the client's `redact` with the values this process has seen. The steps live in
 * src/cli/doctor/ (one file per provider path, leases, MLflow); this file registers the command and
 * runs them in order.
 */

export type { Check, CheckStatus } from '../doctor/checks.js';
export { classifyNetworkError } from '../doctor/checks.js';

/** Env from the global flags (`--addr`, `--token`, `--ca-cert`) over the process environment. */
export function effectiveEnv(
  cmd: Command,
  extra: Record<string, string | undefined> = {},
): NodeJS.ProcessEnv {
  const g = globalsOf(cmd);
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (g.addr) env.CUSTODY_ADDR = g.addr;
  if (g.token) env.CUSTODY_TOKEN = g.token;
  if (g.caCert) env.CUSTODY_CACERT = g.caCert;
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) env[k] = v;
  return env;
}

export interface DoctorOptions {
  dryRun?: string;
  expect?: string;
  secret?: string;
  miTimeout?: string;
  /** `ENV/ENGINE/ROLE` (or `PREFIX=ENV/ENGINE/ROLE`), repeatable. */
  creds?: string[];
}

/** Variables whose values are credentials: masked wherever they might show up. */
const SECRET_VARIABLES = [
  'CUSTODY_TOKEN',
  'VAULT_TOKEN',
  'VAULT_SECRET_ID',
  'CUSTODY_SECRET_ID',
  'AZURE_CLIENT_SECRET',
  'AZURE_PASSWORD',
  'IDENTITY_HEADER',
  'MSI_SECRET',
  'AWS_SECRET_ACCESS_KEY',
  'AWS_SESSION_TOKEN',
];

export async function runDoctor(env: NodeJS.ProcessEnv, o: DoctorOptions): Promise<Check[]> {
  const expectSec = o.expect === undefined ? undefined : parseDuration(o.expect, '--expect');
  const miTimeoutMs = o.miTimeout === undefined ? 2000 : parseDuration(o.miTimeout, '--mi-timeout') * 1000;
  const creds: CredsRef[] = (o.creds ?? []).map(parseCredsOption);
  let dryRun: URL | undefined;
  if (o.dryRun !== undefined) {
    try {
      dryRun = new URL(o.dryRun);
    } catch {
      throw usageError(
        `--dry-run is not a URL: ${redact(o.dryRun)}`,
        'Example: --dry-run https://mlflow.example.com',
      );
    }
  }
  const d = new Doctor(await sdk());
  const e = { ...env };
  if (o.secret) {
    e.CUSTODY_MLFLOW_SECRET = o.secret;
    if (!e.MLFLOW_SECRETS_AUTH_ENABLE && !e.MLFLOW_SECRETS_AUTH_ENABLE_CUSTODY)
      e.MLFLOW_SECRETS_AUTH_ENABLE = 'custody';
  }
  for (const k of SECRET_VARIABLES) d.remember(e[k]);
  let config: ClientConfig;
  try {
    config = d.lib.loadConfig(e);
  } catch (err) {
    if (err instanceof d.lib.ConfigError)
      d.add(
        'FAIL',
        'configuration',
        err.problems.join('; '),
        'fix the variables listed (see `custody info`)',
      );
    else d.add('FAIL', 'configuration', describeError(err));
    return d.checks;
  }
  if (config.providers.length === 0 && creds.length === 0) {
    d.add(
      'FAIL',
      'configuration',
      'no provider is enabled',
      'set MLFLOW_SECRETS_AUTH_ENABLE=custody (and CUSTODY_ADDR, CUSTODY_TOKEN, CUSTODY_MLFLOW_SECRET), or pass --secret ENV/NAME',
    );
    return d.checks;
  }
  if (config.providers.length === 0)
    d.add(
      'WARN',
      'configuration',
      'no MLflow credential provider is enabled: only the leases (--creds) are checked',
      'set MLFLOW_SECRETS_AUTH_ENABLE to check the MLflow credential too',
    );
  else d.add('PASS', 'configuration', `valid; providers in order: ${config.providers.join(', ')}`);

  let session: CustodySession | undefined;
  try {
    for (const p of config.providers) {
      if (p === 'custody') session = await checkCustody(d, config, expectSec);
      else if (p === 'vault') await checkVault(d, config, expectSec);
      else if (p === 'aws-secrets-manager') await checkAws(d, config, e);
      else await checkAzure(d, config, e, miTimeoutMs);
    }
    await checkLeases(d, config, creds, expectSec, session, config.providers.includes('custody'));
    if (dryRun) await checkMlflow(d, config, dryRun);
  } finally {
    await session?.client.close().catch(() => {});
  }
  return d.checks;
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

export function registerDoctor(program: Command): void {
  const doctor = program
    .command('doctor')
    .description(
      'Check every step from configuration to an authenticated MLflow request (exit 1 on any FAIL)',
    )
    .option(
      '--dry-run <url>',
      'the MLflow tracking URL: check the allowlist and send one authenticated request',
    )
    .option(
      '--expect <duration>',
      'how long the job runs, e.g. 36h: token and lease lifetimes are checked against it',
    )
    .option(
      '--secret <ref>',
      'ENV/NAME[#field] of the MLflow credential in Custody (default CUSTODY_MLFLOW_SECRET)',
    )
    .option(
      '--creds <ENV/ENGINE/ROLE>',
      'a dynamic role the job uses (repeatable): a lease is issued and revoked at once to check permission and lifetimes',
      collect,
    )
    .option('--mi-timeout <duration>', 'Azure managed-identity probe timeout (default 2s)')
    .action(async (o: DoctorOptions, cmd: Command) => {
      if (o.expect !== undefined) A.duration(o.expect, '--expect');
      if (o.miTimeout !== undefined) A.duration(o.miTimeout, '--mi-timeout');
      for (const c of o.creds ?? []) parseCredsOption(c);
      const checks = await runDoctor(effectiveEnv(cmd), o);
      const failed = checks.some((c) => c.status === 'FAIL');
      const out = outputOf(cmd);
      if (out.json) out.printJson({ ok: !failed, checks });
      else {
        const lines = checks.map(
          (c) => `${c.status} ${c.name} — ${c.detail}${c.hint ? `\n     hint: ${c.hint}` : ''}`,
        );
        out.raw(`${lines.join('\n')}\n`);
      }
      if (failed) process.exitCode = 1;
    });
  examples(doctor, [
    '$ custody doctor --dry-run https://mlflow.example.com --expect 36h',
    '$ custody doctor --secret prod/mlflow --format json',
    '$ custody doctor --creds prod/warehouse/reader --expect 36h',
    '$ MLFLOW_SECRETS_AUTH_ENABLE=azure-key-vault custody doctor --mi-timeout 5s --dry-run https://mlflow.example.com',
  ]);
}
