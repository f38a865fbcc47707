import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { mkdir, mkdtemp, open, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, type Dispatcher, request } from 'undici';
import { freePort, onProcessExit, readFrom } from './process.js';
import { ensureVenv } from './python-venv.js';

/**
 * A real MLflow tracking server with its basic-auth app, for tests: `mlflow server --app-name
 * basic-auth` from the test venv on a free loopback port, with a temp SQLite backend store, auth
 * database and artifact directory, `default_permission = NO_PERMISSIONS` and a random admin
 * password. `stop()` kills its process group and removes the temp dir; an exit hook does the same
 * if the test process dies first.
 */
export interface MlflowServer {
  /** `http://127.0.0.1:<port>` (or `https://` with `tls`). */
  url: string;
  port: number;
  adminUser: string;
  adminPassword: string;
  /** The temp dir with the stores, the auth config and `mlflow.log`. */
  dataDir: string;
  logFile: string;
  /** The CA to trust for an https server. */
  caPem?: string;
  /** Kill the server and delete everything. Idempotent. */
  stop(): Promise<void>;
  /** Kill the server but keep its data: connections are refused until `resume()`. */
  pause(): Promise<void>;
  /** Start a paused server again on the same port with the same data. */
  resume(): Promise<void>;
}

export interface MlflowOptions {
  /** Serve https with this certificate (the key stays in the temp dir, mode 0600). */
  tls?: { certPem: string; keyPem: string; caPem: string };
  defaultPermission?: 'READ' | 'EDIT' | 'MANAGE' | 'NO_PERMISSIONS';
}

const HOST = '127.0.0.1';
const ADMIN = 'admin';
const START_TIMEOUT_MS = 120_000;
const STOP_GRACE_MS = 1_000;

interface Live {
  base: string;
  port: number;
  proc: ChildProcess | null;
}
const live = new Set<Live>();

function killGroup(proc: ChildProcess | null, signal: NodeJS.Signals): void {
  if (!proc?.pid) return;
  try {
    process.kill(-proc.pid, signal);
  } catch {}
}
function cleanupSync(): void {
  for (const s of live) {
    killGroup(s.proc, 'SIGKILL');
    rmSync(s.base, { recursive: true, force: true });
  }
  live.clear();
}

function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

export interface MlflowResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: any;
}

/**
 * One REST call to an MLflow server (for tests): `path` is under `/api/` (e.g.
 * `2.0/mlflow/experiments/get`), `auth` is Basic credentials, `body` is sent as JSON.
 */
export async function mlflowRequest(
  server: { url: string; caPem?: string },
  path: string,
  opts: {
    method?: Dispatcher.HttpMethod;
    query?: Record<string, string>;
    body?: unknown;
    auth?: { username: string; password: string };
  } = {},
): Promise<MlflowResponse> {
  const url = new URL(`${server.url}/api/${path}`);
  for (const [k, v] of Object.entries(opts.query ?? {})) url.searchParams.set(k, v);
  const headers: Record<string, string> = { accept: 'application/json' };
  if (opts.auth) {
    const token = Buffer.from(`${opts.auth.username}:${opts.auth.password}`).toString('base64');
    headers.authorization = `Basic ${token}`;
  }
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  const dispatcher = server.caPem ? new Agent({ connect: { ca: server.caPem } }) : undefined;
  try {
    const res = await request(url, {
      method: opts.method ?? (opts.body === undefined ? 'GET' : 'POST'),
      headers,
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      dispatcher,
      signal: AbortSignal.timeout(30_000),
    });
    const text = await res.body.text();
    let json: any;
    try {
      json = JSON.parse(text);
    } catch {}
    return { status: res.statusCode, headers: res.headers, text, json };
  } finally {
    await dispatcher?.close();
  }
}

