import mysql from 'mysql2/promise';
import { CustodyError } from '../../errors.js';
import type { Engine, IssueContext, IssuedCredential, PreparedCredential } from '../engine.js';
import { generatePassword } from '../password.js';
import { isNetworkError, type Phase, scrubMessage, statusFor } from '../postgresql/common.js';
import { DEFAULT_USERNAME_TEMPLATE, generateUsername } from '../postgresql/username.js';
import { type MysqlConfig, type MysqlTarget, parseTarget } from './config.js';
import {
  creationTemplates,
  MYSQL_MAX_USERNAME,
  type MysqlRole,
  quoteString,
  render,
  roleOrDefault,
} from './statements.js';

/** How long to wait for a connection (TCP + auth), and for any one query, before giving up. */
export const CONNECT_TIMEOUT_MS = 5_000;
export const QUERY_TIMEOUT_MS = 30_000;

const ACCESS_DENIED = new Set([
  'ER_DBACCESS_DENIED_ERROR',
  'ER_TABLEACCESS_DENIED_ERROR',
  'ER_COLUMNACCESS_DENIED_ERROR',
  'ER_SPECIFIC_ACCESS_DENIED_ERROR',
  'ER_KILL_DENIED_ERROR',
  'ER_CANT_CREATE_USER_WITH_GRANT',
  'ER_PROCACCESS_DENIED_ERROR',
]);
const ER_NO_SUCH_THREAD = 1094;

type Conn = mysql.PoolConnection;

interface Session {
  conn: Conn;
  /** The session's sql_mode has NO_BACKSLASH_ESCAPES (decides how string literals are quoted). */
  nbe: boolean;
  sql(sql: string, params?: string[]): Promise<any[]>;
}

function revocationOf(raw: Record<string, unknown>): { username: string } {
  const username = raw?.username;
  if (typeof username !== 'string' || username.length === 0 || username.length > 80) {
    throw new CustodyError(
      'InvalidRevocationData',
      400,
      'The lease has no valid MySQL user name to revoke',
      'The lease record is damaged; remove the user by hand and force-revoke the lease.',
    );
  }
  return { username };
}

export class MysqlEngine implements Engine<MysqlRole> {
  readonly type = 'mysql';
  private config: MysqlConfig;
  private readonly target: MysqlTarget;
  private pool: mysql.Pool;
  private closed = false;

  constructor(config: MysqlConfig) {
    this.config = { ...config };
    this.target = parseTarget(config.connection_url);
    this.pool = this.makePool(config.password);
  }

  private connectionOptions(password: string): mysql.ConnectionOptions {
    const t = this.target;
    return {
      host: t.host,
      port: t.port,
      user: this.config.username,
      password,
      ...(t.database ? { database: t.database } : {}),
      ...(t.tls ? { ssl: { rejectUnauthorized: this.config.verify_tls } } : {}),
      connectTimeout: CONNECT_TIMEOUT_MS,
      multipleStatements: false,
      charset: 'utf8mb4',
    };
  }

  private makePool(password: string): mysql.Pool {
    const pool = mysql.createPool({
      ...this.connectionOptions(password),
      connectionLimit: this.config.max_connections,
      maxIdle: this.config.max_connections,
      idleTimeout: 10_000,
      waitForConnections: true,
      queueLimit: 0,
      enableKeepAlive: true,
    });
    // A pooled connection that dies (server restart, network) must not crash the broker.
    pool.pool.on('connection', (conn) => conn.on('error', () => {}));
    return pool;
  }

  /** Runs `fn` on one pooled connection; a connection that saw any error is destroyed, not reused. */
  private async withSession<T>(fn: (s: Session) => Promise<T>): Promise<T> {
    if (this.closed)
      throw new CustodyError('EngineClosed', 503, 'The engine was closed', 'Retry the request.');
    const conn = await this.pool.getConnection();
    let failed = false;
    try {
      // Values travel as parameters of server-side prepared statements, never spliced into SQL
      // text by the client (whose escaping assumes backslash escapes, wrong under NO_BACKSLASH_ESCAPES).
      const sql = async (text: string, params?: string[]) => {
        const [rows] = params
          ? await conn.execute({ sql: text, timeout: QUERY_TIMEOUT_MS }, params)
          : await conn.query({ sql: text, timeout: QUERY_TIMEOUT_MS });
        return rows as any[];
      };
      const [mode] = await sql('SELECT @@SESSION.sql_mode AS m');
      return await fn({ conn, sql, nbe: /NO_BACKSLASH_ESCAPES/i.test(String(mode?.m ?? '')) });
    } catch (err) {
      failed = true;
      throw err;
    } finally {
      if (failed) conn.destroy();
      else conn.release();
    }
  }

