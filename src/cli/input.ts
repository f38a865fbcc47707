import { readFile } from 'node:fs/promises';
import { CliError, usageError } from './errors.js';

/** Reads all of stdin as UTF-8. */
export async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
  return Buffer.concat(chunks).toString('utf8');
}

/** `echo value | …` adds one newline: drop exactly one. */
export const dropTrailingNewline = (s: string) => s.replace(/\r?\n$/, '');

export const stdinIsTty = () => process.stdin.isTTY === true;

/** Prompts on the terminal without echoing what is typed (shares, secret values). */
export function promptHidden(question: string): Promise<string> {
  const stdin = process.stdin;
  if (!stdin.isTTY) return Promise.reject(usageError('No terminal to prompt on', 'Pipe the value on stdin.'));
  return new Promise((resolve, reject) => {
    let typed = '';
    process.stderr.write(question);
    stdin.setRawMode(true);
    stdin.setEncoding('utf8');
    stdin.resume();
    const finish = (err?: Error) => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write('\n');
      if (err) reject(err);
      else resolve(typed);
    };
    const onData = (data: string) => {
      for (const ch of data) {
        if (ch === '\r' || ch === '\n' || ch === '\u0004') return finish();
        if (ch === '\u0003') return finish(new CliError('Cancelled', 'Cancelled at the prompt'));
        if (ch === '\u007f' || ch === '\b') typed = typed.slice(0, -1);
        else typed += ch;
      }
    };
    stdin.on('data', onData);
  });
}

/** A file's text, or a FileUnreadable error naming the flag it came from. */
export async function readTextFile(file: string, what: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new CliError(
      'FileUnreadable',
      `Cannot read ${what} ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
      'Check the path.',
    );
  }
}

/**
 * A credential given as `--x-file FILE` or `--x -` (stdin, or a hidden prompt on a terminal).
 * Never taken from the command line itself: arguments show in process lists and shell history.
 * Surrounding whitespace is dropped unless `keepSpaces` (then only one trailing newline).
 */
export async function credentialInput(opts: {
  file: string | undefined;
  dash: string | undefined;
  fileFlag: string;
  dashFlag: string;
  what: string;
  keepSpaces?: boolean;
}): Promise<string | undefined> {
  const { file, dash, fileFlag, dashFlag, what } = opts;
  if (file !== undefined && dash !== undefined)
    throw usageError(`Give ${fileFlag} or ${dashFlag} -, not both`);
  if (dash !== undefined && dash !== '-') {
    throw usageError(
      `${dashFlag} takes only - (read ${what} from stdin)`,
      `Values on the command line end up in shell history and process lists: use ${fileFlag} FILE or pipe it to ${dashFlag} -.`,
    );
  }
  const What = `${what[0].toUpperCase()}${what.slice(1)}`;
  let text: string;
  if (file !== undefined) text = await readTextFile(file, fileFlag);
  else if (dash !== undefined)
    text = stdinIsTty() ? await promptHidden(`${What} (input hidden): `) : await readStdin();
  else return undefined;
  const value = opts.keepSpaces ? dropTrailingNewline(text) : text.trim();
  if (value === '') throw usageError(`${What} is empty`, `Check ${file !== undefined ? fileFlag : 'stdin'}.`);
  return value;
}