export async function startMlflow(opts: MlflowOptions = {}): Promise<MlflowServer> {
  const venv = await ensureVenv();
  onProcessExit(cleanupSync);
  const started = performance.now();
  const adminPassword = randomBytes(18).toString('base64url');
  const base = await mkdtemp(join(tmpdir(), 'custody-mlflow-'));
  const s: Live = { base, port: 0, proc: null };
  live.add(s);
  const logFile = join(base, 'mlflow.log');
  const scheme = opts.tls ? 'https' : 'http';

  // The admin password goes to the server by environment only (never into a file); MLflow reads
  // it once, to create the admin user in an empty auth database.
  const authIni = join(base, 'basic_auth.ini');
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^(MLFLOW_|CUSTODY_)/.test(k)) env[k] = v;
  Object.assign(env, {
    MLFLOW_AUTH_CONFIG_PATH: authIni,
    MLFLOW_AUTH_ADMIN_USERNAME: ADMIN,
    MLFLOW_AUTH_ADMIN_PASSWORD: adminPassword,
    MLFLOW_FLASK_SERVER_SECRET_KEY: randomBytes(24).toString('hex'),
    // No background job runner (seven huey consumers) and no telemetry: keep it light and offline.
    MLFLOW_SERVER_ENABLE_JOB_EXECUTION: 'false',
    MLFLOW_DISABLE_TELEMETRY: 'true',
    DO_NOT_TRACK: 'true',
    PYTHONUNBUFFERED: '1',
    PYTHONNOUSERSITE: '1',
  });

  const args = (port: number) => {
    const a = [
      'server',
      '--app-name',
      'basic-auth',
      '--host',
      HOST,
      '--port',
      String(port),
      '--workers',
      '1',
      '--backend-store-uri',
      `sqlite:///${join(base, 'mlflow.db')}`,
      '--artifacts-destination',
      join(base, 'artifacts'),
    ];
    if (opts.tls) {
      a.push(
        '--uvicorn-opts',
        `--ssl-keyfile ${join(base, 'tls-key.pem')} --ssl-certfile ${join(base, 'tls.pem')}`,
      );
    }
    return a;
  };

  const ready = async (proc: ChildProcess, port: number, offset: number) => {
    const deadline = Date.now() + START_TIMEOUT_MS;
    const server = { url: `${scheme}://${HOST}:${port}`, caPem: opts.tls?.caPem };
    for (;;) {
      if (proc.exitCode !== null || proc.signalCode !== null) {
        const log = (await readFrom(logFile, offset)).trim().slice(-3000);
        const e = new Error(`mlflow server exited (${proc.exitCode ?? proc.signalCode}):\n${log}`);
        (e as Error & { portInUse?: boolean }).portInUse = /address already in use/i.test(log);
        throw e;
      }
      const res = await mlflowRequest(server, '2.0/mlflow/users/get', {
        query: { username: ADMIN },
        auth: { username: ADMIN, password: adminPassword },
      }).catch(() => null);
      if (res?.status === 200) return;
      if (res && res.status !== 503 && res.status !== 502) {
        throw new Error(`mlflow server answered ${res.status} to the admin: ${res.text.slice(0, 300)}`);
      }
      if (Date.now() > deadline) {
        const log = (await readFrom(logFile, offset)).trim().slice(-3000);
        throw new Error(`mlflow server did not answer within ${START_TIMEOUT_MS} ms:\n${log}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  };

  const launch = async (port: number) => {
    const offset = (await stat(logFile)).size;
    const out = await open(logFile, 'a');
    try {
      const proc = spawn(join(venv.bin, 'mlflow'), args(port), {
        cwd: base,
        env,
        detached: true,
        stdio: ['ignore', out.fd, out.fd],
      });
      proc.once('error', () => {});
      s.proc = proc;
      try {
        await ready(proc, port, offset);
      } catch (err) {
        await halt(0);
        throw err;
      }
    } finally {
      await out.close();
    }
  };

  /** Stop the whole process group: SIGTERM, then SIGKILL after `graceMs`. */
  const halt = async (graceMs: number) => {
    const proc = s.proc;
    if (!proc?.pid) return;
    const pid = proc.pid;
    killGroup(proc, graceMs > 0 ? 'SIGTERM' : 'SIGKILL');
    const deadline = Date.now() + graceMs;
    while (groupAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    if (groupAlive(pid)) killGroup(proc, 'SIGKILL');
    while (groupAlive(pid)) await new Promise((r) => setTimeout(r, 50));
    s.proc = null;
  };

  try {
    await writeFile(logFile, '', { mode: 0o600 });
    await mkdir(join(base, 'artifacts'));
    const ini = [
      '[mlflow]',
      `default_permission = ${opts.defaultPermission ?? 'NO_PERMISSIONS'}`,
      `database_uri = sqlite:///${join(base, 'basic_auth.db')}`,
      `admin_username = ${ADMIN}`,
      'authorization_function = mlflow.server.auth:authenticate_request_basic_auth',
      '',
    ].join('\n');
    await writeFile(authIni, ini, { mode: 0o600 });
    if (opts.tls) {
      await writeFile(join(base, 'tls.pem'), opts.tls.certPem, { mode: 0o644 });
      await writeFile(join(base, 'tls-key.pem'), opts.tls.keyPem, { mode: 0o600 });
    }
    for (let attempt = 1; ; attempt++) {
      s.port = await freePort([...live].map((x) => x.port));
      try {
        await launch(s.port);
        break;
      } catch (err) {
        if (!(err as { portInUse?: boolean }).portInUse || attempt >= 5) throw err;
      }
    }
  } catch (err) {
    await halt(0);
    live.delete(s);
    await rm(base, { recursive: true, force: true });
    throw err;
  }
  if (process.env.CUSTODY_TEST_TIMINGS) {
    process.stderr.write(`startMlflow: ${Math.round(performance.now() - started)} ms\n`);
  }

  const server: MlflowServer = {
    url: `${scheme}://${HOST}:${s.port}`,
    port: s.port,
    adminUser: ADMIN,
    adminPassword,
    dataDir: base,
    logFile,
    caPem: opts.tls?.caPem,
    async stop() {
      if (!live.has(s)) return;
      await halt(0);
      live.delete(s);
      await rm(base, { recursive: true, force: true });
    },
    async pause() {
      if (!live.has(s)) throw new Error('The MLflow server was stopped');
      await halt(STOP_GRACE_MS);
    },
    async resume() {
      if (!live.has(s)) throw new Error('The MLflow server was stopped');
      if (!s.proc) await launch(s.port);
    },
  };
  // Keep the admin password out of console.log / assertion output.
  Object.defineProperty(server, Symbol.for('nodejs.util.inspect.custom'), {
    value: () => `MlflowServer { url: '${server.url}', dataDir: '${base}' }`,
  });
  return server;
}
