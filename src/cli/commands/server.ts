import { existsSync } from 'node:fs';
import path from 'node:path';
import { type Command, Option } from 'commander';
import type { RunningBroker } from '../../broker.js';
import { resolveServerConfig, type ServerConfig } from '../../config.js';
import { CustodyError } from '../../errors.js';
import { VERSION } from '../../version.js';
import { shellQuote } from '../config.js';
import { collect, examples, outputOf } from '../context.js';
import { CliError, usageError } from '../errors.js';

interface SealStatus {
  initialized: boolean;
  sealed: boolean;
  mode: string | null;
  shares: number;
  threshold: number;
}

/** Storage URLs may carry a password: show them without it. */
function describeStorage(config: ServerConfig): string {
  if (!config.storageUrl) return `sqlite ${path.join(config.dataDir, 'custody.db')}`;
  try {
    const u = new URL(config.storageUrl);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return config.storageUrl;
  }
}

/** The address clients should use: a wildcard listen address is reached over loopback. */
function clientUrl(url: string): string {
  return url.replace('//0.0.0.0:', '//127.0.0.1:').replace('//[::]:', '//[::1]:');
}

function startError(err: unknown, config: ServerConfig): Error {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EADDRINUSE') {
    return new CliError(
      'ListenFailed',
      `Cannot listen on ${config.host}:${config.port}: address in use`,
      'Another broker (or program) uses that port: stop it, or pick another with --listen.',
    );
  }
  if (code === 'EACCES' || code === 'EADDRNOTAVAIL') {
    return new CliError(
      'ListenFailed',
      `Cannot listen on ${config.host}:${config.port} (${code})`,
      'Pick another address or port with --listen.',
    );
  }
  return err as Error;
}

function waitForSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      // A second signal while closing: stop waiting for in-flight requests.
      const force = () => process.exit(1);
      process.once('SIGINT', force);
      process.once('SIGTERM', force);
      resolve(signal);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}

function banner(broker: RunningBroker, config: ServerConfig, seal: SealStatus) {
  const url = clientUrl(broker.url);
  const tokenFile = broker.rootTokenPath && existsSync(broker.rootTokenPath) ? broker.rootTokenPath : null;
  const exports = [`CUSTODY_ADDR=${url}`];
  if (broker.caCertPath) exports.push(`CUSTODY_CACERT=${shellQuote(broker.caCertPath)}`);
  if (tokenFile && seal.initialized) exports.push(`CUSTODY_TOKEN=$(cat ${shellQuote(tokenFile)})`);
  let next: string | null = null;
  if (!seal.initialized) {
    next = 'custody operator init --key-shares 5 --key-threshold 3';
  } else if (seal.sealed) {
    next = `custody operator unseal   # ${seal.threshold} of ${seal.shares} shares`;
  }
  return {
    json: {
      url,
      ca_cert: broker.caCertPath,
      root_token_file: tokenFile,
      data_dir: config.dataDir,
      storage: describeStorage(config),
      unseal_mode: config.unseal,
      initialized: seal.initialized,
      initialized_now: broker.initializedNow,
      sealed: seal.sealed,
      audit_file: config.auditFile,
      export: `export ${exports.join(' ')}`,
      next_step: next,
      version: VERSION,
    },
    text: [
      `Custody broker ${VERSION} listening on ${broker.url}`,
      `  data dir:     ${config.dataDir}`,
      `  storage:      ${describeStorage(config)}`,
      `  unseal mode:  ${config.unseal}${broker.initializedNow ? ' (initialized now)' : ''}${!seal.initialized ? ', not initialized' : seal.sealed ? ', sealed' : ''}`,
      `  CA cert:      ${broker.caCertPath ?? '- (plain HTTP, loopback only)'}`,
      ...(tokenFile
        ? [`  root token:   in ${tokenFile} (private; revoke it once you have narrower tokens)`]
        : []),
      `  audit file:   ${config.auditFile ?? 'off'}${config.auditStdout ? ' (+ stdout)' : ''}`,
      '',
      'To use it from another shell:',
      `  export ${exports.join(' ')}`,
      ...(next
        ? [
            '',
            seal.initialized
              ? 'The broker is sealed. Unseal it with:'
              : 'The broker is not initialized. Initialize it with:',
            `  ${next}`,
          ]
        : []),
      '',
    ].join('\n'),
  };
}

