import pg from 'pg';
import { CustodyError } from '../../errors.js';
import type { Engine, IssueContext, IssuedCredential, PreparedCredential } from '../engine.js';
import { generatePassword } from '../password.js';
import { isNetworkError, type Phase, scrubMessage, statusFor } from './common.js';
import { type PostgresConfig, type PostgresTarget, parseTarget } from './config.js';
import { verifierFor } from './scram.js';
import {
  creationTemplates,
  PG_MAX_USERNAME,
  type PostgresRole,
  render,
  renewTemplates,
  roleOrDefault,
} from './statements.js';
import { DEFAULT_USERNAME_TEMPLATE, generateUsername } from './username.js';

/** How long to wait for a connection (TCP + auth), and for any one query, before giving up. */
export const CONNECT_TIMEOUT_MS = 5_000;
export const QUERY_TIMEOUT_MS = 30_000;
/** pg_terminate_backend(pid, timeout) waits this long for each session to end (PostgreSQL 14+). */
const TERMINATE_WAIT_MS = 5_000;

interface Revocation {
  username: string;
}

function revocationOf(raw: Record<string, unknown>): Revocation {
  const username = raw?.username;
  if (
    typeof username !== 'string' ||
    username.length === 0 ||
    Buffer.byteLength(username) > PG_MAX_USERNAME
  ) {
    throw new CustodyError(
      'InvalidRevocationData',
      400,
      'The lease has no valid PostgreSQL user name to revoke',
      'The lease record is damaged; remove the user by hand and force-revoke the lease.',
    );
  }
  return { username };
}

export class PostgresEngine implements Engine<PostgresRole> {
  readonly type = 'postgresql';
  private config: PostgresConfig;
  private readonly target: PostgresTarget;
  private pool: pg.Pool;
  private closed = false;
  private admin?: Promise<{ superuser: boolean; version: number }>;

  constructor(config: PostgresConfig) {
    this.config = { ...config };
    this.target = parseTarget(config.connection_url);
    this.pool = this.makePool(config.password);
  }

  private clientConfig(password: string): pg.ClientConfig {
    const t = this.target;
    return {
      host: t.host,
      port: t.port,
      database: t.database,
      user: this.config.username,
      password,
      ssl: t.tls ? { rejectUnauthorized: this.config.verify_tls, servername: t.host } : false,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      query_timeout: QUERY_TIMEOUT_MS,
      statement_timeout: QUERY_TIMEOUT_MS - 1_000,
      application_name: 'custody',
    };
  }

  private makePool(password: string): pg.Pool {
    const pool = new pg.Pool({
      ...this.clientConfig(password),
      max: this.config.max_connections,
      idleTimeoutMillis: 10_000,
      allowExitOnIdle: true,
    });
    // An idle client whose connection dies (server restart, network) must not crash the broker;
    // the pool drops it and the next checkout connects afresh.
    pool.on('error', () => {});
    return pool;
  }