  /** Runs statements in order on one connection (DDL commits implicitly in MySQL: no transaction). */
  private async runStatements(
    s: Session,
    statements: string[],
    what: string,
    secrets: string[],
    progress: { done: number } = { done: 0 },
  ) {
    for (const [i, text] of statements.entries()) {
      try {
        await s.sql(text);
        progress.done++;
      } catch (err) {
        throw this.failure(err, 'runtime', `${what} (statement ${i + 1} of ${statements.length})`, secrets);
      }
    }
  }

  /** Any backend error as a CustodyError whose message holds no secret. */
  private failure(err: unknown, phase: Phase, what: string, secrets: string[] = []): CustodyError {
    if (err instanceof CustodyError) return err;
    const e = err as {
      code?: string;
      errno?: number;
      sqlState?: string;
      sqlMessage?: string;
      message?: string;
    };
    const where = `MySQL at ${this.target.urlHost}:${this.target.port}`;
    const scrub = (m: unknown) => scrubMessage(m, [this.config.password, ...secrets]);
    const text = scrub(e?.sqlMessage ?? e?.message);
    if (e?.code === 'ER_ACCESS_DENIED_ERROR' || e?.code === 'ER_ACCESS_DENIED_NO_PASSWORD_ERROR') {
      return new CustodyError(
        'EngineAuthenticationFailed',
        statusFor(phase, 502),
        `${where} refused the login of admin user ${JSON.stringify(this.config.username)}`,
        'Check username and password, and that the user may connect from the broker host.',
      );
    }
    if (e?.code === 'ER_BAD_DB_ERROR') {
      return new CustodyError(
        'EngineUnreachable',
        statusFor(phase, 502),
        `${where} has no database ${JSON.stringify(this.target.database)}`,
        'Fix the database name at the end of connection_url.',
      );
    }
    if (e?.code && ACCESS_DENIED.has(e.code)) {
      return new CustodyError(
        'EngineInsufficientPrivilege',
        statusFor(phase, 502),
        `${what}: the admin user lacks a privilege: ${text}`,
        'The admin user needs CREATE USER, PROCESS, CONNECTION ADMIN (or SUPER) and the grant option on what roles grant.',
      );
    }
    if (typeof e?.errno === 'number' && e.sqlState) {
      return new CustodyError(
        'EngineStatementFailed',
        statusFor(phase, 502),
        `${what} failed on ${where}: ${text} (error ${e.errno})`,
        'Check the role statements and grants against the database.',
      );
    }
    if (isNetworkError(err)) {
      return new CustodyError(
        'EngineUnreachable',
        statusFor(phase, 503),
        `Could not reach ${where}${e?.code ? ` (${e.code})` : ''}: ${text}`,
        'Check the host, port and TLS settings in connection_url, and that the server is up and reachable from the broker.',
      );
    }
    return new CustodyError(
      'EngineError',
      statusFor(phase, 502),
      `${what} failed on ${where}: ${text}`,
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
      this.withSession(async (s) => {
        const { user, host } = await currentAccount(s);
        const grantee = `'${user}'@'${host}'`;
        const rows = await s.sql(
          'SELECT PRIVILEGE_TYPE AS p FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = ?',
          [grantee],
        );
        const have = new Set(rows.map((r) => String(r.p).toUpperCase()));
        const missing = ['CREATE USER', 'PROCESS'].filter((p) => !have.has(p));
        if (missing.length > 0) {
          throw new CustodyError(
            'EngineInsufficientPrivilege',
            400,
            `Admin user ${JSON.stringify(this.config.username)} lacks ${missing.join(' and ')} (needed to create users and end the sessions of revoked ones)`,
            `As root: GRANT CREATE USER, PROCESS, CONNECTION ADMIN ON *.* TO ${mysql.escape(user)}@${mysql.escape(host)}; plus the privileges roles grant, WITH GRANT OPTION.`,
          );
        }
      }),
    );
  }

