import type { Command } from 'commander';
import * as A from '../args.js';
import { clientOf, collect, examples, outputOf } from '../context.js';
import { usageError } from '../errors.js';
import type { Column } from '../output.js';

/** Wire shapes of the native API (snake_case, as returned). */
interface Assignment {
  id: string;
  env: string;
  principal_type: string;
  principal_id: string;
  role: string;
  scope: string;
  allow_management: boolean;
  reason: string;
  created_by: string;
  created_at: string;
  expires_at: string | null;
}
interface Role {
  name: string;
  description: string;
  actions: string[];
  builtin: boolean;
}
interface Check {
  allowed: boolean;
  assignment: string | null;
  reason: string | null;
  identity: string;
}
interface Permission {
  action: string;
  scope: string;
  assignment: string;
  via: string;
  expires_at: string | null;
}

const assignmentColumns: Column<Assignment>[] = [
  { header: 'ID', get: (a) => a.id },
  { header: 'PRINCIPAL', get: (a) => `${a.principal_type === 'group' ? 'group:' : ''}${a.principal_id}` },
  { header: 'ROLE', get: (a) => a.role },
  { header: 'SCOPE', get: (a) => a.scope },
  { header: 'MANAGEMENT', get: (a) => a.allow_management },
  { header: 'EXPIRES', get: (a) => a.expires_at },
  { header: 'REASON', get: (a) => a.reason },
];

export function registerAccess(program: Command): void {
  const access = program
    .command('access')
    .description('Role assignments: who may do what, where; and why a request is allowed or denied');
  examples(access, [
    "$ custody access assign prod/trainer secrets-user prod/secrets/db --reason 'nightly training'",
    '$ custody access check prod/trainer secrets/get prod/db/password',
    '$ custody access list prod/trainer',
  ]);

  const assign = access
    .command('assign')
    .description('Assign a role to an identity or group at a scope inside one environment')
    .argument('<PRINCIPAL>', 'an identity id, ENV/NAME, or group:ENV/NAME')
    .argument('<ROLE>', 'a role name (`custody role list`)')
    .argument('<SCOPE>', 'ENV, ENV/secrets/PREFIX or ENV/engines/ENGINE[/ROLE]')
    .requiredOption('--reason <text>', 'why: kept with the assignment and in the audit trail')
    .option('--expires <duration>', 'the assignment ends after this long (e.g. 2h, 30d)')
    .option(
      '--allow-management',
      'let a workload identity use the role’s management actions (write, delete, assign…)',
    )
    .action(async (principal: string, role: string, scope: string, o, cmd: Command) => {
      const body = {
        principal,
        role,
        scope,
        reason: o.reason,
        ...(o.expires !== undefined ? { expires: A.duration(o.expires, '--expires') } : {}),
        ...(o.allowManagement ? { allow_management: true } : {}),
      };
      const client = await clientOf(cmd);
      const { body: a } = await client.post<Assignment>('/v1/access/assignments', body);
      outputOf(cmd).object({ ...a });
    });
  examples(assign, [
    "$ custody access assign prod/trainer secrets-user prod/secrets/db --reason 'reads the DB password'",
    "$ custody access assign group:prod/ml-team credential-user prod/engines/warehouse/reader --reason 'ad-hoc queries'",
    "$ custody access assign id_AbC… secrets-officer prod --reason 'incident 123' --expires 2h",
    "$ custody access assign prod/deployer secrets-officer prod/secrets/app --allow-management --reason 'CD pipeline'",
  ]);

  const revoke = access
    .command('revoke')
    .description('Revoke an assignment')
    .argument('<ASSIGNMENT_ID>', 'the assignment id (`custody access list IDENTITY`)')
    .action(async (id: string, _o, cmd: Command) => {
      const client = await clientOf(cmd);
      const { body } = await client.call<Assignment>(
        'DELETE',
        `/v1/access/assignments/${encodeURIComponent(id)}`,
      );
      outputOf(cmd).result(
        body,
        `Revoked ${body.id}: ${body.role} on ${body.scope} for ${body.principal_id}.`,
      );
    });
  examples(revoke, ['$ custody access revoke asg_AbC…']);

  const check = access
    .command('check')
    .description('Would IDENTITY be allowed ACTION on RESOURCE? Names the assignment that allows it')
    .argument('<IDENTITY>', 'an identity id or ENV/NAME')
    .argument('<ACTION>', 'e.g. secrets/get, leases/issue, engines/manage')
    .argument('<RESOURCE>', 'ENV/SECRET for secrets/*, ENV/ENGINE/ROLE for leases/*, ENV for the rest')
    .action(async (identity: string, action: string, resource: string, _o, cmd: Command) => {
      const client = await clientOf(cmd);
      const { body } = await client.post<Check>('/v1/access/check', { identity, action, resource });
      const out = outputOf(cmd);
      if (out.json) return out.printJson(body);
      out.raw(
        body.allowed
          ? `allow (assignment ${body.assignment ?? '-'})\n`
          : `deny (${body.reason ?? 'no assignment grants it'})\n`,
      );
    });
  examples(check, [
    '$ custody access check prod/trainer secrets/get prod/db/password',
    '$ custody access check prod/trainer leases/issue prod/warehouse/reader',
    '$ [ "$(custody access check prod/ci secrets/set prod/app/key | cut -d" " -f1)" = allow ]',
    '',
    'The decision is the first word on stdout: allow or deny. The exit code is 0 for both when the',
    'query worked (1 only when it failed, e.g. an unknown identity); json: allowed, assignment, reason.',
  ]);

  const list = access
    .command('list')
    .description('Effective permissions of an identity, with the assignment behind each')
    .argument('[IDENTITY]', 'an identity id or ENV/NAME')
    .option('--assignments <ENV>', 'list the raw assignments of ENV instead (of IDENTITY only, when given)')
    .action(async (identity: string | undefined, o, cmd: Command) => {
      const client = await clientOf(cmd);
      const out = outputOf(cmd);
      if (o.assignments !== undefined) {
        const env = A.envName(o.assignments);
        const { body } = await client.get<{ items: Assignment[] }>('/v1/access/assignments', {
          query: { env, principal: identity },
        });
        return out.list(
          body,
          body.items,
          assignmentColumns,
          `No assignments in ${env}${identity ? ` for ${identity}` : ''}.`,
        );
      }
      if (identity === undefined) {
        throw usageError(
          'Name the identity, or give --assignments ENV',
          'Example: custody access list prod/trainer',
        );
      }
      const { body } = await client.get<{ identity: string; items: Permission[] }>('/v1/access/effective', {
        query: { identity },
      });
      out.list(
        body,
        body.items,
        [
          { header: 'ACTION', get: (p) => p.action },
          { header: 'SCOPE', get: (p) => p.scope },
          { header: 'ASSIGNMENT', get: (p) => p.assignment },
          { header: 'VIA', get: (p) => p.via },
          { header: 'EXPIRES', get: (p) => p.expires_at },
        ],
        `${identity} has no permissions.`,
      );
    });
  examples(list, [
    '$ custody access list prod/trainer                       # effective permissions and their sources',
    '$ custody access list --assignments prod                 # every assignment in prod',
    '$ custody access list prod/trainer --assignments prod    # the assignments naming prod/trainer',
  ]);
}