  /** Runs `fn` on one pooled client; a client that saw any error is discarded, not reused. */
  private async withClient<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    if (this.closed)
      throw new CustodyError('EngineClosed', 503, 'The engine was closed', 'Retry the request.');
    const client = await this.pool.connect();
    const onError = () => {};
    client.on('error', onError);
    let failed = false;
    try {
      return await fn(client);
    } catch (err) {
      failed = true;
      throw err;
    } finally {
      client.removeListener('error', onError);
      client.release(failed);
    }
  }

  /**
   * Runs statements in one transaction on one client. Concurrent DROP OWNED / REVOKE on objects
   * shared by several roles can collide on catalog rows ("tuple concurrently updated", deadlock):
   * such a transaction is retried a few times with jitter instead of failing the revocation.
   */
  private async transaction(client: pg.PoolClient, statements: string[], what: string, secrets: string[]) {
    for (let attempt = 1; ; attempt++) {
      let failedAt = -1;
      await client.query('BEGIN');
      try {
        for (const [i, sql] of statements.entries()) {
          failedAt = i;
          await client.query(sql);
        }
        failedAt = -1;
        await client.query('COMMIT');
        return;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {});
        if (attempt < 5 && isConcurrencyConflict(err)) {
          await new Promise((r) => setTimeout(r, 20 * attempt + Math.random() * 80));
          continue;
        }
        if (failedAt < 0) throw err;
        throw this.failure(
          err,
          'runtime',
          `${what} (statement ${failedAt + 1} of ${statements.length})`,
          secrets,
        );
      }
    }
  }

  private adminInfo(client: pg.PoolClient) {
    this.admin ??= client
      .query<{ rolsuper: boolean; v: number }>(
        `select rolsuper, current_setting('server_version_num')::int as v from pg_roles where rolname = current_user`,
      )
      .then(({ rows }) => ({ superuser: rows[0]?.rolsuper === true, version: rows[0]?.v ?? 0 }))
      .catch((err) => {
        this.admin = undefined;
        throw err;
      });
    return this.admin;
  }

  /** Any backend error as a CustodyError whose message holds no secret. */
  private failure(err: unknown, phase: Phase, what: string, secrets: string[] = []): CustodyError {
    if (err instanceof CustodyError) return err;
    const e = err as { code?: string; message?: string };
    const where = `PostgreSQL at ${this.target.urlHost}:${this.target.port}`;
    const scrub = (m: unknown) => scrubMessage(m, [this.config.password, ...secrets]);
    if (e?.code === '28P01' || e?.code === '28000') {
      return new CustodyError(
        'EngineAuthenticationFailed',
        statusFor(phase, 502),
        `${where} refused the login of admin user ${JSON.stringify(this.config.username)}`,
        'Check username and password; the server must allow password login from the broker (pg_hba.conf).',
      );
    }
    if (e?.code === '3D000') {
      return new CustodyError(
        'EngineUnreachable',
        statusFor(phase, 502),
        `${where} has no database ${JSON.stringify(this.target.database)}`,
        'Fix the database name at the end of connection_url.',
      );
    }
    if (e?.code === '42501') {
      return new CustodyError(
        'EngineInsufficientPrivilege',
        statusFor(phase, 502),
        `${what}: the admin user lacks a privilege: ${scrub(e.message)}`,
        'The admin role needs CREATEROLE and the grant option on what roles grant (or be superuser).',
      );
    }
    if (typeof e?.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code)) {
      return new CustodyError(
        'EngineStatementFailed',
        statusFor(phase, 502),
        `${what} failed on ${where}: ${scrub(e.message)} (SQLSTATE ${e.code})`,
        'Check the role statements and grants against the database.',
      );
    }
    if (isNetworkError(err)) {
      return new CustodyError(
        'EngineUnreachable',
        statusFor(phase, 503),
        `Could not reach ${where}${e?.code ? ` (${e.code})` : ''}: ${scrub(e?.message)}`,
        'Check the host, port and TLS settings in connection_url, and that the server is up and reachable from the broker.',
      );
    }
    return new CustodyError(
      'EngineError',
      statusFor(phase, 502),
      `${what} failed on ${where}: ${scrub(e?.message)}`,
      'Check the engine configuration and the database server log.',
    );
  }

  private async run<T>(phase: Phase, what: string, fn: () => Promise<T>, secrets: string[] = []): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw this.failure(err, phase, what, secrets);
    }
  }

  async verify(): Promise<void> {
    await this.run('verify', 'Checking the admin connection', () =>
      this.withClient(async (client) => {
        await client.query('select 1');
        const { rows } = await client.query<{ rolsuper: boolean; rolcreaterole: boolean }>(
          'select rolsuper, rolcreaterole from pg_roles where rolname = current_user',
        );
        if (!rows[0]?.rolsuper && !rows[0]?.rolcreaterole) {
          throw new CustodyError(
            'EngineInsufficientPrivilege',
            400,
            `Admin user ${JSON.stringify(this.config.username)} may not create roles`,
            `Run ALTER ROLE ${pg.escapeIdentifier(this.config.username)} CREATEROLE as a superuser (it also needs the grant option on what roles will grant).`,
          );
        }
      }),
    );
  }

  prepare(role: PostgresRole, ctx: IssueContext): PreparedCredential {
    const r = roleOrDefault(role);
    let username = generateUsername(r.username_template ?? DEFAULT_USERNAME_TEMPLATE, ctx, PG_MAX_USERNAME);
    // Role names starting with pg_ are reserved by PostgreSQL.
    if (username.startsWith('pg_')) username = `u${username.slice(1)}`;
    return { username, password: generatePassword(32), revocation: { username } };
  }

  async create(
    role: PostgresRole,
    prepared: PreparedCredential,
    ctx: IssueContext,
  ): Promise<IssuedCredential> {
    const wire = await this.wirePassword(prepared.password);
    const statements = render(creationTemplates(roleOrDefault(role)), {
      name: prepared.username,
      password: wire,
      expiration: ctx.expiresAt,
    });
    const secrets = [prepared.password, wire];
    await this.run(
      'runtime',
      'Creating the database role',
      () => this.withClient((c) => this.transaction(c, statements, 'Creating the database role', secrets)),
      secrets,
    );
    const t = this.target;
    const query = t.tls ? '?sslmode=require' : '';
    return {
      username: prepared.username,
      password: prepared.password,
      data: {
        connection_url: `postgres://${encodeURIComponent(prepared.username)}@${t.urlHost}:${t.port}/${encodeURIComponent(t.database)}${query}`,
        database: t.database,
        host: t.host,
        port: String(t.port),
      },
    };
  }

  async renew(role: PostgresRole, revocation: Record<string, unknown>, expiresAt: Date): Promise<void> {
    const { username } = revocationOf(revocation);
    const statements = render(renewTemplates(roleOrDefault(role)), { name: username, expiration: expiresAt });
    await this.run('runtime', 'Renewing the database role', () =>
      this.withClient(async (client) => {
        if (!(await roleExists(client, username))) {
          throw new CustodyError(
            'EngineCredentialNotFound',
            404,
            `Database role ${JSON.stringify(username)} no longer exists`,
            'The credential was removed outside Custody; issue a new one.',
          );
        }
        await this.transaction(client, statements, 'Renewing the database role', []);
      }),
    );
  }

  async revoke(role: PostgresRole | null, revocation: Record<string, unknown>): Promise<void> {
    const { username } = revocationOf(revocation);
    const r = roleOrDefault(role);
    await this.run('runtime', 'Revoking the database role', () =>
      this.withClient(async (client) => {
        // Gone already (revoked before, or never created after a crash): nothing to do.
        if (!(await roleExists(client, username))) return;
        await this.lockOut(client, username);
        const name = pg.escapeIdentifier(username);
        const statements = r.revocation_statements
          ? render(r.revocation_statements, { name: username })
          : [
              `REASSIGN OWNED BY ${name} TO CURRENT_USER`,
              `DROP OWNED BY ${name}`,
              `DROP ROLE IF EXISTS ${name}`,
            ];
        await this.transaction(client, statements, 'Revoking the database role', []);
      }),
    );
  }

  /**
   * Before the revocation statements run: no new logins (committed at once), the admin holds the
   * role's privileges (needed by REASSIGN/DROP OWNED and to end its sessions when not superuser),
   * and every session of the role has ended — a dropped role's open sessions would live on.
   */
  private async lockOut(client: pg.PoolClient, username: string): Promise<void> {
    const name = pg.escapeIdentifier(username);
    const { superuser } = await this.adminInfo(client);
    await client.query(`ALTER ROLE ${name} NOLOGIN`);
    if (!superuser) {
      const { rows } = await client.query<{ m: boolean }>(
        `select pg_has_role(current_user, $1, 'USAGE') as m`,
        [username],
      );
      if (!rows[0]?.m) await client.query(`GRANT ${name} TO CURRENT_USER`);
    }
    await this.terminateSessions(client, username);
  }

  private async terminateSessions(client: pg.PoolClient, username: string): Promise<void> {
    const { version } = await this.adminInfo(client);
    const wait = version >= 140000 ? `, ${TERMINATE_WAIT_MS}` : '';
    await client.query(
      `select pg_terminate_backend(pid${wait}) from pg_stat_activity where usename = $1 and pid <> pg_backend_pid()`,
      [username],
    );
  }

  /**
   * What a PASSWORD clause carries: the SCRAM-SHA-256 verifier (the password never reaches the
   * server's logs), unless the engine is configured with `password_authentication: password`.
   */
  private async wirePassword(password: string): Promise<string> {
    if (this.config.password_authentication === 'password') return password;
    return (await verifierFor(password)) ?? password;
  }

  async setPassword(username: string, password: string): Promise<void> {
    if (typeof username !== 'string' || !username || Buffer.byteLength(username) > PG_MAX_USERNAME) {
      throw new CustodyError(
        'InvalidUsername',
        400,
        'A PostgreSQL user name is 1-63 bytes',
        'Check the static role.',
      );
    }
    if (typeof password !== 'string' || password.length < 16) {
      throw new CustodyError(
        'InvalidPassword',
        400,
        'The new password is too short',
        'Use at least 16 characters.',
      );
    }
    const wire = await this.wirePassword(password);
    await this.run(
      'runtime',
      'Setting the password',
      () =>
        this.withClient(async (client) => {
          if (!(await roleExists(client, username))) {
            throw new CustodyError(
              'EngineUserNotFound',
              404,
              `PostgreSQL role ${JSON.stringify(username)} does not exist`,
              'Create the user first, or fix the static role.',
            );
          }
          await client.query(
            `ALTER ROLE ${pg.escapeIdentifier(username)} WITH PASSWORD ${pg.escapeLiteral(wire)}`,
          );
        }),
      [password, wire],
    );
  }

  async rotateRoot(): Promise<Record<string, unknown>> {
    const oldPassword = this.config.password;
    const newPassword = generatePassword(32);
    const [oldWire, newWire] = await Promise.all([oldPassword, newPassword].map((p) => this.wirePassword(p)));
    const setTo = (p: string) => `ALTER ROLE CURRENT_USER WITH PASSWORD ${pg.escapeLiteral(p)}`;
    const secrets = [oldPassword, newPassword, oldWire, newWire];
    await this.run(
      'runtime',
      'Rotating the admin password',
      () => this.withClient((c) => c.query(setTo(newWire))),
      secrets,
    );
    // Prove the new password works on a fresh connection before forgetting the old one.
    const probe = new pg.Client(this.clientConfig(newPassword));
    probe.on('error', () => {});
    try {
      await probe.connect();
      await probe.query('select 1');
    } catch (err) {
      // Put the old password back (an open pooled session still works) so the stored config stays valid.
      await this.withClient((c) => c.query(setTo(oldWire))).catch(() => {});
      throw this.failure(err, 'runtime', 'Logging in with the rotated admin password', secrets);
    } finally {
      await probe.end().catch(() => {});
    }
    const oldPool = this.pool;
    this.config = { ...this.config, password: newPassword };
    this.pool = this.makePool(newPassword);
    this.admin = undefined;
    await oldPool.end().catch(() => {});
    return { ...this.config };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end().catch(() => {});
  }
}

async function roleExists(client: pg.PoolClient, username: string): Promise<boolean> {
  const { rowCount } = await client.query('select 1 from pg_roles where rolname = $1', [username]);
  return (rowCount ?? 0) > 0;
}

/** Catalog contention between concurrent role changes: safe to retry the whole transaction. */
function isConcurrencyConflict(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  return (
    e?.code === '40001' ||
    e?.code === '40P01' ||
    (e?.code === 'XX000' && /concurrently/.test(e.message ?? ''))
  );
}
