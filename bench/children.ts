// Child processes for the servers under test, and their resource usage read from /proc (Linux).
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
const START_TIMEOUT_MS = 60_000;

export interface Child {
  name: string;
  pid: number;
  url: string;
  stop(): Promise<void>;
}

/** Runs `node --import tsx <script> ...args` and waits for its `{type:'ready', url}` IPC message. */
export function spawnChild(name: string, script: string, args: string[]): Promise<Child> {
  const proc = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  return new Promise((resolve, reject) => {
    const fail = (err: Error) => {
      clearTimeout(timer);
      void stopProcess(proc);
      reject(err);
    };
    const timer = setTimeout(
      () => fail(new Error(`${name} not ready after ${START_TIMEOUT_MS} ms`)),
      START_TIMEOUT_MS,
    );
    const onExit = (code: number | null, signal: string | null) =>
      fail(new Error(`${name} exited before it was ready (code ${code}, signal ${signal})`));
    proc.once('exit', onExit);
    proc.once('error', fail);
    proc.once('message', (msg: { type?: string; url?: string }) => {
      clearTimeout(timer);
      proc.off('exit', onExit);
      if (msg.type !== 'ready' || !msg.url) return fail(new Error(`${name} sent ${JSON.stringify(msg)}`));
      resolve({ name, pid: proc.pid!, url: msg.url, stop: () => stopProcess(proc) });
    });
  });
}

async function stopProcess(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = once(proc, 'exit');
  proc.kill('SIGTERM');
  // A child stuck in close() must not keep the bench alive.
  const timer = setTimeout(() => proc.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

export interface Memory {
  rssMiB: number;
  peakMiB: number;
}

/** VmRSS (resident now) and VmHWM (peak resident) of a process, or null off Linux. */
export async function memoryOf(pid: number): Promise<Memory | null> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => null);
  if (!status) return null;
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rssMiB: kb('VmRSS') / 1024, peakMiB: kb('VmHWM') / 1024 };
}

let ticksPerSecond: number | undefined;

/** User + system CPU seconds a process has used so far, or null off Linux. */
export async function cpuSecondsOf(pid: number): Promise<number | null> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
  if (!stat) return null;
  // Fields after the parenthesised command name; utime and stime are fields 14 and 15 overall.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  ticksPerSecond ??= clockTicks();
  return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond;
}

function clockTicks(): number {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
}
