import type { AuditRecord } from './entry.js';

/**
 * Where audit entries go. Each sink keeps its own hash chain: `write` hands over the unchained
 * record and the sink stamps seq/prev_hash/hash (see SinkChain) when it fixes the line's position,
 * so a failed or reordered write can never leave a gap in the chain it reports. The promise
 * resolves only once the line is as durable as the sink can make it, and rejects otherwise.
 */
export interface AuditSink {
  readonly name: string;
  write(record: AuditRecord): Promise<void>;
  close(): Promise<void>;
}
