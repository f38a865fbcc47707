import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './process.js';

/** The CLI launcher; it runs the compiled dist/ (run `npm run build` first). */
export const CUSTODY_BIN = fileURLToPath(new URL('../../bin/custody', import.meta.url));
export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface BrokerProcessOptions {
  /** Reuse a data directory (restarts); default: a fresh temp dir removed by cleanup(). */
  dataDir?: string;
  /** Default: a free loopback port. */
  port?: number;
  unseal?: 'file' | 'shamir';
  insecureHttp?: boolean;
  logLevel?: string;
  /** More `custody server` flags, e.g. ['--audit-stdout']. */
  args?: string[];
  /** Extra environment for the server process (CUSTODY_* of this process are not passed on). */
  env?: Record<string, string>;
  /** How long to wait for the broker to come up. */
  timeoutMs?: number;
}

export interface BrokerProcess {
  url: string;
  /** null with --insecure-http. */
  caCertPath: string | null;
  /** The root token written at auto-init (file mode); '' in shamir mode (see `operator init`). */
  rootToken: string;
  dataDir: string;
  proc: ChildProcess;
  /** The startup banner line (JSON) the server printed. */
  banner: Record<string, any>;
  /** Everything the server wrote so far. */
  stdout(): string;
  stderr(): string;
  /** CUSTODY_ADDR / CUSTODY_CACERT / CUSTODY_TOKEN for runCli. */
  env(token?: string): Record<string, string>;
  /** Sends a signal (default SIGTERM) and resolves with the exit code (or signal name). */
  stop(signal?: NodeJS.Signals): Promise<number | string | null>;
  /** SIGKILL: no graceful shutdown. */
  kill9(): Promise<number | string | null>;
  /** stop() if running, then remove the data dir if this helper created it. */
  cleanup(): Promise<void>;
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A loopback port nobody listens on right now (shared by the tests that start servers). */
export { freePort };

/** This process's environment without CUSTODY_* variables, so tests never pick up a developer's setup. */
function cleanEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('CUSTODY_')) env[k] = v;
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

function exited(proc: ChildProcess): Promise<number | string | null> {
  if (proc.exitCode !== null || proc.signalCode !== null)
    return Promise.resolve(proc.exitCode ?? proc.signalCode);
  return new Promise((resolve) => proc.once('exit', (code, signal) => resolve(code ?? signal)));
}

/**
 * Starts `custody server` as a child process on a free loopback port and waits for its banner
 * (`--format json`: one JSON line on stdout). Pino logs also go to stdout.
 */
export async function startBrokerProcess(opts: BrokerProcessOptions = {}): Promise<BrokerProcess> {
  const ownDir = opts.dataDir === undefined;
  const dataDir = opts.dataDir ?? (await mkdtemp(path.join(tmpdir(), 'custody-cli-')));
  const port = opts.port ?? (await freePort());
  const args = [
    CUSTODY_BIN,
    'server',
    '--data-dir',
    dataDir,
    '--listen',
    `127.0.0.1:${port}`,
    '--log-level',
    opts.logLevel ?? 'warn',
    '--format',
    'json',
    ...(opts.unseal ? ['--unseal', opts.unseal] : []),
    ...(opts.insecureHttp ? ['--insecure-http'] : []),
    ...(opts.args ?? []),
  ];
  const proc = spawn(process.execPath, args, {
    cwd: dataDir,
    env: cleanEnv(opts.env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
    out += d;
  });
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => {
    err += d;
  });

  const banner = await new Promise<Record<string, any>>((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`broker did not start in time\nstdout:\n${out}\nstderr:\n${err}`));
    }, opts.timeoutMs ?? 30_000);
    const onData = () => {
      for (const line of out.split('\n')) {
        if (!line.includes('"export"')) continue;
        try {
          const parsed = JSON.parse(line);
          clearTimeout(timer);
          proc.stdout!.off('data', onData);
          proc.off('exit', onExit);
          resolve(parsed);
          return;
        } catch {}
      }
    };
    const onExit = (code: number | null) => {
      clearTimeout(timer);
      reject(new Error(`broker exited with ${code} before it was ready\nstdout:\n${out}\nstderr:\n${err}`));
    };
    proc.stdout!.on('data', onData);
    proc.once('exit', onExit);
  });

  const rootToken = banner.root_token_file ? (await readFile(banner.root_token_file, 'utf8')).trim() : '';
  const bp: BrokerProcess = {
    url: banner.url,
    caCertPath: banner.ca_cert,
    rootToken,
    dataDir,
    proc,
    banner,
    stdout: () => out,
    stderr: () => err,
    env: (token = rootToken) => ({
      CUSTODY_ADDR: banner.url,
      ...(banner.ca_cert ? { CUSTODY_CACERT: banner.ca_cert } : {}),
      ...(token ? { CUSTODY_TOKEN: token } : {}),
    }),
    async stop(signal = 'SIGTERM') {
      const done = exited(proc);
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return done;
    },
    kill9: () => bp.stop('SIGKILL'),
    async cleanup() {
      await bp.stop();
      if (ownDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
  return bp;
}

/**
 * Runs `custody ARGS…` with only the given CUSTODY_* variables (`undefined` removes one) and
 * `input` on stdin (stdin is a pipe, never a TTY).
 */
export function runCli(
  args: string[],
  opts: { env?: Record<string, string | undefined>; input?: string; cwd?: string; timeoutMs?: number } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [CUSTODY_BIN, ...args], {
      cwd: opts.cwd ?? REPO_ROOT,
      env: cleanEnv(opts.env),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    proc.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    proc.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`custody ${args.join(' ')} timed out\nstdout:\n${stdout}\nstderr:\n${stderr}`));
    }, opts.timeoutMs ?? 30_000);
    proc.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    proc.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    proc.stdin.on('error', () => {}); // the command may exit before reading its input
    proc.stdin.end(opts.input ?? '');
  });
}
