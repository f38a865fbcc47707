import type { Command } from 'commander';
import * as A from '../args.js';
import { clientOf, examples, outputOf } from '../context.js';

/** Wire shapes of the native API (snake_case, as returned). */
interface Identity {
  id: string;
  env: string;
  kind: string;
  name: string;
  auth_method: string;
  login_role: string;
  metadata: Record<string, string>;
  groups?: string[];
  created_at: string;
  last_login_at: string;
}
interface Group {
  id: string;
  env: string;
  name: string;
  created_at: string;
  members?: string[];
}

const groupUrl = (env: string, name: string) =>
  `/v1/groups/${encodeURIComponent(env)}/${encodeURIComponent(name)}`;
/** `ENV/NAME` of a group; the name may hold `:` `@` `.` but no `/`. */
const groupRef = (ref: string) => A.ref(ref, 'ENV/NAME', 'prod/ml-team');

export function registerIdentity(program: Command): void {
  const identity = program
    .command('identity')
    .description('Identities: the workloads and users that logins resolve to');
  examples(identity, ['$ custody identity list prod', '$ custody identity show prod/trainer']);

  const list = identity
    .command('list')
    .description('List the identities of an environment (they appear after their first login)')
    .argument('<ENV>', 'the environment')
    .action(async (env: string, _o, cmd: Command) => {
      A.envName(env);
      const client = await clientOf(cmd);
      const { body } = await client.get<{ items: Identity[] }>('/v1/identities', { query: { env } });
      outputOf(cmd).list(
        body,
        body.items,
        [
          { header: 'ID', get: (i) => i.id },
          { header: 'NAME', get: (i) => i.name },
          { header: 'KIND', get: (i) => i.kind },
          { header: 'METHOD', get: (i) => i.auth_method },
          { header: 'ROLE', get: (i) => i.login_role },
          { header: 'LAST LOGIN', get: (i) => i.last_login_at },
        ],
        `No identities in ${env} yet: they appear after their first login.`,
      );
    });
  examples(list, ['$ custody identity list prod', '$ custody identity list prod --format json']);

  const show = identity
    .command('show')
    .description('Show an identity, its metadata and groups')
    .argument(
      '<REF>',
      'an identity id, ENV/NAME, or ENV/METHOD/NAME when a name exists under several methods',
    )
    .action(async (ref: string, _o, cmd: Command) => {
      const client = await clientOf(cmd);
      const { body } = await client.get<Identity>(`/v1/identities/${encodeURIComponent(ref)}`);
      outputOf(cmd).object({ ...body, groups: body.groups ?? [] });
    });
  examples(show, [
    '$ custody identity show prod/trainer',
    '$ custody identity show prod/approle/trainer',
    '$ custody identity show id_AbC… --format json',
  ]);
}

export function registerGroup(program: Command): void {
  const group = program
    .command('group')
    .description('Groups of identities: assign roles once, to every member');
  examples(group, [
    '$ custody group create prod/ml-team',
    '$ custody group add prod/ml-team prod/trainer',
    "$ custody access assign group:prod/ml-team secrets-user prod/secrets/ml --reason 'team secrets'",
  ]);

  const create = group
    .command('create')
    .description('Create a group')
    .argument('<ENV/NAME>', 'the group, e.g. prod/ml-team')
    .action(async (ref: string, _o, cmd: Command) => {
      const [env, name] = groupRef(ref);
      const client = await clientOf(cmd);
      const { body } = await client.post<Group>('/v1/groups', { env, name });
      outputOf(cmd).object({ ...body });
    });
  examples(create, ['$ custody group create prod/ml-team']);

  const list = group
    .command('list')
    .description('List the groups of an environment')
    .argument('<ENV>', 'the environment')
    .action(async (env: string, _o, cmd: Command) => {
      A.envName(env);
      const client = await clientOf(cmd);
      const { body } = await client.get<{ items: Group[] }>('/v1/groups', { query: { env } });
      outputOf(cmd).list(
        body,
        body.items,
        [
          { header: 'NAME', get: (g) => g.name },
          { header: 'ID', get: (g) => g.id },
          { header: 'CREATED', get: (g) => g.created_at },
        ],
        `No groups in ${env}.`,
      );
    });
  examples(list, ['$ custody group list prod']);

  const show = group
    .command('show')
    .description('Show a group and its members')
    .argument('<ENV/NAME>', 'the group')
    .action(async (ref: string, _o, cmd: Command) => {
      const [env, name] = groupRef(ref);
      const client = await clientOf(cmd);
      const { body } = await client.get<Group>(groupUrl(env, name));
      outputOf(cmd).object({ ...body, members: body.members ?? [] });
    });
  examples(show, ['$ custody group show prod/ml-team']);

  const add = group
    .command('add')
    .description('Add an identity to a group')
    .argument('<ENV/NAME>', 'the group')
    .argument('<IDENTITY>', 'an identity id or ENV/NAME')
    .action(async (ref: string, identity: string, _o, cmd: Command) => {
      const [env, name] = groupRef(ref);
      const client = await clientOf(cmd);
      const { body } = await client.call<Group>('PUT', `${groupUrl(env, name)}/members`, {
        body: { identity },
      });
      outputOf(cmd).object({ ...body, members: body.members ?? [] });
    });
  examples(add, ['$ custody group add prod/ml-team prod/trainer']);

  const remove = group
    .command('remove')
    .description('Remove an identity from a group')
    .argument('<ENV/NAME>', 'the group')
    .argument('<IDENTITY>', 'an identity id or ENV/NAME')
    .action(async (ref: string, identity: string, _o, cmd: Command) => {
      const [env, name] = groupRef(ref);
      const client = await clientOf(cmd);
      const { body } = await client.call<Group>('DELETE', `${groupUrl(env, name)}/members`, {
        body: { identity },
      });
      outputOf(cmd).object({ ...body, members: body.members ?? [] });
    });
  examples(remove, ['$ custody group remove prod/ml-team prod/trainer']);

  const del = group
    .command('delete')
    .description('Delete a group and the assignments made to it')
    .argument('<ENV/NAME>', 'the group')
    .action(async (ref: string, _o, cmd: Command) => {
      const [env, name] = groupRef(ref);
      const client = await clientOf(cmd);
      await client.call('DELETE', groupUrl(env, name));
      outputOf(cmd).result(
        { env, name, deleted: true },
        `Deleted the group ${env}/${name} and its assignments.`,
      );
    });
  examples(del, ['$ custody group delete prod/ml-team']);
}
