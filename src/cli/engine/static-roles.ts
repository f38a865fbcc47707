import type { Command } from 'commander';
import * as A from '../args.js';
import { clientOf, examples, outputOf } from '../context.js';
import { showSettings } from '../role-options.js';
import { type EngineRole, roleRows, roleUrl } from './api.js';

/** `custody engine static-role write|rotate`: existing users whose password Custody owns. */

export function registerStaticRoles(engine: Command): void {
  const staticRole = engine
    .command('static-role')
    .description('Static roles: an existing user whose password Custody sets and rotates');
  examples(staticRole, [
    '$ custody engine static-role write prod/warehouse/etl --username etl --rotation-period 24h',
    '$ custody creds static prod/warehouse/etl',
  ]);

  const write = staticRole
    .command('write')
    .description('Take ownership of an existing user: its password is changed now and every period')
    .argument('<ENV/ENGINE/ROLE>', 'the static role')
    .requiredOption('--username <user>', 'the existing database user')
    .requiredOption('--rotation-period <duration>', 'how often the password changes (at least 60s), e.g. 24h')
    .action(async (ref: string, o, cmd: Command) => {
      const parts = A.ref(ref, 'ENV/ENGINE/ROLE', 'prod/warehouse/etl');
      const body = {
        username: o.username,
        rotation_period: A.duration(o.rotationPeriod, '--rotation-period'),
      };
      const client = await clientOf(cmd);
      const { body: saved } = await client.call<EngineRole>('PUT', roleUrl(parts, 'static-roles'), { body });
      const out = outputOf(cmd);
      showSettings(out, saved, roleRows);
      if (!out.json)
        out.note(
          `The password of ${o.username} is now Custody's: read it with \`custody creds static ${parts.join('/')}\`.`,
        );
    });
  examples(write, [
    '$ custody engine static-role write prod/warehouse/etl --username etl --rotation-period 24h',
  ]);

  const rotate = staticRole
    .command('rotate')
    .description("Rotate a static role's password now")
    .argument('<ENV/ENGINE/ROLE>', 'the static role')
    .action(async (ref: string, _o, cmd: Command) => {
      const parts = A.ref(ref, 'ENV/ENGINE/ROLE', 'prod/warehouse/etl');
      const client = await clientOf(cmd);
      const { body } = await client.post<EngineRole>(`${roleUrl(parts, 'static-roles')}/rotate`);
      showSettings(outputOf(cmd), body, roleRows);
    });
  examples(rotate, ['$ custody engine static-role rotate prod/warehouse/etl']);
}
