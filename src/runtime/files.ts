import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { CliError } from '../cli/errors.js';

/**
 * `custody run --files`: each value is written to a 0600 file in a private 0700 directory on a
 * tmpfs (`/dev/shm`, else `$XDG_RUNTIME_DIR`), and the variable holds the file's path. Never on
 * disk: when neither place is a tmpfs, `custody run` refuses. The directory is removed on every
 * way out (also by a process 'exit' hook, should something skip the normal clean-up).
 */

/** The filesystem type of the mount that holds `dir` (longest mount point prefix), from /proc/mounts. */
export function fsTypeOf(dir: string, mounts: string): string | null {
  let best: { point: string; type: string } | null = null;
  const target = path.resolve(dir);
  for (const line of mounts.split('\n')) {
    const [, rawPoint, type] = line.split(' ');
    if (!rawPoint || !type) continue;
    const point = rawPoint.replace(/\\([0-7]{3})/g, (_, o: string) =>
      String.fromCharCode(Number.parseInt(o, 8)),
    );
    const inside = point === '/' || target === point || target.startsWith(`${point}/`);
    if (inside && (best === null || point.length >= best.point.length)) best = { point, type };
  }
  return best?.type ?? null;
}

/** The first candidate directory that exists and is on a tmpfs, or null. */
export function tmpfsBase(
  env: NodeJS.ProcessEnv,
  mounts: string | null = readMounts(),
  candidates: string[] = ['/dev/shm', ...(env.XDG_RUNTIME_DIR ? [env.XDG_RUNTIME_DIR] : [])],
): string | null {
  if (mounts === null) return null;
  for (const dir of candidates) {
    try {
      if (!statSync(dir).isDirectory()) continue;
    } catch {
      continue;
    }
    if (fsTypeOf(dir, mounts) === 'tmpfs') return dir;
  }
  return null;
}

function readMounts(): string | null {
  try {
    return readFileSync('/proc/mounts', 'utf8');
  } catch {
    return null;
  }
}

export class SecretFiles {
  private removed = false;
  private readonly onExit = () => this.remove();

  private constructor(readonly dir: string) {
    process.on('exit', this.onExit);
  }

  /** Creates the private directory; refuses (CliError) when there is no tmpfs to put it on. */
  static create(env: NodeJS.ProcessEnv, base: string | null = tmpfsBase(env)): SecretFiles {
    if (base === null) {
      throw new CliError(
        'NoTmpfs',
        '--files: neither /dev/shm nor $XDG_RUNTIME_DIR is a tmpfs: the values would be written to disk',
        'Run where /dev/shm is a tmpfs (e.g. docker run --shm-size…), or deliver the values in the environment (drop --files).',
      );
    }
    return new SecretFiles(mkdtempSync(path.join(base, 'custody-')));
  }

  /** Writes `value` to a 0600 file named after the variable; returns its path. */
  write(variable: string, value: string): string {
    const file = path.join(this.dir, variable);
    writeFileSync(file, value, { mode: 0o600, flag: 'wx' });
    return file;
  }

  /**
   * Replaces the file of `variable` atomically (a 0600 temp file in the same private directory,
   * then rename): a reader sees the old value or the new one, never half of one.
   */
  rewrite(variable: string, value: string): string {
    const file = path.join(this.dir, variable);
    const tmp = path.join(this.dir, `.${variable}.${randomBytes(6).toString('hex')}.tmp`);
    try {
      writeFileSync(tmp, value, { mode: 0o600, flag: 'wx' });
      renameSync(tmp, file);
    } catch (err) {
      rmSync(tmp, { force: true });
      throw err;
    }
    return file;
  }

  remove(): void {
    if (this.removed) return;
    this.removed = true;
    process.off('exit', this.onExit);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
