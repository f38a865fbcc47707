import { type ChildProcess, spawn } from 'node:child_process';
import { constants } from 'node:os';
import { type Masker, MaskingStream } from '../client/masking.js';

/** The signals `custody run` catches and hands to its child. */
export const FORWARDED_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
export type ForwardedSignal = (typeof FORWARDED_SIGNALS)[number];

/** Signals a terminal sends to its whole foreground process group by itself (Ctrl-C, Ctrl-\). */
const KEYBOARD_SIGNALS = new Set<NodeJS.Signals>(['SIGINT', 'SIGQUIT']);

export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** What `custody run` exits with: the child's code, or 128 + the signal's number. */
  exitCode: number;
}

export const exitCodeOf = (code: number | null, signal: NodeJS.Signals | null): number =>
  code !== null ? code : 128 + ((signal && constants.signals[signal]) || 0);

export interface ChildOptions {
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  /** After a forwarded signal, how long the child gets before SIGKILL. */
  graceMs: number;
  /**
   * Start the child in its own process group, so that forwarded signals reach its children too
   * (`kill(-pid)`). Default: yes, unless stdin is a terminal — a background process group that
   * reads the terminal is stopped (SIGTTIN), so an interactive child stays in the terminal's
   * foreground group, where the terminal's Ctrl-C reaches it (and its children) directly.
   */
  detached?: boolean;
  /**
   * Pipe the child's stdout and stderr through a MaskingStream (stdin stays inherited); without it
   * all three are inherited.
   */
  mask?: Masker;
}

/** After the child exited, how long its output pipes get to drain (a grandchild may hold them). */
const DRAIN_MS = 2000;

export interface Supervised {
  pid: number;
  detached: boolean;
  /** Resolves when the child has exited (never rejects). */
  exited: Promise<ChildExit>;
  /**
   * Hands a signal `custody run` received to the child (its process group when detached) and, the
   * first time, arms the grace timer that ends in SIGKILL.
   */
  forward(signal: NodeJS.Signals): void;
  /** Sends a signal (e.g. `--on-rotate SIGHUP`) to the child (its process group when detached); no kill timer. */
  signal(signal: NodeJS.Signals): void;
}

/** The child could not be started (not found, not executable…). */
export class SpawnError extends Error {
  constructor(
    readonly code: string,
    readonly command: string,
  ) {
    super(`Cannot start ${command} (${code})`);
    this.name = 'SpawnError';
  }
}

/**
 * Starts the child with inherited stdio; resolves once it runs, rejects with SpawnError when it
 * cannot be started. The child is never restarted.
 */
export function startChild(opts: ChildOptions): Promise<Supervised> {
  const detached = opts.detached ?? process.stdin.isTTY !== true;
  return new Promise((resolve, reject) => {
    let child: ChildProcess;
    try {
      child = spawn(opts.command, opts.args, {
        env: opts.env,
        stdio: opts.mask ? ['inherit', 'pipe', 'pipe'] : 'inherit',
        detached,
      });
    } catch (err) {
      reject(new SpawnError((err as NodeJS.ErrnoException).code ?? 'error', opts.command));
      return;
    }
    const drained = opts.mask ? pipeMasked(child, opts.mask) : null;
    const exited = new Promise<ChildExit>((done) => {
      child.once('exit', (code, signal) => {
        const result = { code, signal, exitCode: exitCodeOf(code, signal) };
        if (!drained) done(result);
        else drained(DRAIN_MS).then(() => done(result));
      });
    });
    child.once('error', (err: NodeJS.ErrnoException) => {
      if (child.pid === undefined) reject(new SpawnError(err.code ?? 'error', opts.command));
    });
    child.once('spawn', () => {
      const pid = child.pid!;
      let grace: NodeJS.Timeout | null = null;
      let done = false;
      exited.then(() => {
        done = true;
        if (grace) clearTimeout(grace);
      });
      const send = (signal: NodeJS.Signals) => {
        try {
          if (detached) process.kill(-pid, signal);
          else process.kill(pid, signal);
        } catch {
          // ESRCH: already gone.
        }
      };
      resolve({
        pid,
        detached,
        exited,
        signal(signal) {
          if (!done) send(signal);
        },
        forward(signal) {
          if (done) return;
          // In the terminal's group the child got Ctrl-C from the terminal already: do not double it.
          if (detached || !KEYBOARD_SIGNALS.has(signal)) send(signal);
          if (grace === null) {
            grace = setTimeout(() => {
              if (!done) send('SIGKILL');
            }, opts.graceMs);
          }
        },
      });
    });
  });
}

/**
 * Pipes the child's stdout/stderr through maskers to ours; returns a function that waits (at most
 * `ms`) for both to drain after the child exited, then lets go of the pipes.
 */
function pipeMasked(child: ChildProcess, masker: Masker): (ms: number) => Promise<void> {
  const ends: Promise<void>[] = [];
  for (const [from, to] of [
    [child.stdout, process.stdout],
    [child.stderr, process.stderr],
  ] as const) {
    if (!from) continue;
    const masking = new MaskingStream(masker);
    from.on('error', () => {});
    to.on('error', () => {}); // EPIPE: the reader went away; the child goes on.
    from.pipe(masking);
    masking.on('data', (chunk: Buffer) => to.write(chunk));
    ends.push(new Promise((resolve) => masking.once('end', resolve)));
  }
  return async (ms) => {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(ends),
      new Promise((resolve) => {
        timer = setTimeout(resolve, ms);
      }),
    ]);
    clearTimeout(timer);
    for (const s of [child.stdout, child.stderr]) s?.destroy();
  };
}

/**
 * Catches SIGINT/SIGTERM/SIGHUP for the whole life of `custody run`: before the child exists a
 * signal is remembered (setup stops, what was issued is revoked); afterwards it goes to `handler`.
 */
export class SignalTrap {
  /** The first signal received before a handler was set. */
  pending: NodeJS.Signals | null = null;
  private handler: ((signal: NodeJS.Signals) => void) | null = null;
  private readonly listeners = new Map<NodeJS.Signals, () => void>();

  constructor(signals: readonly NodeJS.Signals[] = FORWARDED_SIGNALS) {
    for (const s of signals) {
      const l = () => {
        if (this.handler) this.handler(s);
        else this.pending ??= s;
      };
      this.listeners.set(s, l);
      process.on(s, l);
    }
  }

  /** From now on signals go to `handler`; a pending one is delivered at once. */
  deliverTo(handler: (signal: NodeJS.Signals) => void): void {
    this.handler = handler;
    if (this.pending) handler(this.pending);
  }

  release(): void {
    for (const [s, l] of this.listeners) process.off(s, l);
    this.listeners.clear();
  }
}
