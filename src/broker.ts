import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import pino, { type Logger } from 'pino';
import { createAccessService } from './access/access-service.js';
import { AuditService, type AuditSink, FileSink, StdoutSink } from './audit/index.js';
import { createIdentityService } from './auth/identity-service.js';
import { createAuthMethodService } from './auth/methods/auth-method-service.js';
import { createTokenService } from './auth/token-service.js';
import { Barrier } from './barrier/barrier.js';
import { AZURE_VAULT_DOMAINS, azureTlsHosts } from './compat/azure/config.js';
import { createAzureDoor } from './compat/azure/door.js';
import type { ServerConfig } from './config.js';
import { createEngineService } from './engines/engine-service.js';
import { engineFactories } from './engines/registry.js';
import { buildApp } from './http/app.js';
import type { Services } from './http/services.js';
import { ensureTls } from './http/tls.js';
import { createKvService } from './kv/kv-service.js';
import { LeaseReaper } from './leases/lease-reaper.js';
import { createLeaseService } from './leases/lease-service.js';
import { OperatorService } from './operator/operator-service.js';
import { writePrivateFile } from './operator/private-file.js';
import { Pipeline } from './pipeline/pipeline.js';
import { metaStore } from './storage/meta-store.js';
import { openStorage } from './storage/storage.js';
import { Metrics } from './telemetry/metrics.js';
import { VERSION } from './version.js';

export interface RunningBroker {
  app: FastifyInstance;
  url: string;
  caCertPath: string | null;
  /** Where the root token was written at auto-init (file mode), else null. */
  rootTokenPath: string | null;
  /** True when this start initialized a fresh install. */
  initializedNow: boolean;
  /** The assembled services (for in-process tools and tests). */
  services: Services;
  /** After the audit file was renamed away (logrotate): the next entry opens the path again. */
  reopenAuditFiles(): void;
  close(): Promise<void>;
}

const MAINTENANCE_MS = 30_000;

export function createLogger(level: string): Logger {
  return pino({
    level,
    // Belt and braces: nothing we log carries these, but a future log call must not leak them.
    redact: {
      paths: ['*.authorization', '*.token', '*.password', '*.value', '*.secret', '*.key', 'headers', 'body'],
      censor: '[redacted]',
    },
  });
}

