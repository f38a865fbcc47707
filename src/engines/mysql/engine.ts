import mysql from 'mysql2/promise';
import { CustodyError } from '../../errors.js';
import type { Engine, IssueContext, IssuedCredential, PreparedCredential } from '../engine.js';
import { generatePassword } from '../password.js';
import { CONNECT_TIMEOUT_MS, QUERY_TIMEOUT_MS, SqlEngine } from '../sql/engine.js';
import { credentialGone, revocationUsername, userNotFound } from '../sql/errors.js';
import { roleOrDefault } from '../sql/statements.js';
import { DEFAULT_USERNAME_TEMPLATE, generateUsername } from '../sql/username.js';
import {
  accountName,
  currentAccount,
  dropEverywhere,
  hostsOf,
  killSessions,
  type Session,
} from './accounts.js';
import type { MysqlConfig } from './config.js';
import { MYSQL } from './dialect.js';
import { creationTemplates, MYSQL_MAX_USERNAME, type MysqlRole, quoteString, render } from './statements.js';

const revocationOf = (raw: Record<string, unknown>) =>
  revocationUsername(raw, 'MySQL', (username) => username.length <= 80);

export class MysqlEngine extends SqlEngine<MysqlConfig, mysql.Pool> implements Engine<MysqlRole> {
  readonly type = 'mysql';

  constructor(config: MysqlConfig) {
    super(config, MYSQL);
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

  protected makePool(password: string): mysql.Pool {
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

  protected async probe(password: string): Promise<void> {
    let probe: mysql.Connection | undefined;
    try {
      probe = await mysql.createConnection(this.connectionOptions(password));
      probe.on('error', () => {});
      await probe.query({ sql: 'SELECT 1', timeout: QUERY_TIMEOUT_MS });
    } finally {
      await probe?.end().catch(() => {});
    }
  }

  /** Runs `fn` on one pooled connection; a connection that saw any error is destroyed, not reused. */
  private async withSession<T>(fn: (s: Session) => Promise<T>): Promise<T> {
    this.checkOpen();
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
      return await fn({ sql, nbe: /NO_BACKSLASH_ESCAPES/i.test(String(mode?.m ?? '')) });
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
            if (progress.done > 0) await dropEverywhere(s, prepared.username).catch(() => {});
            throw err;
          }
        }),
      secrets,
    );
    return this.issued(prepared);
  }

  async renew(role: MysqlRole, revocation: Record<string, unknown>, expiresAt: Date): Promise<void> {
    const username = revocationOf(revocation);
    const r = roleOrDefault(role);
    // No VALID UNTIL in MySQL: the lease's expiry is enforced by revoking it.
    if (!r.renew_statements) return;
    const templates = r.renew_statements;
    await this.run('runtime', 'Renewing the database user', () =>
      this.withSession(async (s) => {
        if ((await hostsOf(s, username)).length === 0) throw credentialGone('Database user', username);
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
    const username = revocationOf(revocation);
    const r = roleOrDefault(role);
    await this.run('runtime', 'Revoking the database user', () =>
      this.withSession(async (s) => {
        const hosts = await hostsOf(s, username);
        if (hosts.length > 0) {
          // No new logins, then end the open sessions (a dropped user's sessions would live on).
          for (const host of hosts) {
            await s.sql(`ALTER USER ${accountName(s, username, host)} ACCOUNT LOCK`).catch(() => {});
          }
          await killSessions(s, username);
          if (r.revocation_statements) {
            await this.runStatements(
              s,
              render(r.revocation_statements, { name: username }, s.nbe),
              'Revoking the database user',
              [],
            );
          } else {
            await dropEverywhere(s, username, hosts);
          }
        }
        // Also after a revoke that failed midway, or a user dropped outside Custody.
        await killSessions(s, username);
      }),
    );
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
          const hosts = await hostsOf(s, username);
          if (hosts.length === 0) throw userNotFound('MySQL user', username);
          for (const host of hosts) {
            await s.sql(
              `ALTER USER ${accountName(s, username, host)} IDENTIFIED BY ${quoteString(password, s.nbe)}`,
            );
          }
        }),
      [password],
    );
  }

  async rotateRoot(newPassword: string): Promise<Record<string, unknown>> {
    const oldPassword = this.config.password;
    // The account by name: MariaDB 10.11 accepts `ALTER USER CURRENT_USER() IDENTIFIED BY …` and
    // silently changes nothing.
    const setTo = (p: string) =>
      this.withSession(async (s) => {
        const { user, host } = await currentAccount(s);
        await s.sql(`ALTER USER ${accountName(s, user, host)} IDENTIFIED BY ${quoteString(p, s.nbe)}`);
      });
    return this.rotateAdminPassword(newPassword, [oldPassword, newPassword], (which) =>
      setTo(which === 'new' ? newPassword : oldPassword),
    );
  }
}
