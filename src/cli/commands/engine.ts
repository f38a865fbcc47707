import type { Command } from 'commander';
import { examples } from '../context.js';
import { registerEngineConfig } from '../engine/engine-config.js';
import { registerEngineRoles } from '../engine/engine-roles.js';
import { registerStaticRoles } from '../engine/static-roles.js';

/*
 * `custody engine …`. The subcommands live in src/cli/engine/ (engine config, dynamic roles, static
 * roles, SQL statement files); this file registers them in the order `--help` lists them.
 */

export { splitStatements } from '../engine/statements.js';

export function registerEngine(program: Command): void {
  const engine = program
    .command('engine')
    .description('Secrets engines: database and MLflow backends that mint short-lived credentials');
  examples(engine, [
    '$ custody engine configure prod/warehouse --type postgresql --connection-url postgres://db:5432/app \\',
    '    --username custody_admin --password-file admin.pw',
    "$ custody engine role write prod/warehouse/reader --ttl 1h --grant 'SELECT ON ALL TABLES IN SCHEMA public'",
    '$ custody creds issue prod/warehouse/reader',
  ]);
  registerEngineConfig(engine);
  registerEngineRoles(engine);
  registerStaticRoles(engine);
}
