import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, open, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The Python virtualenv the tests run their real components from (MLflow, and later hvac, the Azure
 * SDK, moto). Built once at `<repo>/.cache/venv` (git-ignored) from `test/support/requirements.txt`;
 * rebuilt only when that file changes (a stamp in the venv holds its hash). Several test files may
 * call `ensureVenv()` at once: a lock file in `.cache` lets one of them install while the others wait.
 */
export interface PythonVenv {
  /** The venv's interpreter. */
  python: string;
  /** The venv's bin directory (console scripts such as `mlflow`). */
  bin: string;
}

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const CACHE = join(REPO, '.cache');
const VENV = join(CACHE, 'venv');
const LOCK = join(CACHE, 'venv.lock');
const STAMP = join(VENV, '.custody-requirements.sha256');
export const REQUIREMENTS = fileURLToPath(new URL('./requirements.txt', import.meta.url));

const LOCK_WAIT_MS = 30 * 60_000;
const INSTALL_TIMEOUT_MS = 30 * 60_000;

const log = (line: string) => process.stderr.write(`[venv] ${line}\n`);

let pending: Promise<PythonVenv> | undefined;

/** Makes sure the venv exists and holds exactly what requirements.txt pins; fast when it already does. */
export function ensureVenv(): Promise<PythonVenv> {
  pending ??= build().catch((err) => {
    pending = undefined;
    throw err;
  });
  return pending;
}

const result = (): PythonVenv => ({ python: join(VENV, 'bin', 'python'), bin: join(VENV, 'bin') });

async function wantedStamp(): Promise<string> {
  const text = await readFile(REQUIREMENTS);
  return createHash('sha256').update(text).digest('hex');
}

async function upToDate(stamp: string): Promise<boolean> {
  // existsSync follows the symlink: a venv whose base interpreter went away counts as missing.
  if (!existsSync(result().python)) return false;
  const have = await readFile(STAMP, 'utf8').catch(() => '');
  return have.trim() === stamp;
}

async function build(): Promise<PythonVenv> {
  const stamp = await wantedStamp();
  if (await upToDate(stamp)) return result();
  await mkdir(CACHE, { recursive: true });
  const release = await acquireLock();
  try {
    // Somebody else may have finished the job while this process waited for the lock.
    if (await upToDate(stamp)) return result();
    await install(stamp);
    return result();
  } finally {
    await release();
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** An exclusive lock file holding `pid\nhost`; a lock left by a dead process of this host is taken over. */
async function acquireLock(): Promise<() => Promise<void>> {
  const deadline = Date.now() + LOCK_WAIT_MS;
  const me = `${process.pid}\n${hostname()}\n`;
  let announced = false;
  for (;;) {
    try {
      const fh = await open(LOCK, 'wx', 0o644);
      try {
        await fh.writeFile(me);
      } finally {
        await fh.close();
      }
      return async () => {
        const still = await readFile(LOCK, 'utf8').catch(() => '');
        if (still === me) await unlink(LOCK).catch(() => {});
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = await readFile(LOCK, 'utf8').catch(() => null);
    if (holder === null) continue; // released between our open and read
    const [pidText, host] = holder.split('\n');
    const pid = Number(pidText);
    // A half-written lock (no newline yet) is younger than a moment: wait for it like any other.
    const stale = holder.includes('\n') && host === hostname() && Number.isInteger(pid) && !pidAlive(pid);
    if (stale) {
      log(`removing a stale lock left by pid ${pid}`);
      await unlink(LOCK).catch(() => {});
      continue;
    }
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${LOCK} (held by pid ${pidText})`);
    if (!announced) {
      log(`waiting for pid ${pidText} to finish installing the test venv`);
      announced = true;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

async function install(stamp: string): Promise<void> {
  const started = performance.now();
  const basePython = process.env.CUSTODY_PYTHON || 'python3';
  await rm(STAMP, { force: true });
  if (!existsSync(result().python) || !runs(result().python)) {
    log(`creating ${VENV} with ${basePython}`);
    await run(basePython, ['-m', 'venv', '--clear', VENV], false);
  }
  log(`installing ${REQUIREMENTS} (the first time this takes a minute or two)`);
  await run(
    result().python,
    [
      '-m',
      'pip',
      'install',
      '--disable-pip-version-check',
      '--no-input',
      '--progress-bar',
      'off',
      '--prefer-binary',
      '-r',
      REQUIREMENTS,
    ],
    true,
  );
  await writeFile(STAMP, `${stamp}\n`);
  log(`ready in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

function runs(python: string): boolean {
  return spawnSync(python, ['-c', 'import sys'], { stdio: 'ignore', timeout: 30_000 }).status === 0;
}

/** Runs a command, echoing its interesting lines to stderr; on failure the error carries its output's tail. */
function run(file: string, args: string[], filter: boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      cwd: REPO,
      env: { ...process.env, PYTHONNOUSERSITE: '1', PIP_NO_INPUT: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const tail: string[] = [];
    let partial = '';
    const onData = (chunk: Buffer) => {
      const lines = (partial + chunk.toString('utf8')).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        if (!line.trim()) continue;
        tail.push(line);
        if (tail.length > 60) tail.shift();
        if (!filter || /^(Collecting|Installing|Successfully|Building|ERROR|WARNING)/.test(line)) log(line);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    const timer = setTimeout(() => child.kill('SIGKILL'), INSTALL_TIMEOUT_MS);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`${file} could not start: ${err.message}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else
        reject(
          new Error(`${file} ${args.slice(0, 3).join(' ')} failed (${code ?? signal}):\n${tail.join('\n')}`),
        );
    });
  });
}
