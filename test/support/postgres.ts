import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort, onProcessExit, readFrom } from './process.js';

/**
 * A throwaway PostgreSQL cluster for tests: `initdb` into a fresh temp dir, started on a free loopback
 * port with scram-sha-256 over TCP (so a wrong password really fails), removed again by `stop()` or,
 * if the test process dies first, by an exit hook. As root, the binaries run as the `postgres` user.
 */
export interface PostgresCluster {
  url: string;
  port: number;
  host: string;
  superuser: string;
  password: string;
  dataDir: string;
  /** The server's log file (statements are logged with log_statement=all). */
  logFile: string;
  /** `url` for another database on this cluster. */
  urlFor(database: string): string;
  /** CREATE DATABASE `name` (letters, digits, `_`); returns its URL. */
  createDatabase(name: string): Promise<string>;
  /** Stop the server (immediate) and delete everything. Idempotent. */
  stop(): Promise<void>;
  /** Stop and start again on the same port; data is kept. */
  restart(): Promise<void>;
  /** Stop the server but keep its data (connections fail until `resume()`). */
  pause(): Promise<void>;
  /** Start a paused server again on the same port. */
  resume(): Promise<void>;
}

const HOST = '127.0.0.1';
const SUPERUSER = 'postgres';
const asRoot = process.getuid?.() === 0;
const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C', LC_ALL: 'C' };

interface Live {
  base: string;
  dataDir: string;
  port: number;
  running: boolean;
}
const live = new Set<Live>();

let binDirCache: string | undefined;
function binDir(): string {
  if (binDirCache) return binDirCache;
  const candidates: string[] = [];
  try {
    candidates.push(execFileSync('pg_config', ['--bindir'], { encoding: 'utf8', env }).trim());
  } catch {}
  try {
    const versions = readdirSync('/usr/lib/postgresql').sort((a, b) => Number(b) - Number(a));
    candidates.push(...versions.map((v) => `/usr/lib/postgresql/${v}/bin`));
  } catch {}
  binDirCache = candidates.find((d) => existsSync(join(d, 'initdb')) && existsSync(join(d, 'pg_ctl')));
  if (!binDirCache) throw new Error('PostgreSQL server binaries (initdb, pg_ctl) not found');
  return binDirCache;
}

function command(bin: string, args: string[]): [string, string[]] {
  const path = join(binDir(), bin);
  return asRoot ? ['runuser', ['-u', 'postgres', '--', path, ...args]] : [path, args];
}

function run(bin: string, args: string[], cwd: string): Promise<string> {
  const [file, argv] = command(bin, args);
  return new Promise((resolve, reject) => {
    execFile(file, argv, { cwd, env, timeout: 60_000 }, (err, stdout, stderr) => {
      if (err)
        reject(new Error(`${bin} failed (${err.code ?? err.signal}): ${String(stderr).trim().slice(-2000)}`));
      else resolve(String(stdout));
    });
  });
}

function runSync(bin: string, args: string[], cwd: string): void {
  const [file, argv] = command(bin, args);
  spawnSync(file, argv, { cwd, env, stdio: 'ignore', timeout: 15_000 });
}

function postgresUser(): { uid: number; gid: number } {
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
  return { uid: id('-u'), gid: id('-g') };
}

function cleanupSync(): void {
  for (const c of live) {
    if (c.running) runSync('pg_ctl', ['stop', '-D', c.dataDir, '-m', 'immediate', '-w'], c.base);
    rmSync(c.base, { recursive: true, force: true });
  }
  live.clear();
}

