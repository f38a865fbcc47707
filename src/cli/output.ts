import { describeError, redact } from '../client/redact.js';
import { CliError } from './errors.js';

export type Format = 'table' | 'json';
export const FORMATS: Format[] = ['table', 'json'];

export interface Column<T> {
  header: string;
  get: (row: T) => unknown;
}

export interface Writer {
  write(text: string): unknown;
}

/** How a value reads in a table cell or after `key:`. */
export function cell(v: unknown): string {
  if (v === null || v === undefined || v === '') return '-';
  if (Array.isArray(v)) return v.length ? v.map(cell).join(',') : '-';
  if (typeof v === 'object') {
    const entries = Object.entries(v as Record<string, unknown>);
    return entries.length ? entries.map(([k, x]) => `${k}=${cell(x)}`).join(',') : '-';
  }
  return String(v);
}

/** Renders command results: `table` for people (aligned columns, key: value lines), `json` = the API response. */
export class Output {
  constructor(
    readonly format: Format,
    private readonly out: Writer = process.stdout,
    private readonly err: Writer = process.stderr,
  ) {}

  get json(): boolean {
    return this.format === 'json';
  }

  /** An object: `key: value` lines, or the object as JSON. */
  object(data: Record<string, unknown>, fields?: string[]): void {
    if (this.json) {
      this.printJson(data);
      return;
    }
    const keys = fields ?? Object.keys(data);
    const width = Math.max(0, ...keys.map((k) => k.length)) + 1;
    this.out.write(keys.map((k) => `${`${k}:`.padEnd(width)} ${cell(data[k])}`).join('\n') + '\n');
  }

  /** A list: aligned columns under a header, or `json` as JSON. */
  list<T>(json: unknown, rows: T[], columns: Column<T>[], empty = 'Nothing to list.'): void {
    if (this.json) {
      this.printJson(json);
      return;
    }
    if (rows.length === 0) {
      this.err.write(`${empty}\n`);
      return;
    }
    const table = [columns.map((c) => c.header), ...rows.map((r) => columns.map((c) => cell(c.get(r))))];
    const widths = columns.map((_, i) => Math.max(...table.map((line) => line[i].length)));
    const text = table.map((line) =>
      line.map((v, i) => (i === line.length - 1 ? v : v.padEnd(widths[i]))).join('  '),
    );
    this.out.write(`${text.join('\n')}\n`);
  }

  /** A result in table mode is one sentence; in json mode the response. */
  result(json: unknown, sentence: string): void {
    if (this.json) {
      this.printJson(json);
      return;
    }
    this.out.write(`${sentence}\n`);
  }

  /** Raw text to stdout (a secret value): same in both formats unless the caller chose otherwise. */
  raw(text: string): void {
    this.out.write(text);
  }

  printJson(data: unknown): void {
    this.out.write(`${JSON.stringify(data, null, 2)}\n`);
  }

  /** Notes and warnings for people go to stderr so stdout stays parseable. */
  note(text: string): void {
    this.err.write(`${text}\n`);
  }

  /** `error: <message> (<CODE>)` + `hint: …`, or the error body as one JSON line. Always redacted. */
  error(e: { code: string; message: string; hint?: string }): void {
    // The CLI's own text shows `NAME=value` syntax on purpose: credential shapes only (see redact.ts).
    const message = redact(e.message, [], { pairs: false });
    const hint = e.hint === undefined ? undefined : redact(e.hint, [], { pairs: false });
    if (this.json) {
      this.err.write(`${JSON.stringify({ error: { code: e.code, message, ...(hint ? { hint } : {}) } })}\n`);
      return;
    }
    this.err.write(`error: ${message} (${e.code})\n${hint ? `hint: ${hint}\n` : ''}`);
  }
}

/** Any thrown value → the error shape the CLI prints. */
export function toErrorBody(err: unknown): { code: string; message: string; hint?: string } {
  if (err instanceof CliError) return { code: err.code, message: err.message, hint: err.hint };
  const e = err as { code?: unknown; message?: unknown; hint?: unknown; name?: unknown };
  if (e && typeof e === 'object' && e.name === 'CustodyError' && typeof e.code === 'string') {
    return {
      code: e.code,
      message: String(e.message),
      hint: typeof e.hint === 'string' ? e.hint : undefined,
    };
  }
  // Not our text: every rule applies (a library may echo `password=…`).
  return { code: 'InternalError', message: describeError(err) };
}
