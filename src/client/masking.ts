import { Transform, type TransformCallback } from 'node:stream';

/**
 * The one masking engine for secret values: `custody run` masks a job's stdout/stderr with it, and
 * the MLflow proxy's leak guard looks for the same forms. A MaskingStream replaces every injected
 * value — and its base64 (three alignments), URL-encoded and JSON-escaped forms — by
 * `<redacted:VAR>`. One combined pattern (longest alternative first) is matched over the bytes in a
 * single pass; a tail of (longest pattern − 1) bytes is held back so that a value split across writes
 * is still caught, and flushed after a short quiet time so output stays streamed.
 */

/** Values shorter than this are not masked (too many false positives): a warning names them. */
export const MIN_MASK_LENGTH = 8;
/** How long a held tail waits for more output before it is written as it is. */
export const QUIET_FLUSH_MS = 50;

export interface MaskValue {
  variable: string;
  value: string;
}

/**
 * The base64 text of `value` when it sits at byte offset `offset` (0, 1, 2) of a base64-encoded
 * stream: only the characters that depend on the value's bytes alone.
 */
export function base64Aligned(value: Buffer, offset: 0 | 1 | 2, url = false): string {
  const b64 = Buffer.concat([Buffer.alloc(offset), value]).toString(url ? 'base64url' : 'base64');
  const start = Math.ceil((offset * 8) / 6);
  const end = Math.floor(((offset + value.length) * 8) / 6);
  return b64.slice(start, end);
}

/** Every form of `value` that is masked (latin1 strings: one char per byte), without duplicates; none for a short value. */
export function encodedForms(value: string): string[] {
  if (value.length < MIN_MASK_LENGTH) return [];
  const bytes = Buffer.from(value, 'utf8');
  const forms = new Set<string>();
  forms.add(bytes.toString('latin1'));
  for (const offset of [0, 1, 2] as const) {
    forms.add(base64Aligned(bytes, offset));
    forms.add(base64Aligned(bytes, offset, true));
  }
  const uri = encodeURIComponent(value);
  forms.add(uri);
  forms.add(uri.replace(/%20/g, '+'));
  forms.add(Buffer.from(JSON.stringify(value).slice(1, -1), 'utf8').toString('latin1'));
  // JSON with non-ASCII escaped as \uXXXX (Python's json.dumps default).
  forms.add(
    JSON.stringify(value)
      .slice(1, -1)
      .replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`),
  );
  return [...forms].filter((f) => f.length >= MIN_MASK_LENGTH);
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');

/** Splits values into those that are masked and the variables whose values are too short. */
export function partitionValues(values: MaskValue[]): { masked: MaskValue[]; short: string[] } {
  const masked: MaskValue[] = [];
  const short = new Set<string>();
  for (const v of values) {
    if (v.value.length < MIN_MASK_LENGTH) short.add(v.variable);
    else masked.push(v);
  }
  return { masked, short: [...short] };
}

/** The compiled matcher: one regex over latin1 text, and the variable of each pattern. */
export class Masker {
  private longest = 0;
  private re: RegExp | null = null;
  private readonly owner = new Map<string, string>();

  constructor(values: MaskValue[]) {
    this.add(values);
  }

  get maxLength(): number {
    return this.longest;
  }

  /** Adds values to mask from now on (a rotated lease's new password). */
  add(values: MaskValue[]): void {
    for (const { variable, value } of values) {
      if (value.length < MIN_MASK_LENGTH) continue;
      for (const form of encodedForms(value)) if (!this.owner.has(form)) this.owner.set(form, variable);
    }
    const patterns = [...this.owner.keys()].sort((a, b) => b.length - a.length);
    this.longest = patterns.length > 0 ? patterns[0].length : 0;
    this.re = patterns.length > 0 ? new RegExp(patterns.map(escapeRe).join('|'), 'g') : null;
  }

  get active(): boolean {
    return this.re !== null;
  }

  /**
   * Masks `text` (latin1) up to `safeEnd`: matches starting before it are replaced (they are
   * complete: every pattern starting there fits in `text`). Returns the output and the index where
   * the unprocessed rest starts.
   */
  scan(text: string, safeEnd: number): { out: string; rest: number } {
    if (!this.re) return { out: text.slice(0, safeEnd), rest: safeEnd };
    const re = this.re;
    re.lastIndex = 0;
    let out = '';
    let pos = 0;
    for (;;) {
      const m = re.exec(text);
      if (m === null || m.index >= safeEnd) break;
      out += `${text.slice(pos, m.index)}<redacted:${this.owner.get(m[0])}>`;
      pos = m.index + m[0].length;
    }
    if (pos < safeEnd) {
      out += text.slice(pos, safeEnd);
      pos = safeEnd;
    }
    return { out, rest: pos };
  }

  /** Masks a whole string (latin1 or plain). */
  maskAll(text: string): string {
    return this.scan(text, text.length).out;
  }
}

/** A Transform that masks a byte stream; see the module comment. */
export class MaskingStream extends Transform {
  private tail = '';
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly masker: Masker,
    private readonly quietMs = QUIET_FLUSH_MS,
  ) {
    super();
  }

  override _transform(chunk: Buffer | string, _enc: BufferEncoding, done: TransformCallback): void {
    this.clearTimer();
    const data = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    if (!this.masker.active) {
      done(null, data);
      return;
    }
    const text = this.tail + data.toString('latin1');
    const hold = this.masker.maxLength - 1;
    const safeEnd = Math.max(0, text.length - hold);
    const { out, rest } = this.masker.scan(text, safeEnd);
    this.tail = text.slice(rest);
    if (out.length > 0) this.push(Buffer.from(out, 'latin1'));
    if (this.tail.length > 0) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.flushTail();
      }, this.quietMs);
    }
    done();
  }

  override _flush(done: TransformCallback): void {
    this.clearTimer();
    this.flushTail();
    done();
  }

  override _destroy(err: Error | null, done: (error?: Error | null) => void): void {
    this.clearTimer();
    done(err);
  }

  private flushTail(): void {
    if (this.tail.length === 0) return;
    const out = this.masker.maskAll(this.tail);
    this.tail = '';
    this.push(Buffer.from(out, 'latin1'));
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}

/**
 * The values to mask for one delivered variable: the value itself and, when it is a JSON object,
 * each of its string (and number) fields.
 */
export function maskValuesOf(variable: string, value: string): MaskValue[] {
  const out: MaskValue[] = [{ variable, value }];
  if (!value.trimStart().startsWith('{')) return out;
  try {
    const parsed = JSON.parse(value) as unknown;
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) {
      for (const v of Object.values(parsed)) {
        if (typeof v === 'string') out.push({ variable, value: v });
        else if (typeof v === 'number') out.push({ variable, value: String(v) });
      }
    }
  } catch {
    // Not JSON: the value as a whole only.
  }
  return out;
}
