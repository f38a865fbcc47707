import type { Command } from 'commander';
import * as A from '../args.js';
import { clientOf, collect, examples, outputOf } from '../context.js';
import { usageError } from '../errors.js';

interface TokenInfo {
  accessor: string;
  policies: string[];
  display_name: string;
  identity_id: string | null;
  meta: Record<string, string>;
  created_at: string;
  expires_at: string | null;
  max_expires_at: string | null;
  ttl: number;
  renewable: boolean;
}

const INFO_FIELDS = [
  'accessor',
  'display_name',
  'policies',
  'identity_id',
  'meta',
  'created_at',
  'expires_at',
  'max_expires_at',
  'ttl',
  'renewable',
];

/** `ACCESSOR` or `--self`, exactly one of them (lookup and renew default to self). */
function target(
  accessor: string | undefined,
  self: boolean | undefined,
  selfByDefault: boolean,
): string | null {
  if (accessor && self) throw usageError('Give an accessor or --self, not both');
  if (accessor) return accessor;
  if (self || selfByDefault) return null;
  throw usageError(
    'Give the accessor of the token to revoke, or --self',
    'Example: custody token revoke acc_AbC…',
  );
}

export function registerToken(program: Command): void {
  const token = program.command('token').description('Create, look up, renew and revoke tokens');
  examples(token, [
    '$ custody token create --policy root --ttl 1h',
    '$ custody token lookup',
    '$ custody token revoke acc_AbC…',
  ]);

  const create = token
    .command('create')
    .description('Create a child of the calling token (printed once)')
    .option('--policy <name>', 'a policy for the new token (repeatable; a subset of yours)', collect)
    .option('--ttl <duration>', 'time to live, e.g. 30m, 8h (default 24h)')
    .option('--max-ttl <duration>', 'longest life across renewals (default 32d)')
    .option('--no-renewable', 'the token cannot be renewed')
    .option('--display-name <name>', 'a name shown in lookups and audit entries')
    .option('--meta <key=value>', 'metadata (repeatable)', collect)
    .action(async (o, cmd: Command) => {
      const meta = A.pairs(o.meta, '--meta');
      const body = {
        ...(o.policy ? { policies: o.policy } : {}),
        ...(o.ttl ? { ttl: A.duration(o.ttl, '--ttl') } : {}),
        ...(o.maxTtl ? { max_ttl: A.duration(o.maxTtl, '--max-ttl') } : {}),
        ...(o.renewable === false ? { renewable: false } : {}),
        ...(o.displayName ? { display_name: o.displayName } : {}),
        ...(meta ? { meta } : {}),
      };
      const client = await clientOf(cmd);
      const { body: created } = await client.post<TokenInfo & { token: string }>(
        '/v1/auth/token/create',
        body,
      );
      const out = outputOf(cmd);
      out.object({ ...created }, ['token', ...INFO_FIELDS]);
      if (!out.json)
        out.note(
          'Store the token now: it is not shown again. Revoke it with `custody token revoke <accessor>`.',
        );
    });
  examples(create, [
    '$ custody token create --ttl 8h --display-name ci-job',
    '$ custody token create --policy root --ttl 1h --max-ttl 4h --no-renewable',
    '$ export CUSTODY_TOKEN=$(custody token create --ttl 1h --format json | jq -r .token)',
  ]);

  const lookup = token
    .command('lookup')
    .description('Show a token by accessor, or the calling token')
    .argument('[accessor]', 'the token accessor (acc_…); omit for the calling token')
    .option('--self', 'look up the calling token (the default)')
    .action(async (accessor: string | undefined, o, cmd: Command) => {
      const acc = target(accessor, o.self, true);
      const client = await clientOf(cmd);
      const { body } = acc
        ? await client.post<TokenInfo>('/v1/auth/token/lookup', { accessor: acc })
        : await client.get<TokenInfo>('/v1/auth/token/lookup-self');
      outputOf(cmd).object({ ...body }, INFO_FIELDS);
    });
  examples(lookup, ['$ custody token lookup', '$ custody token lookup acc_AbC…']);

  const renew = token
    .command('renew')
    .description('Extend a token by accessor, or the calling token')
    .argument('[accessor]', 'the token accessor; omit for the calling token')
    .option('--self', 'renew the calling token (the default)')
    .option('--increment <duration>', 'new time to live from now (default: its original ttl)')
    .action(async (accessor: string | undefined, o, cmd: Command) => {
      const acc = target(accessor, o.self, true);
      const increment = o.increment ? A.duration(o.increment, '--increment') : undefined;
      const client = await clientOf(cmd);
      const { body } = acc
        ? await client.post<TokenInfo>('/v1/auth/token/renew', {
            accessor: acc,
            ...(increment ? { increment } : {}),
          })
        : await client.post<TokenInfo>('/v1/auth/token/renew-self', increment ? { increment } : {});
      outputOf(cmd).object({ ...body }, INFO_FIELDS);
    });
  examples(renew, ['$ custody token renew', '$ custody token renew acc_AbC… --increment 2h']);

  const revoke = token
    .command('revoke')
    .description('Revoke a token and every token created from it')
    .argument('[accessor]', 'the token accessor')
    .option('--self', 'revoke the calling token')
    .action(async (accessor: string | undefined, o, cmd: Command) => {
      const acc = target(accessor, o.self, false);
      const client = await clientOf(cmd);
      const { body } = acc
        ? await client.post<{ revoked: number }>('/v1/auth/token/revoke', { accessor: acc })
        : await client.post<{ revoked: number }>('/v1/auth/token/revoke-self');
      outputOf(cmd).result(body, `Revoked ${body.revoked} token${body.revoked === 1 ? '' : 's'}.`);
    });
  examples(revoke, ['$ custody token revoke acc_AbC…', '$ custody token revoke --self']);
}
