import { spawn } from 'node:child_process';
import { open } from 'node:fs/promises';
import { createServer } from 'node:net';

/** Runs a command to completion (no stdin) and collects its exit code, stdout and stderr. */
export function runProcess(
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('close', (code) => resolve({ code: code ?? -1, out, err }));
  });
}

/**
 * A loopback port the OS just handed out that none of `taken` uses (ports this process's own
 * servers hold while stopped); a race with another process is retried by the caller.
 */
export async function freePort(taken: Iterable<number> = []): Promise<number> {
  const used = new Set(taken);
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = createServer();
      srv.once('error', reject);
      srv.listen(0, '127.0.0.1', () => {
        const { port } = srv.address() as { port: number };
        srv.close(() => resolve(port));
      });
    });
    if (!used.has(port)) return port;
  }
}

/** What a log file gained since `offset` ('' when it does not exist): a start failure's own lines. */
export async function readFrom(path: string, offset: number): Promise<string> {
  const fh = await open(path, 'r').catch(() => null);
  if (!fh) return '';
  try {
    const { size } = await fh.stat();
    const buf = Buffer.alloc(Math.max(0, size - offset));
    await fh.read(buf, 0, buf.length, offset);
    return buf.toString('utf8');
  } finally {
    await fh.close();
  }
}

const exitCleanups = new Set<() => void>();
/**
 * Runs `cleanup` (synchronous: stop servers, remove temp dirs) when this process exits or is
 * interrupted, so a killed test run leaves no server or data behind. Registering twice is a no-op.
 */
export function onProcessExit(cleanup: () => void): void {
  if (exitCleanups.size === 0) {
    const runAll = () => {
      for (const c of exitCleanups) c();
    };
    process.on('exit', runAll);
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      process.once(sig, () => {
        runAll();
        if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
      });
    }
  }
  exitCleanups.add(cleanup);
}
