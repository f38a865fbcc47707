import { CustodyError, sealed } from '../errors.js';
import { type AuditInput, buildRecord, hmacValue } from './entry.js';
import type { AuditSink } from './sink.js';

export interface AuditMetrics {
  sinkFailure(sinkName: string): void;
}

export interface AuditServiceOptions {
  sinks: AuditSink[];
  /** per-install audit key; usually set later with setHmacKey, once the barrier is unsealed */
  hmacKey?: Buffer;
  metrics?: AuditMetrics;
  /** told about each failed sink write, e.g. to put it in the broker log */
  onSinkError?: (sinkName: string, err: unknown) => void;
  /** a sink that takes longer than this counts as failed, so a stuck disk cannot hang requests */
  sinkTimeoutMs?: number;
  clock?: () => Date;
}

/** The audit domain's service interface. */
export interface Auditor {
  setHmacKey(key: Buffer): void;
  /** Resolves once at least one sink holds the entry; otherwise throws AuditUnavailable. */
  log(input: AuditInput): Promise<void>;
  /** The digest a value has in the audit trail (to search for a known token or secret). */
  hmac(value: unknown): string;
  close(): Promise<void>;
}

export const auditUnavailable = () =>
  new CustodyError(
    'AuditUnavailable',
    503,
    'The request could not be audited, so it was not served',
    'Check the audit sinks (disk space, permissions) in the broker log.',
  );

/** Fail-closed dispatch of audit entries to every sink in parallel. */
export class AuditService implements Auditor {
  private readonly sinks: AuditSink[];
  private key: Buffer | undefined;
  private readonly metrics?: AuditMetrics;
  private readonly onSinkError?: (sinkName: string, err: unknown) => void;
  private readonly timeoutMs: number;
  private readonly clock: () => Date;

  constructor(opts: AuditServiceOptions) {
    this.sinks = [...opts.sinks];
    this.key = opts.hmacKey ? Buffer.from(opts.hmacKey) : undefined;
    this.metrics = opts.metrics;
    this.onSinkError = opts.onSinkError;
    this.timeoutMs = opts.sinkTimeoutMs ?? 10_000;
    this.clock = opts.clock ?? (() => new Date());
  }

  setHmacKey(key: Buffer): void {
    // A copy: the caller may zero its buffer when it reseals.
    this.key = Buffer.from(key);
  }

  hmac(value: unknown): string {
    if (!this.key) throw sealed();
    return hmacValue(this.key, value);
  }

  async log(input: AuditInput): Promise<void> {
    if (this.sinks.length === 0) throw auditUnavailable();
    const record = buildRecord(input, this.key, this.clock());
    // Every sink.write is called in this same tick, so concurrent log() calls reach each sink in
    // one order and the file sink can batch them.
    const results = await Promise.allSettled(this.sinks.map((sink) => this.writeOne(sink, record)));
    let accepted = 0;
    results.forEach((r, i) => {
      if (r.status === 'fulfilled') {
        accepted++;
        return;
      }
      const name = this.sinks[i].name;
      this.metrics?.sinkFailure(name);
      this.onSinkError?.(name, r.reason);
    });
    if (accepted === 0) throw auditUnavailable();
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.sinks.map((s) => s.close()));
    this.key?.fill(0);
    this.key = undefined;
  }

  private writeOne(sink: AuditSink, record: Parameters<AuditSink['write']>[0]): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    let written: Promise<void>;
    try {
      written = sink.write(record);
    } catch (err) {
      written = Promise.reject(err);
    }
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`audit sink ${sink.name} timed out after ${this.timeoutMs} ms`)),
        this.timeoutMs,
      );
    });
    return Promise.race([written, timeout]).finally(() => clearTimeout(timer));
  }
}