export function registerRole(program: Command): void {
  const role = program.command('role').description('Roles: named sets of actions that assignments grant');
  examples(role, [
    '$ custody role list',
    '$ custody role create model-publisher --action secrets/get --action secrets/set',
  ]);

  const list = role
    .command('list')
    .description('List built-in and custom roles')
    .action(async (_o, cmd: Command) => {
      const client = await clientOf(cmd);
      const { body } = await client.get<{ items: Role[] }>('/v1/roles');
      outputOf(cmd).list(body, body.items, [
        { header: 'NAME', get: (r) => r.name },
        { header: 'BUILTIN', get: (r) => r.builtin },
        { header: 'DESCRIPTION', get: (r) => r.description },
        { header: 'ACTIONS', get: (r) => r.actions },
      ]);
    });
  examples(list, ['$ custody role list', '$ custody role list --format json']);

  const show = role
    .command('show')
    .description('Show a role and its actions')
    .argument('<NAME>', 'the role')
    .action(async (name: string, _o, cmd: Command) => {
      const client = await clientOf(cmd);
      const { body } = await client.get<Role>(`/v1/roles/${encodeURIComponent(name)}`);
      outputOf(cmd).object({ ...body });
    });
  examples(show, ['$ custody role show secrets-user']);

  const create = role
    .command('create')
    .description('Create a custom role from actions')
    .argument('<NAME>', 'the role name')
    .option('--action <action>', 'an action the role grants (repeatable), e.g. secrets/get', collect)
    .option('--description <text>', 'what the role is for')
    .action(async (name: string, o, cmd: Command) => {
      if (!o.action?.length) {
        throw usageError(
          'A role needs at least one --action',
          'Example: --action secrets/get --action secrets/list',
        );
      }
      const client = await clientOf(cmd);
      const { body } = await client.post<Role>('/v1/roles', {
        name,
        actions: o.action,
        ...(o.description !== undefined ? { description: o.description } : {}),
      });
      outputOf(cmd).object({ ...body });
    });
  examples(create, [
    "$ custody role create model-publisher --action secrets/get --action secrets/set --description 'push model keys'",
    '$ custody role create lease-reader --action leases/issue',
  ]);
}
