import { CustodyError } from '../../errors.js';
import type { IssuedCredential, PreparedCredential } from '../engine.js';
import { parseSqlTarget, type SqlConfig, type SqlTarget, type UrlForm } from './config.js';
import { backendFailure, type ErrorDialect, type Phase } from './errors.js';

/** How long to wait for a connection (TCP + auth), and for any one query, before giving up. */
export const CONNECT_TIMEOUT_MS = 5_000;
export const QUERY_TIMEOUT_MS = 30_000;

/** What the shared plumbing needs to know about a dialect besides its errors. */
export interface SqlDialect extends ErrorDialect {
  url: UrlForm;
  /** The scheme of the connection_url handed to a credential's holder. */
  scheme: string;
  /** Its query when the engine talks TLS. */
  tlsQuery: string;
}

/**
 * The plumbing the SQL engines share around their driver's pool: the admin config and target, error
 * translation, closing, the credential data handed back and the rotate-root sequence. What SQL runs,
 * and how, stays with each dialect.
 */
export abstract class SqlEngine<Config extends SqlConfig, Pool extends { end(): Promise<unknown> }> {
  protected config: Config;
  protected readonly target: SqlTarget;
  protected pool: Pool;
  private closed = false;

  constructor(
    config: Config,
    private readonly dialect: SqlDialect,
  ) {
    this.config = { ...config };
    this.target = parseSqlTarget(config.connection_url, dialect.url);
    // Called before a subclass's own fields are set: makePool may use only config and target.
    this.pool = this.makePool(config.password);
  }

  /** A pool logging in as the admin user with `password`. */
  protected abstract makePool(password: string): Pool;

  /** Logs in with `password` on a fresh connection (not from the pool) and runs a trivial query. */
  protected abstract probe(password: string): Promise<void>;

  /** Refuses work once closed (a pool that has ended would fail less clearly). */
  protected checkOpen(): void {
    if (this.closed)
      throw new CustodyError('EngineClosed', 503, 'The engine was closed', 'Retry the request.');
  }

  /** Any backend error as a CustodyError whose message holds no secret. */
  protected failure(err: unknown, phase: Phase, what: string, secrets: string[] = []): CustodyError {
    const t = this.target;
    return backendFailure(err, phase, what, {
      dialect: this.dialect,
      urlHost: t.urlHost,
      port: t.port,
      database: t.database,
      adminUser: this.config.username,
      secrets: [this.config.password, ...secrets],
    });
  }

  protected async run<T>(
    phase: Phase,
    what: string,
    fn: () => Promise<T>,
    secrets: string[] = [],
  ): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw this.failure(err, phase, what, secrets);
    }
  }

  /** The credential as returned to its holder: a connection_url WITHOUT the password. */
  protected issued(prepared: PreparedCredential): IssuedCredential {
    const t = this.target;
    const query = t.tls ? this.dialect.tlsQuery : '';
    return {
      username: prepared.username,
      password: prepared.password,
      data: {
        connection_url: `${this.dialect.scheme}://${encodeURIComponent(prepared.username)}@${t.urlHost}:${t.port}/${encodeURIComponent(t.database)}${query}`,
        database: t.database,
        host: t.host,
        port: String(t.port),
      },
    };
  }

  /**
   * Rotate-root: `setTo('new')` changes the admin password on the server; the new password must then
   * log in on a fresh connection before the engine forgets the old one, else `setTo('old')` puts the
   * old one back (an open pooled session still works) so the stored config stays valid.
   */
  protected async rotateAdminPassword(
    newPassword: string,
    secrets: string[],
    setTo: (which: 'new' | 'old') => Promise<unknown>,
  ): Promise<Record<string, unknown>> {
    await this.run('runtime', 'Rotating the admin password', () => setTo('new'), secrets);
    try {
      await this.probe(newPassword);
    } catch (err) {
      await setTo('old').catch(() => {});
      throw this.failure(err, 'runtime', 'Logging in with the rotated admin password', secrets);
    }
    const oldPool = this.pool;
    this.config = { ...this.config, password: newPassword };
    this.pool = this.makePool(newPassword);
    await oldPool.end().catch(() => {});
    const stored: SqlConfig = this.config;
    return { ...stored };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end().catch(() => {});
  }
}
