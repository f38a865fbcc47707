import { entryHash, GENESIS_HASH, isHash } from './hash.js';

export type TamperReason = 'edited' | 'removed' | 'inserted' | 'reordered' | 'malformed';

export type VerifyResult =
  | { ok: true; count: number; lastSeq: number; lastHash: string }
  | { ok: false; line: number; reason: TamperReason; detail: string };

export interface VerifyOptions {
  /** hash of the last entry of the previous (rotated) file; the first line must link to it. */
  startPrevHash?: string;
  /** seq the first line must carry; defaults to 1, or to "any" when only startPrevHash is given. */
  startSeq?: number;
}

interface Link {
  seq: number;
  prevHash: string;
  hash: string;
  /** the line's content matches its own hash */
  intact: boolean;
}
type Failure = Extract<VerifyResult, { ok: false }>;
type Parsed = { line: number } & ({ ok: true; link: Link } | { ok: false; detail: string });
/** the last accepted entry; seq is undefined before the first line of a rotated file */
interface Tip {
  seq: number | undefined;
  hash: string;
  prevHash: string | undefined;
}

// Lines looked ahead when a line does not fit, to tell a moved line from a removed one.
const WINDOW = 64;

function parse(text: string, line: number): Parsed {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return { line, ok: false, detail: 'not valid JSON' };
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    return { line, ok: false, detail: 'not a JSON object' };
  }
  const { hash, ...rest } = v as Record<string, unknown>;
  const seq = rest.seq;
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1) {
    return { line, ok: false, detail: 'missing or invalid seq' };
  }
  if (!isHash(rest.prev_hash) || !isHash(hash)) {
    return { line, ok: false, detail: 'missing or invalid prev_hash/hash' };
  }
  return { line, ok: true, link: { seq, prevHash: rest.prev_hash, hash, intact: entryHash(rest) === hash } };
}

/** b is an intact entry that directly continues a. */
function follows(a: { seq: number | undefined; hash: string }, b: Link | undefined): boolean {
  return !!b?.intact && b.prevHash === a.hash && (a.seq === undefined || b.seq === a.seq + 1);
}

const fail = (line: number, reason: TamperReason, detail: string): Failure => ({
  ok: false,
  line,
  reason,
  detail,
});

const linkOf = (p: Parsed | undefined): Link | undefined => (p?.ok ? p.link : undefined);

/**
 * Streaming chain verifier. Lines are judged with a small look-ahead so the report names the first
 * line that was edited, removed, inserted or moved, not merely the first line where links break.
 */
export class ChainVerifier {
  private tip: Tip;
  private count = 0;
  private lineNo = 0;
  private readonly pending: Parsed[] = [];
  private failure?: Failure;

  constructor(opts: VerifyOptions = {}) {
    const seq = opts.startSeq !== undefined ? opts.startSeq - 1 : opts.startPrevHash ? undefined : 0;
    this.tip = { seq, hash: opts.startPrevHash ?? GENESIS_HASH, prevHash: undefined };
  }

  /** Feeds the next line; returns false once the outcome is decided (the caller may stop reading). */
  push(text: string): boolean {
    if (this.failure) return false;
    this.pending.push(parse(text, ++this.lineNo));
    while (!this.failure && this.pending.length > WINDOW) this.failure = this.judge();
    return !this.failure;
  }

  finish(): VerifyResult {
    while (!this.failure && this.pending.length > 0) this.failure = this.judge();
    if (this.failure) return this.failure;
    return { ok: true, count: this.count, lastSeq: this.tip.seq ?? 0, lastHash: this.tip.hash };
  }

  /** Judges the oldest pending line: undefined if it continues the chain. */
  private judge(): Failure | undefined {
    const cur = this.pending.shift()!;
    const i = cur.line;
    if (!cur.ok) return fail(i, 'malformed', cur.detail);
    const e = cur.link;
    const tip = this.tip;
    if (follows(tip, e)) {
      this.tip = { seq: e.seq, hash: e.hash, prevHash: e.prevHash };
      this.count++;
      return undefined;
    }
    const next = linkOf(this.pending[0]);
    const after = linkOf(this.pending[1]);
    const exp = tip.seq === undefined ? undefined : tip.seq + 1;

    // The next line continues the chain where this one should have: this one is out of place.
    if (follows(tip, next)) {
      if (follows(next!, e) && (this.pending[1] === undefined || follows(e, after))) {
        return fail(
          i,
          'reordered',
          `line ${i} (seq ${e.seq}) and line ${i + 1} (seq ${next!.seq}) are swapped`,
        );
      }
      return fail(i, 'inserted', `line ${i} is not part of the chain; line ${i + 1} continues line ${i - 1}`);
    }
    if (!e.intact) {
      if (e.seq === exp || e.prevHash === tip.hash || next?.prevHash === e.hash) {
        return fail(i, 'edited', `line ${i} (seq ${e.seq}) does not match its hash`);
      }
      return fail(i, 'inserted', `line ${i} has an invalid hash and does not fit the chain`);
    }
    // An intact line in the wrong place.
    if (exp === undefined) {
      return fail(i, 'removed', `line ${i} does not continue the chain ending in ${tip.hash}`);
    }
    if (e.seq === exp) {
      // Right number, wrong link: the previous line was rewritten and re-hashed.
      if (i > 1) return fail(i - 1, 'edited', `line ${i} no longer links to line ${i - 1}`);
      return fail(i, 'edited', 'line 1 does not start from the expected previous hash');
    }
    if (e.seq > exp) {
      const moved = this.pending.find((p) => p.ok && p.link.seq === exp && p.link.prevHash === tip.hash);
      if (moved) return fail(i, 'reordered', `seq ${exp} was moved to line ${moved.line}`);
      const hint = i === 1 ? ' (if this file continues a rotated one, pass startPrevHash)' : '';
      return fail(i, 'removed', `seq ${exp}..${e.seq - 1} missing before line ${i}${hint}`);
    }
    // seq repeats or goes back. Two lines claiming the same place: the one the chain continues
    // from is genuine (ambiguous at the end of the file: report the earlier one).
    if (
      i > 1 &&
      e.seq === tip.seq &&
      e.prevHash === tip.prevHash &&
      (this.pending[0] === undefined || follows(e, next))
    ) {
      return fail(i - 1, 'inserted', `lines ${i - 1} and ${i} both claim seq ${e.seq}`);
    }
    return fail(i, 'inserted', `line ${i} repeats seq ${e.seq} (expected ${exp})`);
  }
}
