import pg from 'pg';
import { CustodyError } from '../../errors.js';
import type { Engine, IssueContext, IssuedCredential, PreparedCredential } from '../engine.js';
import { generatePassword } from '../password.js';
import { CONNECT_TIMEOUT_MS, QUERY_TIMEOUT_MS, SqlEngine } from '../sql/engine.js';
import { credentialGone, revocationUsername, userNotFound } from '../sql/errors.js';
import { roleOrDefault } from '../sql/statements.js';
import { DEFAULT_USERNAME_TEMPLATE, generateUsername } from '../sql/username.js';
import type { PostgresConfig } from './config.js';
import { isConcurrencyConflict, POSTGRESQL } from './dialect.js';
import { verifierFor } from './scram.js';
import {
  creationTemplates,
  PG_MAX_USERNAME,
  type PostgresRole,
  render,
  renewTemplates,
} from './statements.js';

/** pg_terminate_backend(pid, timeout) waits this long for each session to end (PostgreSQL 14+). */
const TERMINATE_WAIT_MS = 5_000;

const revocationOf = (raw: Record<string, unknown>) =>
  revocationUsername(raw, 'PostgreSQL', (username) => Buffer.byteLength(username) <= PG_MAX_USERNAME);

export class PostgresEngine extends SqlEngine<PostgresConfig, pg.Pool> implements Engine<PostgresRole> {
  readonly type = 'postgresql';
  private admin?: Promise<{ superuser: boolean; version: number }>;

  constructor(config: PostgresConfig) {
    super(config, POSTGRESQL);
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

  protected makePool(password: string): pg.Pool {
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

  protected async probe(password: string): Promise<void> {
    const probe = new pg.Client(this.clientConfig(password));
    probe.on('error', () => {});
    try {
      await probe.connect();
      await probe.query('select 1');
    } finally {
      await probe.end().catch(() => {});
    }
  }

  /** Runs `fn` on one pooled client; a client that saw any error is discarded, not reused. */
  private async withClient<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    this.checkOpen();
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
    return this.issued(prepared);
  }

  async renew(role: PostgresRole, revocation: Record<string, unknown>, expiresAt: Date): Promise<void> {
    const username = revocationOf(revocation);
    const statements = render(renewTemplates(roleOrDefault(role)), { name: username, expiration: expiresAt });
    await this.run('runtime', 'Renewing the database role', () =>
      this.withClient(async (client) => {
        if (!(await roleExists(client, username))) throw credentialGone('Database role', username);
        await this.transaction(client, statements, 'Renewing the database role', []);
      }),
    );
  }

  async revoke(role: PostgresRole | null, revocation: Record<string, unknown>): Promise<void> {
    const username = revocationOf(revocation);
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
          if (!(await roleExists(client, username))) throw userNotFound('PostgreSQL role', username);
          await client.query(
            `ALTER ROLE ${pg.escapeIdentifier(username)} WITH PASSWORD ${pg.escapeLiteral(wire)}`,
          );
        }),
      [password, wire],
    );
  }

  async rotateRoot(newPassword: string): Promise<Record<string, unknown>> {
    const oldPassword = this.config.password;
    const [oldWire, newWire] = await Promise.all([oldPassword, newPassword].map((p) => this.wirePassword(p)));
    const setTo = (p: string) => `ALTER ROLE CURRENT_USER WITH PASSWORD ${pg.escapeLiteral(p)}`;
    const secrets = [oldPassword, newPassword, oldWire, newWire];
    const stored = await this.rotateAdminPassword(newPassword, secrets, (which) =>
      this.withClient((c) => c.query(setTo(which === 'new' ? newWire : oldWire))),
    );
    this.admin = undefined; // the new pool reads the admin's attributes afresh
    return stored;
  }
}

async function roleExists(client: pg.PoolClient, username: string): Promise<boolean> {
  const { rowCount } = await client.query('select 1 from pg_roles where rolname = $1', [username]);
  return (rowCount ?? 0) > 0;
}
