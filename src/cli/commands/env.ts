import type { Command } from 'commander';
import * as A from '../args.js';
import { clientOf, examples, outputOf } from '../context.js';

interface Environment {
  name: string;
  retention_days: number;
  purge_protection: boolean;
  created_at: string;
  updated_at: string;
}

const envUrl = (name: string) => `/v1/envs/${encodeURIComponent(name)}`;

export function registerEnv(program: Command): void {
  const env = program.command('env').description('Environments: the boundary every secret belongs to');
  examples(env, ['$ custody env create prod --purge-protection', '$ custody env list']);

  const create = env
    .command('create')
    .description('Create an environment')
    .argument('<name>', 'lower-case letters, digits, dashes: dev, test, prod, team-a-prod')
    .option('--retention-days <n>', 'days a deleted secret stays recoverable (7-90, default 90)')
    .option('--purge-protection', 'deleted secrets cannot be purged before retention ends (cannot be undone)')
    .action(async (name: string, o, cmd: Command) => {
      A.envName(name);
      const body = {
        name,
        ...(o.retentionDays !== undefined
          ? { retention_days: A.integer(o.retentionDays, '--retention-days', 1) }
          : {}),
        ...(o.purgeProtection ? { purge_protection: true } : {}),
      };
      const client = await clientOf(cmd);
      const { body: created } = await client.post<Environment>('/v1/envs', body);
      outputOf(cmd).object({ ...created });
    });
  examples(create, [
    '$ custody env create dev',
    '$ custody env create prod --retention-days 30 --purge-protection',
  ]);

  const list = env
    .command('list')
    .description('List environments')
    .action(async (_o, cmd: Command) => {
      const client = await clientOf(cmd);
      const { body } = await client.get<{ items: Environment[] }>('/v1/envs');
      outputOf(cmd).list(
        body,
        body.items,
        [
          { header: 'NAME', get: (e) => e.name },
          { header: 'RETENTION DAYS', get: (e) => e.retention_days },
          { header: 'PURGE PROTECTION', get: (e) => e.purge_protection },
          { header: 'CREATED', get: (e) => e.created_at },
        ],
        'No environments yet: create one with `custody env create NAME`.',
      );
    });
  examples(list, ['$ custody env list', '$ custody env list --format json']);

  const show = env
    .command('show')
    .description('Show an environment')
    .argument('<name>', 'the environment')
    .action(async (name: string, _o, cmd: Command) => {
      A.envName(name);
      const client = await clientOf(cmd);
      const { body } = await client.get<Environment>(envUrl(name));
      outputOf(cmd).object({ ...body });
    });
  examples(show, ['$ custody env show prod']);

  const protect = env
    .command('protect')
    .description('Turn purge protection on (it cannot be turned off)')
    .argument('<name>', 'the environment')
    .action(async (name: string, _o, cmd: Command) => {
      A.envName(name);
      const client = await clientOf(cmd);
      const { body } = await client.call<Environment>('PATCH', envUrl(name), {
        body: { purge_protection: true },
      });
      const out = outputOf(cmd);
      out.object({ ...body });
      if (!out.json)
        out.note(
          `Purge protection is on for ${name}: deleted secrets stay recoverable until retention ends.`,
        );
    });
  examples(protect, ['$ custody env protect prod']);
}
