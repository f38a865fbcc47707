import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { chmod, chown, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { freePort, onProcessExit, readFrom } from './process.js';

/**
 * A throwaway MariaDB server for tests (Debian's `mariadb-server` package): `mariadb-install-db`
 * into a fresh temp dir, `mariadbd` on a free loopback port, removed again by `stop()` or, if the
 * test process dies first, by an exit hook. Every account has a password (root, and an admin
 * `custody_admin@'%'` with ALL PRIVILEGES … WITH GRANT OPTION), so a wrong password really fails.
 * As root, the server runs as the `mysql` system user on a temp dir it owns.
 */
export interface MariadbServer {
  host: string;
  port: number;
  /** `mysql://root:…@127.0.0.1:port/` */
  url: string;
  rootUser: string;
  rootPassword: string;
  /** An account like the one an operator gives Custody: `custody_admin@'%'`, ALL PRIVILEGES WITH GRANT OPTION. */
  adminUser: string;
  adminPassword: string;
  dataDir: string;
  /** Runs SQL as root over TCP (several statements allowed; `?` placeholders filled client-side). */
  query<T = any>(sql: string, params?: unknown[]): Promise<T[]>;
  /** CREATE DATABASE `name` (letters, digits, `_`). */
  createDatabase(name: string): Promise<void>;
  /** Kill the server and delete everything. Idempotent. */
  stop(): Promise<void>;
  /** Shut the server down but keep its data (connections fail until `resume()`). */
  pause(): Promise<void>;
  /** Start a paused server again on the same port. */
  resume(): Promise<void>;
  restart(): Promise<void>;
}

const HOST = '127.0.0.1';
const ROOT = 'root';
const ADMIN = 'custody_admin';
const asRoot = process.getuid?.() === 0;
const env = { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C', LC_ALL: 'C' };

interface Live {
  base: string;
  port: number;
  child?: ChildProcess;
  exited?: Promise<void>;
}
const live = new Set<Live>();

function findBinary(names: string[]): string {
  const dirs = [
    '/usr/sbin',
    '/usr/bin',
    '/usr/local/sbin',
    '/usr/local/bin',
    ...(process.env.PATH ?? '').split(':'),
  ];
  for (const name of names) {
    for (const dir of dirs) {
      if (dir && existsSync(join(dir, name))) return join(dir, name);
    }
  }
  throw new Error(
    `MariaDB server binaries (${names.join(' or ')}) not found: apt-get install -y mariadb-server`,
  );
}
let bins: { server: string; installDb: string } | undefined;
const binaries = () =>
  (bins ??= {
    server: findBinary(['mariadbd', 'mysqld']),
    installDb: findBinary(['mariadb-install-db', 'mysql_install_db']),
  });

function mysqlUser(): { uid: number; gid: number } {
  const id = (flag: string) => Number(execFileSync('id', [flag, 'mysql'], { encoding: 'utf8' }).trim());
  return { uid: id('-u'), gid: id('-g') };
}

function cleanupSync(): void {
  for (const c of live) {
    if (c.child?.pid && c.child.exitCode === null && c.child.signalCode === null) {
      try {
        process.kill(c.child.pid, 'SIGKILL');
      } catch {}
    }
    rmSync(c.base, { recursive: true, force: true });
  }
  live.clear();
}

const sqlString = (s: string) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Options both for the bootstrap (`mariadb-install-db` passes them on) and the server: small and fast. */
const SERVER_TUNING = [
  '--innodb-log-file-size=8M',
  '--innodb-buffer-pool-size=32M',
  '--innodb-flush-log-at-trx-commit=2',
  '--skip-name-resolve',
];

export async function startMariadb(): Promise<MariadbServer> {
  const { server, installDb } = binaries();
  const rootPassword = randomBytes(18).toString('base64url');
  const adminPassword = randomBytes(18).toString('base64url');
  onProcessExit(cleanupSync);
  const base = await mkdtemp(join(tmpdir(), 'custody-mariadb-'));
  const c: Live = { base, port: 0 };
  live.add(c);
  const dataDir = join(base, 'data');
  const socket = join(base, 'mariadb.sock');
  const logFile = join(base, 'mariadb.log');
  const userArgs = asRoot ? ['--user=mysql'] : [];

  const startServer = async (port: number) => {
    const offset = (await stat(logFile).catch(() => ({ size: 0 }))).size;
    const child = spawn(
      server,
      [
        '--no-defaults',
        `--datadir=${dataDir}`,
        `--socket=${socket}`,
        `--port=${port}`,
        `--bind-address=${HOST}`,
        `--pid-file=${join(base, 'mariadb.pid')}`,
        `--log-error=${logFile}`,
        '--skip-log-bin',
        '--max-connections=200',
        '--character-set-server=utf8mb4',
        ...SERVER_TUNING,
        ...userArgs,
      ],
      { cwd: base, env, stdio: 'ignore', detached: true },
    );
    child.unref();
    c.child = child;
    c.exited = new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.once('error', () => resolve());
    });
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) {
        if (child.exitCode === null) child.kill('SIGKILL');
        await c.exited;
        const log = (await readFrom(logFile, offset)).trim().slice(-2000);
        const e = new Error(`mariadbd did not start (exit ${child.exitCode ?? child.signalCode}):\n${log}`);
        (e as Error & { portInUse?: boolean }).portInUse =
          /Address already in use|Bind on TCP\/IP port/i.test(log);
        throw e;
      }
      const conn = await mysql
        .createConnection({ host: HOST, port, user: ADMIN, password: adminPassword, connectTimeout: 2000 })
        .catch(() => null);
      if (conn) {
        await conn.end().catch(() => {});
        return;
      }
      await sleep(100);
    }
  };

  try {
    if (asRoot) {
      const { uid, gid } = mysqlUser();
      await chown(base, uid, gid);
    }
    await chmod(base, 0o700);
    await writeFile(logFile, '', { mode: 0o600 });
    // Accounts are set up during the bootstrap, so no moment exists when root has no password.
    const initFile = join(base, 'init.sql');
    await writeFile(
      initFile,
      [
        'FLUSH PRIVILEGES;',
        `DELETE FROM mysql.global_priv WHERE User = '' OR (User = 'root' AND Host <> 'localhost');`,
        `DELETE FROM mysql.proxies_priv WHERE User = 'root' AND Host <> 'localhost';`,
        'FLUSH PRIVILEGES;',
        `ALTER USER 'root'@'localhost' IDENTIFIED BY ${sqlString(rootPassword)};`,
        `CREATE USER 'root'@'${HOST}' IDENTIFIED BY ${sqlString(rootPassword)};`,
        `GRANT ALL PRIVILEGES ON *.* TO 'root'@'${HOST}' WITH GRANT OPTION;`,
        `CREATE USER '${ADMIN}'@'%' IDENTIFIED BY ${sqlString(adminPassword)};`,
        `GRANT ALL PRIVILEGES ON *.* TO '${ADMIN}'@'%' WITH GRANT OPTION;`,
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    if (asRoot) {
      const { uid, gid } = mysqlUser();
      for (const p of [logFile, initFile]) await chown(p, uid, gid);
    }
    try {
      await new Promise<void>((resolve, reject) => {
        execFile(
          installDb,
          [
            '--no-defaults',
            `--datadir=${dataDir}`,
            '--auth-root-authentication-method=normal',
            '--skip-test-db',
            `--extra-file=${initFile}`,
            ...SERVER_TUNING,
            ...userArgs,
          ],
          { cwd: base, env, timeout: 120_000 },
          (err, stdout, stderr) => {
            if (err) {
              const out = `${String(stdout)}\n${String(stderr)}`
                .split(rootPassword)
                .join('***')
                .split(adminPassword)
                .join('***');
              reject(
                new Error(
                  `mariadb-install-db failed (${err.code ?? err.signal}): ${out.trim().slice(-2000)}`,
                ),
              );
            } else resolve();
          },
        );
      });
    } finally {
      await rm(initFile, { force: true });
    }
    for (let attempt = 1; ; attempt++) {
      c.port = await freePort([...live].map((x) => x.port));
      try {
        await startServer(c.port);
        break;
      } catch (err) {
        if (!(err as { portInUse?: boolean }).portInUse || attempt >= 5) throw err;
      }
    }
  } catch (err) {
    live.delete(c);
    if (c.child && c.child.exitCode === null) {
      c.child.kill('SIGKILL');
      await c.exited;
    }
    await rm(base, { recursive: true, force: true });
    throw err;
  }

  const running = () => !!c.child && c.child.exitCode === null && c.child.signalCode === null;
  const stopServer = async (signal: NodeJS.Signals) => {
    if (!running()) return;
    c.child!.kill(signal);
    let timer: NodeJS.Timeout | undefined;
    const done = await Promise.race([
      c.exited!.then(() => true),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), 30_000);
      }),
    ]);
    clearTimeout(timer);
    if (!done) {
      c.child!.kill('SIGKILL');
      await c.exited;
    }
  };
  const connect = (opts: mysql.ConnectionOptions = {}) =>
    mysql.createConnection({
      host: HOST,
      port: c.port,
      user: ROOT,
      password: rootPassword,
      connectTimeout: 5000,
      multipleStatements: true,
      ...opts,
    });

  const db: MariadbServer = {
    host: HOST,
    port: c.port,
    url: `mysql://${ROOT}:${encodeURIComponent(rootPassword)}@${HOST}:${c.port}/`,
    rootUser: ROOT,
    rootPassword,
    adminUser: ADMIN,
    adminPassword,
    dataDir,
    async query<T = any>(sql: string, params: unknown[] = []): Promise<T[]> {
      const conn = await connect();
      try {
        const [rows] = await conn.query(sql, params);
        return rows as T[];
      } finally {
        await conn.end().catch(() => {});
      }
    },
    async createDatabase(name) {
      if (!/^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(name)) throw new Error(`Unsupported database name: ${name}`);
      await db.query(`CREATE DATABASE \`${name}\``);
    },
    async stop() {
      if (!live.has(c)) return;
      await stopServer('SIGKILL');
      live.delete(c);
      await rm(base, { recursive: true, force: true });
    },
    async pause() {
      if (!live.has(c)) throw new Error('The server was stopped');
      await stopServer('SIGTERM');
    },
    async resume() {
      if (!live.has(c)) throw new Error('The server was stopped');
      if (!running()) await startServer(c.port);
    },
    async restart() {
      await db.pause();
      await db.resume();
    },
  };
  // Keep the passwords out of console.log / assertion output.
  Object.defineProperty(db, Symbol.for('nodejs.util.inspect.custom'), {
    value: () => `MariadbServer { host: '${HOST}', port: ${c.port}, dataDir: '${dataDir}' }`,
  });
  return db;
}
