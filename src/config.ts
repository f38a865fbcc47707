import path from 'node:path';
import type { UnsealMode } from './barrier/barrier.js';
import { type AzureConfig, resolveAzureConfig } from './compat/azure/config.js';
import { badRequest } from './errors.js';

export interface ServerConfig {
  dataDir: string;
  host: string;
  port: number;
  /** Storage URL; undefined = SQLite file in the data dir. */
  storageUrl?: string;
  unseal: UnsealMode;
  insecureHttp: boolean;
  /** Extra names/IPs for the generated server certificate. */
  tlsHosts: string[];
  auditFile: string | null;
  auditStdout: boolean;
  logLevel: string;
  /** How often the lease reaper looks for due leases when idle. */
  reaperIntervalMs: number;
  /** Azure Key Vault front door: vault table, vault domains, tenant (CUSTODY_AZURE_* variables). */
  azure?: AzureConfig;
}

export const DEFAULT_LISTEN = '127.0.0.1:8270';

export function parseListen(listen: string): { host: string; port: number } {
  const m = /^\[?([^\]]*?)\]?:(\d{1,5})$/.exec(listen);
  const port = m ? Number(m[2]) : Number.NaN;
  if (!m || port > 65535)
    throw badRequest('InvalidListen', `--listen ${listen} is not HOST:PORT`, 'Example: 127.0.0.1:8270.');
  return { host: m[1], port };
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** Flags win over environment variables, which win over defaults. */
export function resolveServerConfig(
  flags: {
    dataDir?: string;
    listen?: string;
    storage?: string;
    unseal?: string;
    insecureHttp?: boolean;
    tlsHost?: string[];
    auditFile?: string;
    auditStdout?: boolean;
    logLevel?: string;
  },
  env = process.env,
): ServerConfig {
  const dataDir = path.resolve(flags.dataDir ?? env.CUSTODY_DATA_DIR ?? '.custody');
  const { host, port } = parseListen(flags.listen ?? env.CUSTODY_LISTEN ?? DEFAULT_LISTEN);
  const unseal = (flags.unseal ?? env.CUSTODY_UNSEAL ?? 'file') as UnsealMode;
  if (unseal !== 'file' && unseal !== 'shamir') {
    throw badRequest(
      'InvalidUnsealMode',
      `--unseal ${unseal} is not file or shamir`,
      'file auto-unseals from a key file; shamir needs a quorum of shares.',
    );
  }
  const insecureHttp = flags.insecureHttp ?? env.CUSTODY_INSECURE_HTTP === '1';
  if (insecureHttp && !isLoopback(host)) {
    throw badRequest(
      'InsecureListen',
      'Plain HTTP is allowed only on a loopback address',
      'Drop --insecure-http, or listen on 127.0.0.1.',
    );
  }
  const auditFile = flags.auditFile ?? env.CUSTODY_AUDIT_FILE ?? path.join(dataDir, 'audit.log');
  return {
    dataDir,
    host,
    port,
    storageUrl: flags.storage ?? env.CUSTODY_STORAGE_URL,
    unseal,
    insecureHttp,
    tlsHosts: flags.tlsHost ?? (env.CUSTODY_TLS_HOSTS ? env.CUSTODY_TLS_HOSTS.split(',') : []),
    auditFile: auditFile === 'off' ? null : auditFile,
    auditStdout: flags.auditStdout ?? env.CUSTODY_AUDIT_STDOUT === '1',
    logLevel: flags.logLevel ?? env.CUSTODY_LOG_LEVEL ?? 'info',
    reaperIntervalMs: Number(env.CUSTODY_REAPER_INTERVAL_MS ?? 1000),
    azure: resolveAzureConfig(env),
  };
}
