import { Command, CommanderError, Option } from 'commander';
import { VERSION } from '../version.js';
import { registerAccess, registerRole } from './commands/access.js';
import { registerAudit } from './commands/audit.js';
import { registerAuth, registerLogin } from './commands/auth.js';
import { registerCreds, registerLease } from './commands/creds.js';
import { registerDoctor } from './commands/doctor.js';
import { registerEngine } from './commands/engine.js';
import { registerEnv } from './commands/env.js';
import { registerGroup, registerIdentity } from './commands/identity.js';
import { registerInfo } from './commands/info.js';
import { registerKv } from './commands/kv.js';
import { registerOperator } from './commands/operator.js';
import { registerProxy } from './commands/proxy.js';
import { registerRun } from './commands/run.js';
import { registerServer } from './commands/server.js';
import { registerToken } from './commands/token.js';
import { closeClients, examples } from './context.js';
import { CliError, EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from './errors.js';
import { FORMATS, type Format, Output, toErrorBody } from './output.js';

/** The options every command takes: on the program and on each command, so they work before or after it. */
function globalOptions(): Option[] {
  return [
    new Option('--format <format>', 'output: table (for people) or json (the API response)').choices(FORMATS),
    new Option('--addr <url>', 'broker address (env CUSTODY_ADDR, default https://127.0.0.1:8270)'),
    new Option(
      '--token <token>',
      'token (env CUSTODY_TOKEN; prefer the variable: flags show in process lists)',
    ),
    new Option('--ca-cert <file>', "CA certificate that signs the broker's (env CUSTODY_CACERT)"),
  ];
}

function leaves(cmd: Command): Command[] {
  return cmd.commands.length === 0 ? [cmd] : cmd.commands.flatMap(leaves);
}

export function buildProgram(): Command {
  const program = new Command('custody');
  program
    .description('Custody: short-lived, identity-bound credentials for ML jobs')
    .version(VERSION, '-V, --version', 'print the version')
    // Options belong to the command they follow, so `kv get --version 2` is not the program's --version.
    .enablePositionalOptions()
    .exitOverride()
    .configureOutput({
      // Commander's own usage errors: printed by report() in the chosen format.
      outputError: () => {},
    });
  for (const opt of globalOptions()) program.addOption(opt);
  examples(program, [
    '$ custody server',
    '$ export CUSTODY_ADDR=https://127.0.0.1:8270 CUSTODY_CACERT=$PWD/.custody/tls/ca.pem',
    '$ export CUSTODY_TOKEN=$(cat .custody/root-token)',
    '$ custody env create dev',
    '$ printf %s "$DB_PASSWORD" | custody kv put dev/db/password -',
    '$ custody kv get dev/db/password',
  ]);
  registerServer(program);
  registerOperator(program);
  registerToken(program);
  registerEnv(program);
  registerKv(program);
  registerAuth(program);
  registerLogin(program);
  registerAccess(program);
  registerRole(program);
  registerIdentity(program);
  registerGroup(program);
  registerEngine(program);
  registerCreds(program);
  registerLease(program);
  registerRun(program);
  registerProxy(program);
  registerAudit(program);
  registerDoctor(program);
  registerInfo(program);
  for (const leaf of leaves(program)) {
    if (leaf === program) continue;
    // A command may define one itself (creds: --format table|json|env).
    for (const opt of globalOptions())
      if (!leaf.options.some((o) => o.long === opt.long)) leaf.addOption(opt);
  }
  return program;
}

/** `--format json` as typed, for errors raised before or while parsing. */
function formatFromArgv(argv: string[]): Format {
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--format' && argv[i + 1] === 'json') return 'json';
    if (argv[i] === '--format=json') return 'json';
  }
  return 'table';
}

/** Prints an error and returns the exit code: 2 usage, 1 everything else. */
function report(err: unknown, format: Format): number {
  const out = new Output(format);
  if (err instanceof CommanderError) {
    if (err.exitCode === 0) return EXIT_OK; // --help, --version
    // Help was printed because a command group was called without a subcommand.
    if (err.code === 'commander.help' || err.code === 'commander.executeSubCommandAsync') return EXIT_USAGE;
    out.error({
      code: 'UsageError',
      message: err.message.replace(/^error: /, ''),
      hint: 'Run `custody --help`, or `custody <command> --help` for its options and examples.',
    });
    return EXIT_USAGE;
  }
  out.error(toErrorBody(err));
  if (err instanceof CliError) return err.exitCode;
  return EXIT_FAILURE;
}

export async function main(argv: string[] = process.argv): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT_OK;
  } catch (err) {
    return report(err, formatFromArgv(argv));
  } finally {
    await closeClients();
  }
}

// `custody kv list dev | head -1`: a closed pipe ends the command quietly, as for other CLI tools.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? EXIT_OK);
    throw err;
  });
}

main().then((code) => {
  process.exitCode = code;
  // Nothing should keep the process alive now; if something does, do not hang a script.
  setTimeout(() => process.exit(code), 2000).unref();
});