/** Assembles storage → barrier → services → pipeline → HTTP, unseals (file mode) and listens. */
export async function startBroker(
  config: ServerConfig,
  logger = createLogger(config.logLevel),
): Promise<RunningBroker> {
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  const storage = await openStorage(config.storageUrl ?? path.join(config.dataDir, 'custody.db'));
  const meta = metaStore(storage);
  const barrier = new Barrier(meta);
  await barrier.load();
  const metrics = new Metrics();
  const sinks: AuditSink[] = [];
  if (config.auditFile) sinks.push(await FileSink.open(config.auditFile));
  if (config.auditStdout) sinks.push(new StdoutSink());
  const audit = new AuditService({
    sinks,
    metrics: { sinkFailure: (name) => metrics.auditSinkFailures.inc({ sink: name }) },
  });
  const tokens = createTokenService(storage);
  const kv = createKvService(storage, barrier);
  const identities = createIdentityService(storage);
  const access = createAccessService(storage, identities);
  await access.seedBuiltinRoles();
  const authMethods = createAuthMethodService({ storage, barrier, tokens, identities, kv });
  const pipeline = new Pipeline({ barrier, tokens, authorizer: access, audit, metrics });
  const engines = createEngineService(storage, barrier, engineFactories());
  const leases = createLeaseService({
    storage,
    barrier,
    engines,
    authorizer: access,
    audit,
    onRevocation: (outcome) => metrics.leaseRevocations.inc({ outcome }),
  });
  // As in Vault: revoking a token (a job's, or its parent's) ends the leases it issued.
  tokens.onRevoke((accessors) => leases.endForTokens(accessors));
  // An engine with unfinished leases cannot be removed (their revocation needs it).
  engines.guardRemoval((env, name) => leases.hasUnfinished(`${env}/${name}/`));
  const keyFile = path.join(config.dataDir, 'unseal.key');
  const operator = new OperatorService({ barrier, tokens, audit, meta, mode: config.unseal, keyFile });

  let rootTokenPath: string | null = null;
  let initializedNow = false;
  const status = barrier.status();
  if (!status.initialized && config.unseal === 'file') {
    const init = await operator.init();
    rootTokenPath = path.join(config.dataDir, 'root-token');
    await writePrivateFile(rootTokenPath, `${init.rootToken}\n`);
    initializedNow = true;
  } else if (status.initialized && status.mode === 'file') {
    await operator.unsealFromKeyFile();
    rootTokenPath = path.join(config.dataDir, 'root-token');
  }
  metrics.sealed.set(barrier.isSealed ? 1 : 0);

  let https: { key: string; cert: string } | null = null;
  let caCertPath: string | null = null;
  if (!config.insecureHttp) {
    const tls = await ensureTls(path.join(config.dataDir, 'tls'), {
      hosts: [
        config.host,
        ...config.tlsHosts,
        // `custody run --azure` tunnels `<vault>.vault.azure.net` & co. to this port (TLS end to end).
        ...AZURE_VAULT_DOMAINS.map((d) => `*.${d}`),
        ...azureTlsHosts(config.azure),
      ].filter((h) => h !== '0.0.0.0' && h !== '::'),
    });
    https = { key: tls.keyPem, cert: tls.certPem };
    caCertPath = tls.caCertPath;
  }
  const services: Services = {
    pipeline,
    kv,
    tokens,
    identities,
    authMethods,
    access,
    engines,
    leases,
    operator,
    storage,
    metrics,
    version: VERSION,
    azure: createAzureDoor(config.azure, barrier),
  };
  const app = await buildApp({
    services,
    logger,
    https,
  });
  try {
    await app.listen({ host: config.host, port: config.port });
  } catch (err) {
    // Leave nothing open behind a failed start (port in use, address not available).
    await app.close().catch(() => {});
    await audit.close().catch(() => {});
    await storage.close().catch(() => {});
    throw err;
  }
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : config.port;
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  const url = `${https ? 'https' : 'http'}://${host}:${port}`;

  // Housekeeping: purge secrets whose retention ended, drop expired tokens, rotate due static roles.
  const timer = setInterval(() => {
    if (barrier.isSealed) return;
    maintenance().catch((err) => logger.warn({ err: (err as Error).message }, 'maintenance failed'));
  }, MAINTENANCE_MS);
  timer.unref();
  async function maintenance() {
    await Promise.all([kv.purgeDue(), tokens.purgeExpired(), authMethods.purgeExpired()]);
    for (const r of await engines.dueStaticRoles()) {
      await engines
        .rotateStatic(r.env, r.engine, r.name)
        .catch((err) =>
          logger.warn(
            { role: `${r.env}/${r.engine}/${r.name}`, err: (err as Error).message },
            'static rotation failed',
          ),
        );
    }
    metrics.leasesRevokeFailed.set(await leases.countByState('revoke-failed'));
  }
  // Leases live in storage, not memory: the reaper starts serving at once, whatever the backlog.
  const reaper = new LeaseReaper(leases, {
    intervalMs: config.reaperIntervalMs,
    logger,
    isSealed: () => barrier.isSealed,
    afterPass: async () => metrics.leasesRevokeFailed.set(await leases.countByState('revoke-failed')),
  });
  reaper.start();

  return {
    app,
    url,
    caCertPath,
    rootTokenPath,
    initializedNow,
    services,
    reopenAuditFiles() {
      for (const s of sinks) if (s instanceof FileSink) s.reopen();
    },
    async close() {
      clearInterval(timer);
      await reaper.stop();
      await app.close();
      await engines.close();
      await authMethods.close();
      await audit.close();
      await storage.close();
    },
  };
}
