import { ChainVerifier, type VerifyOptions, type VerifyResult } from './chain-verifier.js';
import type { AuditRecord } from './entry.js';
import { entryHash, GENESIS_HASH, isHash } from './hash.js';

export type { TamperReason, VerifyOptions, VerifyResult } from './chain-verifier.js';
export { ChainVerifier } from './chain-verifier.js';
export { canonicalJson, entryHash, GENESIS_HASH, sha256Hex } from './hash.js';

/** Position of a chain: seq and hash of its last entry (seq 0 + genesis hash before the first). */
export interface ChainState {
  seq: number;
  hash: string;
}

/**
 * One sink's hash chain. A sink calls `stamp` at the moment a line's place in its output is fixed,
 * so seq order always equals output order.
 */
export class SinkChain {
  private current: ChainState;

  constructor(state: ChainState = { seq: 0, hash: GENESIS_HASH }) {
    this.current = { ...state };
  }

  get state(): ChainState {
    return { ...this.current };
  }

  /** Rewinds to a known position, e.g. after a batch that never reached the output. */
  reset(state: ChainState): void {
    this.current = { ...state };
  }

  /** Returns the JSON line (without newline) for the record at the next position. */
  stamp(record: AuditRecord): string {
    const seq = this.current.seq + 1;
    const body = { ...record, seq, prev_hash: this.current.hash };
    const hash = entryHash(body);
    this.current = { seq, hash };
    return JSON.stringify({ ...body, hash });
  }
}

/** Chain position after an existing line (used to resume a file); throws if it is not an entry. */
export function chainStateFromLine(line: string): ChainState {
  let v: { seq?: unknown; hash?: unknown };
  try {
    v = JSON.parse(line);
  } catch {
    throw new Error('last audit line is not valid JSON');
  }
  if (typeof v?.seq !== 'number' || !Number.isSafeInteger(v.seq) || v.seq < 1 || !isHash(v.hash)) {
    throw new Error('last audit line carries no seq/hash');
  }
  return { seq: v.seq, hash: v.hash };
}

/**
 * Verifies a sequence of audit lines and reports the first edited, removed, inserted or
 * reordered line (1-based). A string second argument is taken as startPrevHash.
 */
export function verifyChain(lines: Iterable<string>, opts: VerifyOptions | string = {}): VerifyResult {
  const verifier = new ChainVerifier(typeof opts === 'string' ? { startPrevHash: opts } : opts);
  const all = Array.isArray(lines) ? lines : [...lines];
  // A trailing newline leaves one empty string after split('\n'); it is not a line.
  const n = all.length > 0 && all[all.length - 1] === '' ? all.length - 1 : all.length;
  for (let i = 0; i < n; i++) if (!verifier.push(all[i])) break;
  return verifier.finish();
}
