import { existsSync } from 'node:fs';
import path from 'node:path';
import { CliError, usageError } from './errors.js';

export const DEFAULT_ADDR = 'https://127.0.0.1:8270';
/** Where `custody server` keeps its files when started without --data-dir. */
export const LOCAL_DATA_DIR = '.custody';

/** Options every command accepts (defined once on the program). */
export interface GlobalOptions {
  format?: string;
  addr?: string;
  token?: string;
  caCert?: string;
}

export interface ClientConfig {
  addr: string;
  token?: string;
  caCertPath?: string;
  /** Used for hints only: the directory the command runs in. */
  cwd: string;
}

/** Flags win over CUSTODY_ADDR / CUSTODY_TOKEN / CUSTODY_CACERT, which win over the default address. */
export function resolveClientConfig(
  opts: GlobalOptions,
  env: NodeJS.ProcessEnv = process.env,
  cwd = process.cwd(),
): ClientConfig {
  const rawAddr = nonEmpty(opts.addr) ?? nonEmpty(env.CUSTODY_ADDR) ?? DEFAULT_ADDR;
  let url: URL;
  try {
    url = new URL(rawAddr);
  } catch {
    throw usageError(
      `The broker address ${rawAddr} is not a URL`,
      'Example: https://127.0.0.1:8270.',
      'InvalidAddr',
    );
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw usageError(
      `The broker address must be http(s), not ${url.protocol}`,
      'Example: https://127.0.0.1:8270.',
      'InvalidAddr',
    );
  }
  const caCert = nonEmpty(opts.caCert) ?? nonEmpty(env.CUSTODY_CACERT);
  return {
    addr: rawAddr.replace(/\/+$/, ''),
    token: nonEmpty(opts.token)?.trim() ?? nonEmpty(env.CUSTODY_TOKEN)?.trim(),
    caCertPath: caCert ? path.resolve(cwd, caCert) : undefined,
    cwd,
  };
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v.trim() === '' ? undefined : v;
}

/**
 * No token given. A local broker's root token is never picked up silently: the hint says how to
 * opt in, so a command never runs as root by accident.
 */
export function missingTokenError(cfg: ClientConfig): CliError {
  const localToken = path.join(cfg.cwd, LOCAL_DATA_DIR, 'root-token');
  const hint =
    cfg.addr === DEFAULT_ADDR && existsSync(localToken)
      ? `export CUSTODY_TOKEN=$(cat ${LOCAL_DATA_DIR}/root-token)`
      : 'Set CUSTODY_TOKEN (or pass --token; the environment keeps it out of your shell history and process list).';
  return new CliError('MissingToken', 'This command needs a token', hint);
}

/** What to say when the broker's certificate is not trusted. */
export function caHint(cfg: ClientConfig): string {
  if (cfg.caCertPath) {
    return `CUSTODY_CACERT (${cfg.caCertPath}) does not sign the broker's certificate: point it at the broker's <data-dir>/tls/ca.pem.`;
  }
  const local = path.join(cfg.cwd, LOCAL_DATA_DIR, 'tls', 'ca.pem');
  if (existsSync(local))
    return `Set CUSTODY_CACERT to the broker's CA: export CUSTODY_CACERT=${shellQuote(local)}`;
  return "Set CUSTODY_CACERT to the broker's CA certificate, <data-dir>/tls/ca.pem (or pass --ca-cert).";
}

/** Quotes a path for a POSIX shell when it needs it. */
export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}
