import { type FileHandle, open } from 'node:fs/promises';
import { dirname } from 'node:path';
import { type ChainState, chainStateFromLine, SinkChain } from './chain.js';
import type { AuditRecord } from './entry.js';
import type { AuditSink } from './sink.js';

const TAIL_CHUNK = 64 * 1024;
// Caps one write+fdatasync so a burst cannot build an unbounded buffer.
const MAX_BATCH = 4096;

export interface FileSinkStats {
  /** entries made durable */
  writes: number;
  /** write+fdatasync rounds that succeeded (group commit: usually far fewer than writes) */
  flushes: number;
  /** batches that failed */
  failures: number;
  bytes: number;
}

interface Pending {
  record: AuditRecord;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/**
 * Append-only audit file with group commit: entries that arrive while a write+fdatasync is in
 * flight go out together in the next one, and each write() resolves once its line is durable.
 * The chain resumes from the file's last line, so restarts continue it.
 */
export class FileSink implements AuditSink {
  readonly name: string;
  readonly stats: FileSinkStats = { writes: 0, flushes: 0, failures: 0, bytes: 0 };
  private fh: FileHandle | undefined;
  // Kept across reopen: a fresh file after rotation continues the previous file's chain.
  private chain: SinkChain | undefined;
  private readonly queue: Pending[] = [];
  private draining = false;
  private drained: Promise<void> = Promise.resolve();
  private reopenRequested = false;
  private closed = false;

  constructor(
    readonly path: string,
    opts: { name?: string } = {},
  ) {
    this.name = opts.name ?? `file:${path}`;
  }

  /** Opens the file now (so a broken audit path fails at startup) and resumes its chain. */
  static async open(path: string, opts: { name?: string } = {}): Promise<FileSink> {
    const sink = new FileSink(path, opts);
    await sink.openFile();
    return sink;
  }

  write(record: AuditRecord): Promise<void> {
    if (this.closed) return Promise.reject(new Error('audit file sink is closed'));
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ record, resolve, reject });
      if (!this.draining) {
        this.draining = true;
        this.drained = this.drain();
      }
    });
  }

  /** After log rotation (file renamed away): the next batch opens the path again. */
  reopen(): void {
    this.reopenRequested = true;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.drained;
    const fh = this.fh;
    this.fh = undefined;
    await fh?.close();
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      let batch: Pending[] = [];
      try {
        if (this.reopenRequested && this.fh) {
          this.reopenRequested = false;
          await this.dropHandle();
        }
        const fh = this.fh ?? (await this.openFile());
        batch = this.queue.splice(0, MAX_BATCH);
        await this.flush(fh, batch);
        for (const p of batch) p.resolve();
      } catch (err) {
        // If opening failed, every waiting line fails with it; the next write tries again.
        if (batch.length === 0) batch = this.queue.splice(0);
        this.stats.failures++;
        for (const p of batch) p.reject(err);
      }
    }
    // Set synchronously after the last queue check, so write() never sees a stale flag.
    this.draining = false;
  }

  private async flush(fh: FileHandle, batch: Pending[]): Promise<void> {
    const chain = this.chain!;
    const start = chain.state;
    let text = '';
    for (const p of batch) text += `${chain.stamp(p.record)}\n`;
    const buf = Buffer.from(text, 'utf8');
    try {
      for (let off = 0; off < buf.length; ) {
        const { bytesWritten } = await fh.write(buf, off, buf.length - off);
        off += bytesWritten;
      }
      await fh.datasync();
    } catch (err) {
      // The file may now end in a partial line. Reopening re-reads the tail (dropping a torn line)
      // and resumes the chain from what is really there.
      chain.reset(start);
      await this.dropHandle();
      throw err;
    }
    this.stats.flushes++;
    this.stats.writes += batch.length;
    this.stats.bytes += buf.length;
  }

  private async dropHandle(): Promise<void> {
    const fh = this.fh;
    this.fh = undefined;
    await fh?.close().catch(() => {});
  }

  private async openFile(): Promise<FileHandle> {
    // 'a+': appends always go to the end, and the tail can be read to resume the chain.
    const fh = await open(this.path, 'a+', 0o600);
    try {
      const st = await fh.stat();
      if (st.isFile()) {
        const last = await lastCompleteLine(fh, st.size);
        if (last !== undefined) this.chain = new SinkChain(resumeState(last, this.path));
        else if (st.size === 0) await syncDir(dirname(this.path));
      }
      this.chain ??= new SinkChain();
      this.fh = fh;
      return fh;
    } catch (err) {
      await fh.close().catch(() => {});
      throw err;
    }
  }
}

function resumeState(line: string, path: string): ChainState {
  try {
    return chainStateFromLine(line);
  } catch (err) {
    throw new Error(
      `audit file ${path} does not end with a chained entry (${(err as Error).message}); move it aside`,
    );
  }
}

/**
 * Reads only the end of the file. An unterminated last line is a write that never completed (and
 * was never acknowledged), so it is truncated away before the chain resumes.
 */
async function lastCompleteLine(fh: FileHandle, size: number): Promise<string | undefined> {
  let window = Math.min(size, TAIL_CHUNK);
  while (size > 0) {
    const start = size - window;
    const buf = Buffer.alloc(window);
    for (let off = 0; off < window; ) {
      const { bytesRead } = await fh.read(buf, off, window - off, start + off);
      if (bytesRead === 0) throw new Error('audit file shrank while reading its tail');
      off += bytesRead;
    }
    const endsWithNewline = buf[window - 1] === 0x0a;
    const from = endsWithNewline ? window - 2 : window - 1;
    const nl = from >= 0 ? buf.lastIndexOf(0x0a, from) : -1;
    if (nl === -1 && start > 0) {
      window = Math.min(size, window * 2);
      continue;
    }
    if (endsWithNewline) return buf.subarray(nl + 1, window - 1).toString('utf8');
    size = start + nl + 1;
    await fh.truncate(size);
    await fh.datasync();
    window = Math.min(size, TAIL_CHUNK);
  }
  return undefined;
}

/** Makes a newly created file's directory entry durable too. */
async function syncDir(dir: string): Promise<void> {
  try {
    const d = await open(dir, 'r');
    await d.sync().finally(() => d.close());
  } catch {
    // Some filesystems cannot fsync a directory; the file's own data is still synced per batch.
  }
}
