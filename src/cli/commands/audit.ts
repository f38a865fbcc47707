import { stat } from 'node:fs/promises';
import type { Command } from 'commander';
import { examples, outputOf } from '../context.js';
import { CliError, EXIT_FAILURE } from '../errors.js';

export function registerAudit(program: Command): void {
  const audit = program.command('audit').description('Audit trail tools');
  examples(audit, ['$ custody audit verify .custody/audit.log']);

  const verify = audit
    .command('verify')
    .description(
      'Check the hash chain of an audit file: names the first edited, removed, inserted or moved line',
    )
    .argument('<file>', 'the audit file (JSON lines)')
    .action(async (file: string, _o, cmd: Command) => {
      try {
        await stat(file);
      } catch (err) {
        throw new CliError(
          'FileUnreadable',
          `Cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
          'Check the path; the default is <data-dir>/audit.log.',
        );
      }
      const { verifyAuditFile } = await import('../../audit/index.js');
      const result = await verifyAuditFile(file);
      const out = outputOf(cmd);
      if (result.ok) return out.result(result, `ok: ${result.count} entries verified`);
      out.result(result, `line ${result.line}: ${result.reason} — ${result.detail}`);
      process.exitCode = EXIT_FAILURE;
    });
  examples(verify, [
    '$ custody audit verify .custody/audit.log',
    '$ custody audit verify audit.log --format json',
  ]);
}