export function registerServer(program: Command): void {
  const server = program
    .command('server')
    .description(
      'Run the broker (HTTPS on 127.0.0.1:8270, data in ./.custody) until SIGINT/SIGTERM; SIGHUP reopens the audit file',
    )
    .option('--data-dir <dir>', 'where the database, keys, TLS files and audit log live (default ./.custody)')
    .option('--listen <host:port>', 'address to listen on (default 127.0.0.1:8270)')
    .option('--storage <url>', 'postgres://… for shared storage (default: SQLite in the data dir)')
    .addOption(
      new Option('--unseal <mode>', 'file: auto-unseal from a key file; shamir: a quorum of shares').choices([
        'file',
        'shamir',
      ]),
    )
    .option('--insecure-http', 'plain HTTP (loopback addresses only)')
    .option('--tls-host <host>', 'extra name or IP for the server certificate (repeatable)', collect)
    .option('--audit-file <file|off>', 'audit log file (default <data-dir>/audit.log), or off')
    .option('--audit-stdout', 'also write audit entries to stdout')
    .option('--log-level <level>', 'fatal, error, warn, info, debug (default info)')
    .action(async (o, cmd: Command) => {
      let config: ServerConfig;
      try {
        config = resolveServerConfig({
          dataDir: o.dataDir,
          listen: o.listen,
          storage: o.storage,
          unseal: o.unseal,
          insecureHttp: o.insecureHttp,
          tlsHost: o.tlsHost,
          auditFile: o.auditFile,
          auditStdout: o.auditStdout,
          logLevel: o.logLevel,
        });
      } catch (err) {
        if (err instanceof CustodyError && err.status === 400)
          throw usageError(err.message, err.hint, err.code);
        throw err;
      }
      let broker: RunningBroker;
      try {
        // Loaded here, not at the top: client commands start faster without the server's dependencies.
        const { startBroker } = await import('../../broker.js');
        broker = await startBroker(config);
      } catch (err) {
        throw startError(err, config);
      }
      const signal = waitForSignal();
      // logrotate's postrotate `kill -HUP`: the chain goes on in the new file (verify them in order).
      const b0 = broker;
      const onHup = () => {
        b0.reopenAuditFiles();
        process.stderr.write('Received SIGHUP: the audit file is reopened at the next entry.\n');
      };
      process.on('SIGHUP', onHup);
      const res = await broker.app.inject({ method: 'GET', url: '/v1/sys/seal-status' });
      const b = banner(broker, config, res.json() as SealStatus);
      const out = outputOf(cmd);
      if (out.json) process.stdout.write(`${JSON.stringify(b.json)}\n`);
      else process.stderr.write(b.text);
      const got = await signal;
      process.stderr.write(`Received ${got}: closing the broker…\n`);
      process.off('SIGHUP', onHup);
      await broker.close();
      process.stderr.write('Broker closed.\n');
    });
  examples(server, [
    '$ custody server                                  # ./.custody, https://127.0.0.1:8270',
    '$ custody server --data-dir /var/lib/custody --listen 0.0.0.0:8270 --tls-host custody.internal',
    '$ custody server --unseal shamir                  # then: custody operator init',
    '$ custody server --storage postgres://custody@db/custody --audit-stdout --log-level warn',
    '',
    'Logs (JSON) go to stdout; the startup banner goes to stderr (one JSON line on stdout with --format json).',
  ]);
}