  prepare(role: MysqlRole, ctx: IssueContext): PreparedCredential {
    const r = roleOrDefault(role);
    const username = generateUsername(
      r.username_template ?? DEFAULT_USERNAME_TEMPLATE,
      ctx,
      MYSQL_MAX_USERNAME,
    );
    return { username, password: generatePassword(32), revocation: { username } };
  }

  async create(role: MysqlRole, prepared: PreparedCredential, ctx: IssueContext): Promise<IssuedCredential> {
    const templates = creationTemplates(roleOrDefault(role));
    const secrets = [prepared.password];
    await this.run(
      'runtime',
      'Creating the database user',
      () =>
        this.withSession(async (s) => {
          const statements = render(
            templates,
            { name: prepared.username, password: prepared.password, expiration: ctx.expiresAt },
            s.nbe,
          );
          const progress = { done: 0 };
          try {
            await this.runStatements(s, statements, 'Creating the database user', secrets, progress);
          } catch (err) {
            // No transactions for DDL: undo what the first statements made (but never touch a user
            // that the first statement failed to create, e.g. because it already existed).
            if (progress.done > 0) await this.dropEverywhere(s, prepared.username).catch(() => {});
            throw err;
          }
        }),
      secrets,
    );
    const t = this.target;
    const query = t.tls ? '?ssl-mode=required' : '';
    return {
      username: prepared.username,
      password: prepared.password,
      data: {
        connection_url: `mysql://${encodeURIComponent(prepared.username)}@${t.urlHost}:${t.port}/${encodeURIComponent(t.database)}${query}`,
        database: t.database,
        host: t.host,
        port: String(t.port),
      },
    };
  }

  async renew(role: MysqlRole, revocation: Record<string, unknown>, expiresAt: Date): Promise<void> {
    const { username } = revocationOf(revocation);
    const r = roleOrDefault(role);
    // No VALID UNTIL in MySQL: the lease's expiry is enforced by revoking it.
    if (!r.renew_statements) return;
    const templates = r.renew_statements;
    await this.run('runtime', 'Renewing the database user', () =>
      this.withSession(async (s) => {
        if ((await this.hostsOf(s, username)).length === 0) {
          throw new CustodyError(
            'EngineCredentialNotFound',
            404,
            `Database user ${JSON.stringify(username)} no longer exists`,
            'The credential was removed outside Custody; issue a new one.',
          );
        }
        await this.runStatements(
          s,
          render(templates, { name: username, expiration: expiresAt }, s.nbe),
          'Renewing the database user',
          [],
        );
      }),
    );
  }

  async revoke(role: MysqlRole | null, revocation: Record<string, unknown>): Promise<void> {
    const { username } = revocationOf(revocation);
    const r = roleOrDefault(role);
    await this.run('runtime', 'Revoking the database user', () =>
      this.withSession(async (s) => {
        const hosts = await this.hostsOf(s, username);
        if (hosts.length > 0) {
          // No new logins, then end the open sessions (a dropped user's sessions would live on).
          for (const host of hosts) {
            await s
              .sql(`ALTER USER ${quoteString(username, s.nbe)}@${quoteString(host, s.nbe)} ACCOUNT LOCK`)
              .catch(() => {});
          }
          await this.killSessions(s, username);
          if (r.revocation_statements) {
            await this.runStatements(
              s,
              render(r.revocation_statements, { name: username }, s.nbe),
              'Revoking the database user',
              [],
            );
          } else {
            await this.dropEverywhere(s, username, hosts);
          }
        }
        // Also after a revoke that failed midway, or a user dropped outside Custody.
        await this.killSessions(s, username);
      }),
    );
  }