export async function startPostgres(opts: { password?: string } = {}): Promise<PostgresCluster> {
  const password = opts.password ?? randomBytes(18).toString('base64url');
  if (!password || /[\r\n]/.test(password)) throw new Error('The password must be one non-empty line');
  onProcessExit(cleanupSync);
  const base = await mkdtemp(join(tmpdir(), 'custody-pg-'));
  if (/['\s\\]/.test(base)) {
    await rm(base, { recursive: true, force: true });
    throw new Error(`Temp dir path unsuitable for pg_ctl -o: ${base}`);
  }
  const c: Live = { base, dataDir: join(base, 'data'), port: 0, running: false };
  live.add(c);
  const sockDir = join(base, 'sock');
  const logFile = join(base, 'postgres.log');

  const startServer = async (port: number) => {
    const offset = (await stat(logFile)).size;
    const o = `-p ${port} -k '${sockDir}' -c listen_addresses=${HOST} -c fsync=off -c full_page_writes=off -c max_connections=200 -c log_statement=all`;
    try {
      await run('pg_ctl', ['start', '-w', '-t', '30', '-D', c.dataDir, '-l', logFile, '-o', o], base);
      c.running = true;
    } catch (err) {
      const log = (await readFrom(logFile, offset)).trim().slice(-2000);
      const e = new Error(`${(err as Error).message}\n${log}`);
      (e as Error & { portInUse?: boolean }).portInUse =
        /already in use|could not create any TCP\/IP sockets/i.test(log);
      throw e;
    }
  };

  try {
    await mkdir(sockDir, { mode: 0o700 });
    await writeFile(logFile, '', { mode: 0o600 });
    const pwFile = join(base, 'pwfile');
    await writeFile(pwFile, `${password}\n`, { mode: 0o600 });
    if (asRoot) {
      const { uid, gid } = postgresUser();
      for (const p of [base, sockDir, logFile, pwFile]) await chown(p, uid, gid);
    }
    await chmod(base, 0o700);
    try {
      await run(
        'initdb',
        [
          '-D',
          c.dataDir,
          '-U',
          SUPERUSER,
          '--auth-host=scram-sha-256',
          '--auth-local=trust',
          `--pwfile=${pwFile}`,
        ].concat(['-E', 'UTF8', '--locale=C', '--no-sync', '--no-instructions']),
        base,
      );
    } finally {
      await rm(pwFile, { force: true });
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
    if (c.running) await run('pg_ctl', ['stop', '-D', c.dataDir, '-m', 'immediate'], base).catch(() => {});
    await rm(base, { recursive: true, force: true });
    throw err;
  }

  const urlFor = (db: string) =>
    `postgres://${SUPERUSER}:${encodeURIComponent(password)}@${HOST}:${c.port}/${encodeURIComponent(db)}`;
  const stopServer = async (mode: 'fast' | 'immediate') => {
    if (!c.running) return;
    await run('pg_ctl', ['stop', '-w', '-D', c.dataDir, '-m', mode], base);
    c.running = false;
  };
  const cluster: PostgresCluster = {
    url: urlFor('postgres'),
    port: c.port,
    host: HOST,
    superuser: SUPERUSER,
    password,
    dataDir: c.dataDir,
    logFile,
    urlFor,
    async createDatabase(name) {
      if (!/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(name)) throw new Error(`Unsupported database name: ${name}`);
      const client = new pg.Client({ connectionString: cluster.url });
      await client.connect();
      try {
        await client.query(`CREATE DATABASE "${name}"`);
      } finally {
        await client.end();
      }
      return urlFor(name);
    },
    async stop() {
      if (!live.has(c)) return;
      await stopServer('immediate');
      live.delete(c);
      await rm(base, { recursive: true, force: true });
    },
    async pause() {
      if (!live.has(c)) throw new Error('The cluster was stopped');
      await stopServer('fast');
    },
    async resume() {
      if (!live.has(c)) throw new Error('The cluster was stopped');
      if (!c.running) await startServer(c.port);
    },
    async restart() {
      await cluster.pause();
      await cluster.resume();
    },
  };
  // Keep the password out of console.log / assertion output.
  Object.defineProperty(cluster, Symbol.for('nodejs.util.inspect.custom'), {
    value: () => `PostgresCluster { host: '${HOST}', port: ${c.port}, dataDir: '${c.dataDir}' }`,
  });
  return cluster;
}
