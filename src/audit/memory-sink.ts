import { SinkChain } from './chain.js';
import type { AuditEntry, AuditRecord } from './entry.js';
import type { AuditSink } from './sink.js';

/** Keeps chained lines in memory; for tests of code that audits (set `failWith` to fail writes). */
export class MemorySink implements AuditSink {
  readonly lines: string[] = [];
  failWith: Error | undefined;
  private readonly chain = new SinkChain();

  constructor(readonly name = 'memory') {}

  async write(record: AuditRecord): Promise<void> {
    if (this.failWith) throw this.failWith;
    this.lines.push(this.chain.stamp(record));
  }

  entries(): AuditEntry[] {
    return this.lines.map((l) => JSON.parse(l) as AuditEntry);
  }

  async close(): Promise<void> {}
}
