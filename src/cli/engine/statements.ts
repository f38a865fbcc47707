import { usageError } from '../errors.js';
import { readTextFile } from '../input.js';

/**
 * SQL statements from a file: `;`-separated when the file has a `;` outside quotes (then they may
 * span lines), else one per line. Blank lines and `--` comment lines are dropped; `'…'`, `"…"`,
 * `` `…` `` and `$tag$…$tag$` bodies are kept whole.
 */
export function splitStatements(text: string): string[] {
  const src = text
    .split(/\r?\n/)
    .filter((l) => !/^\s*--/.test(l))
    .join('\n');
  const parts: string[] = [];
  let start = 0;
  let i = 0;
  while (i < src.length) {
    const ch = src[i];
    if (ch === "'" || ch === '"' || ch === '`') {
      const close = src.indexOf(ch, i + 1);
      i = close < 0 ? src.length : close + 1;
    } else if (ch === '$' && /^\$[A-Za-z_]*\$/.test(src.slice(i))) {
      const tag = /^\$[A-Za-z_]*\$/.exec(src.slice(i))![0];
      const close = src.indexOf(tag, i + tag.length);
      i = close < 0 ? src.length : close + tag.length;
    } else if (ch === ';') {
      parts.push(src.slice(start, i));
      start = ++i;
    } else i++;
  }
  const statements = parts.length > 0 ? [...parts, src.slice(start)] : src.split('\n');
  return statements.map((s) => s.trim()).filter(Boolean);
}

/** A `--*-statements FILE` flag: undefined when not given; a file with no statements is refused. */
export async function statementsFrom(file: string | undefined, flag: string): Promise<string[] | undefined> {
  if (file === undefined) return undefined;
  const statements = splitStatements(await readTextFile(file, flag));
  if (statements.length === 0) throw usageError(`${flag} ${file} holds no statements`);
  return statements;
}
