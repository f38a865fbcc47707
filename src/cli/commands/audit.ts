import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import type { Command } from 'commander';
import type { VerifyOptions, VerifyResult } from '../../audit/chain-verifier.js';
import { examples, outputOf } from '../context.js';
import { CliError, EXIT_FAILURE } from '../errors.js';

/** seq and prev_hash of a file's first entry: where a chain continued from deleted files starts. */
async function firstLink(file: string): Promise<VerifyOptions> {
  const lines = createInterface({ input: createReadStream(file, { encoding: 'utf8' }) });
  try {
    for await (const line of lines) {
      try {
        const e = JSON.parse(line) as { seq?: unknown; prev_hash?: unknown };
        if (typeof e.seq === 'number' && typeof e.prev_hash === 'string')
          return { startSeq: e.seq, startPrevHash: e.prev_hash };
      } catch {}
      break; // a malformed first line: the verifier names it
    }
  } finally {
    lines.close();
  }
  return {};
}

export function registerAudit(program: Command): void {
  const audit = program.command('audit').description('Audit trail tools');
  examples(audit, ['$ custody audit verify .custody/audit.log']);

  const verify = audit
    .command('verify')
    .description(
      'Check the hash chain of audit files: names the first edited, removed, inserted or moved line',
    )
    .argument('<files...>', 'the audit file, or rotated files oldest first (JSON lines)')
    .option('--partial', 'the first file continues older files that are gone: start from its first entry')
    .action(async (files: string[], o: { partial?: boolean }, cmd: Command) => {
      for (const file of files) {
        try {
          await stat(file);
        } catch (err) {
          throw new CliError(
            'FileUnreadable',
            `Cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
            'Check the path; the default is <data-dir>/audit.log.',
          );
        }
      }
      const { verifyAuditFile } = await import('../../audit/index.js');
      const out = outputOf(cmd);
      const many = files.length > 1;
      let count = 0;
      let last: Extract<VerifyResult, { ok: true }> | undefined;
      for (const [i, file] of files.entries()) {
        // Each rotated file must continue the previous one exactly (hash and seq).
        const start: VerifyOptions =
          i > 0 && last
            ? { startPrevHash: last.lastHash, startSeq: last.lastSeq + 1 }
            : o.partial
              ? await firstLink(file)
              : {};
        const result = await verifyAuditFile(file, start);
        if (!result.ok) {
          const where = many ? `${file} line ${result.line}` : `line ${result.line}`;
          const hint =
            result.line === 1 && (result.reason === 'removed' || result.reason === 'inserted')
              ? i === 0
                ? ' (if this file continues rotated files, give them first, oldest first, or use --partial)'
                : ' (it does not continue the file before it: check the order)'
              : '';
          out.result(
            many ? { ...result, file } : result,
            `${where}: ${result.reason} — ${result.detail}${hint}`,
          );
          process.exitCode = EXIT_FAILURE;
          return;
        }
        count += result.count;
        last = result;
      }
      if (!many) return out.result(last!, `ok: ${count} entries verified`);
      out.result(
        { ok: true, count, files: files.length, lastSeq: last!.lastSeq, lastHash: last!.lastHash },
        `ok: ${count} entries verified in ${files.length} files`,
      );
    });
  examples(verify, [
    '$ custody audit verify .custody/audit.log',
    '$ custody audit verify audit.log --format json',
    '$ custody audit verify audit.log.2 audit.log.1 audit.log     # rotated files, oldest first',
    '$ custody audit verify --partial audit.log.1 audit.log        # older files were deleted',
    '',
    'Rotation: rename the file, then send the broker SIGHUP (logrotate: postrotate kill -HUP PID);',
    "the new file continues the old one's chain, so verify them together, oldest first.",
  ]);
}
