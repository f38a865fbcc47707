import type { Writable } from 'node:stream';
import { SinkChain } from './chain.js';
import type { AuditRecord } from './entry.js';
import type { AuditSink } from './sink.js';

/**
 * Writes entries to stdout (for containers whose log collector ships stdout). The chain starts
 * fresh per process; a collector can tell processes apart by the restart of seq at 1.
 */
export class StdoutSink implements AuditSink {
  readonly name: string;
  private readonly chain = new SinkChain();
  private broken: Error | undefined;

  constructor(
    private readonly stream: Writable = process.stdout,
    opts: { name?: string } = {},
  ) {
    this.name = opts.name ?? 'stdout';
    // Without a listener an EPIPE would crash the broker; here it fails the audit writes instead.
    stream.on('error', (err: Error) => {
      this.broken = err;
    });
  }

  write(record: AuditRecord): Promise<void> {
    if (this.broken) return Promise.reject(this.broken);
    const line = `${this.chain.stamp(record)}\n`;
    return new Promise<void>((resolve, reject) => {
      this.stream.write(line, (err) => (err ? reject(err) : resolve()));
    });
  }

  async close(): Promise<void> {
    // process.stdout is shared with the rest of the process: never end it here.
  }
}