  /**
   * The hosts `username` exists for (usually just '%'). An admin without SELECT on mysql.user
   * cannot tell: then assume '%' (the default statements use IF EXISTS, so that stays idempotent).
   */
  private async hostsOf(s: Session, username: string): Promise<string[]> {
    try {
      const rows = await s.sql('SELECT Host AS h FROM mysql.user WHERE User = ?', [username]);
      return rows.map((r) => String(r.h));
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'ER_TABLEACCESS_DENIED_ERROR' || code === 'ER_DBACCESS_DENIED_ERROR') return ['%'];
      throw err;
    }
  }

  private async dropEverywhere(s: Session, username: string, hosts?: string[]): Promise<void> {
    for (const host of hosts ?? (await this.hostsOf(s, username))) {
      await s.sql(`DROP USER IF EXISTS ${quoteString(username, s.nbe)}@${quoteString(host, s.nbe)}`);
    }
  }

  private async killSessions(s: Session, username: string): Promise<void> {
    const rows = await s.sql(
      'SELECT ID AS id FROM information_schema.PROCESSLIST WHERE USER = ? AND ID <> CONNECTION_ID()',
      [username],
    );
    for (const { id } of rows) {
      try {
        await s.sql(`KILL CONNECTION ${Number(id)}`);
      } catch (err) {
        if ((err as { errno?: number }).errno !== ER_NO_SUCH_THREAD) throw err;
      }
    }
  }

  async setPassword(username: string, password: string): Promise<void> {
    if (typeof username !== 'string' || !username || username.length > 80) {
      throw new CustodyError(
        'InvalidUsername',
        400,
        'A MySQL user name is 1-80 characters',
        'Check the static role.',
      );
    }
    // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
    if (typeof password !== 'string' || password.length < 16 || /[\u0000-\u001f]/.test(password)) {
      throw new CustodyError(
        'InvalidPassword',
        400,
        'The new password is too short or has control characters',
        'Use at least 16 printable characters.',
      );
    }
    await this.run(
      'runtime',
      'Setting the password',
      () =>
        this.withSession(async (s) => {
          const hosts = await this.hostsOf(s, username);
          if (hosts.length === 0) {
            throw new CustodyError(
              'EngineUserNotFound',
              404,
              `MySQL user ${JSON.stringify(username)} does not exist`,
              'Create the user first, or fix the static role.',
            );
          }
          for (const host of hosts) {
            await s.sql(
              `ALTER USER ${quoteString(username, s.nbe)}@${quoteString(host, s.nbe)} IDENTIFIED BY ${quoteString(password, s.nbe)}`,
            );
          }
        }),
      [password],
    );
  }

  async rotateRoot(): Promise<Record<string, unknown>> {
    const oldPassword = this.config.password;
    const newPassword = generatePassword(32);
    const secrets = [oldPassword, newPassword];
    // The account by name: MariaDB 10.11 accepts `ALTER USER CURRENT_USER() IDENTIFIED BY …` and
    // silently changes nothing.
    const setTo = (p: string) =>
      this.withSession(async (s) => {
        const { user, host } = await currentAccount(s);
        await s.sql(
          `ALTER USER ${quoteString(user, s.nbe)}@${quoteString(host, s.nbe)} IDENTIFIED BY ${quoteString(p, s.nbe)}`,
        );
      });
    await this.run('runtime', 'Rotating the admin password', () => setTo(newPassword), secrets);
    // Prove the new password works on a fresh connection before forgetting the old one.
    let probe: mysql.Connection | undefined;
    try {
      probe = await mysql.createConnection(this.connectionOptions(newPassword));
      probe.on('error', () => {});
      await probe.query({ sql: 'SELECT 1', timeout: QUERY_TIMEOUT_MS });
    } catch (err) {
      // Put the old password back (an open pooled session still works) so the stored config stays valid.
      await setTo(oldPassword).catch(() => {});
      throw this.failure(err, 'runtime', 'Logging in with the rotated admin password', secrets);
    } finally {
      await probe?.end().catch(() => {});
    }
    const oldPool = this.pool;
    this.config = { ...this.config, password: newPassword };
    this.pool = this.makePool(newPassword);
    await oldPool.end().catch(() => {});
    return { ...this.config };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end().catch(() => {});
  }
}

/** The account the session authenticated as (`CURRENT_USER()` is `user@host`). */
async function currentAccount(s: Session): Promise<{ user: string; host: string }> {
  const [row] = await s.sql('SELECT CURRENT_USER() AS u');
  const current = String(row?.u ?? '');
  const at = current.lastIndexOf('@');
  return { user: current.slice(0, at), host: current.slice(at + 1) };
}
