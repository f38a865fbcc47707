import type { Command } from 'commander';
import * as A from '../args.js';
import { clientOf, collect, examples, outputOf } from '../context.js';
import { listField } from '../role-options.js';
import { roleUrl } from './api.js';

/** `custody auth role-id|secret-id`: the two halves of an AppRole login. */

interface SecretId {
  secret_id: string;
  secret_id_accessor: string;
  expires_at: string | null;
  uses_left: number | null;
}

export function registerAppRoleCredentials(auth: Command): void {
  const roleId = auth
    .command('role-id')
    .description("Print an AppRole role's role id (not a secret on its own; pair it with a secret id)")
    .argument('<ENV/METHOD/ROLE>', 'the AppRole role')
    .action(async (ref: string, _o, cmd: Command) => {
      const parts = A.ref(ref, 'ENV/METHOD/ROLE', 'prod/approle/trainer');
      const client = await clientOf(cmd);
      const { body } = await client.get<{ role_id: string }>(`${roleUrl(parts)}/role-id`);
      const out = outputOf(cmd);
      if (out.json) return out.printJson(body);
      out.raw(`${body.role_id}\n`);
    });
  examples(roleId, [
    '$ custody auth role-id prod/approle/trainer',
    '$ ROLE_ID=$(custody auth role-id prod/approle/trainer)',
  ]);

  const secretId = auth
    .command('secret-id')
    .description('Issue an AppRole secret id: printed once, store it where the workload can read it')
    .argument('<ENV/METHOD/ROLE>', 'the AppRole role')
    .option('--cidr <cidr>', 'only log in from this network (repeatable)', collect)
    .option('--meta <key=value>', 'metadata copied onto tokens it logs in (repeatable)', collect)
    .action(async (ref: string, o, cmd: Command) => {
      const parts = A.ref(ref, 'ENV/METHOD/ROLE', 'prod/approle/trainer');
      const metadata = A.pairs(o.meta, '--meta');
      const client = await clientOf(cmd);
      const { body } = await client.post<SecretId>(`${roleUrl(parts)}/secret-id`, {
        ...(metadata ? { metadata } : {}),
        ...listField(o.cidr, 'cidrs'),
      });
      const out = outputOf(cmd);
      if (out.json) return out.printJson(body);
      out.raw(`${body.secret_id}\n`);
      out.note(
        `Secret id accessor ${body.secret_id_accessor}; expires ${body.expires_at ?? 'never'}` +
          `${body.uses_left !== null ? `; ${body.uses_left} use(s)` : ''}. It is not shown again.`,
      );
    });
  examples(secretId, [
    '$ custody auth secret-id prod/approle/trainer > secret-id.txt',
    '$ custody auth secret-id prod/approle/trainer --cidr 10.0.0.0/8 --meta job=nightly',
    '$ custody auth secret-id prod/approle/trainer --format json   # secret_id, secret_id_accessor, expires_at',
  ]);
}
