import { randomBytes } from 'node:crypto';
import type { Selectable } from 'kysely';
import type { IdentityService } from '../auth/identity-service.js';
import type { TokenInfo } from '../auth/token-service.js';
import { ROOT_POLICY } from '../auth/token-service.js';
import { badRequest, CustodyError, conflict, forbidden, notFound } from '../errors.js';
import type { Storage } from '../storage/storage.js';
import type { AssignmentTable, RoleTable } from '../storage/tables.js';
import { ACTIONS, BUILTIN_ROLES, isAction, MANAGEMENT_ACTIONS } from './actions.js';
import type { Authorizer, Decision } from './authorizer.js';
import { covers, formatScope, parseScope, resourceScope, type Scope } from './scope.js';

export interface Role {
  name: string;
  description: string;
  actions: string[];
  builtin: boolean;
}

export interface Assignment {
  id: string;
  env: string;
  principalType: 'identity' | 'group';
  principalId: string;
  role: string;
  scope: Scope;
  allowManagement: boolean;
  reason: string;
  createdBy: string;
  createdAt: number;
  expiresAt: number | null;
}

export interface AssignInput {
  /** Identity id or ENV/NAME, or a group as `group:ENV/NAME` or `group:ID`. */
  principal: string;
  role: string;
  scope: string;
  reason: string;
  expiresInSeconds?: number;
  allowManagement?: boolean;
}

export interface EffectivePermission {
  action: string;
  scope: string;
  assignment: string;
  via: string;
  expiresAt: number | null;
}

/** Roles, assignments, guardrails and the decisions built on them. */
export interface AccessService extends Authorizer {
  seedBuiltinRoles(): Promise<void>;
  listRoles(): Promise<Role[]>;
  getRole(name: string): Promise<Role>;
  createRole(input: { name: string; actions: string[]; description?: string }): Promise<Role>;
  assign(caller: TokenInfo, input: AssignInput): Promise<Assignment>;
  revoke(caller: TokenInfo, id: string): Promise<Assignment>;
  listAssignments(filter: { env?: string; principalId?: string }): Promise<Assignment[]>;
  /** Would this identity be allowed? Names the assignment that grants it. */
  check(identityRef: string, action: string, resource: string): Promise<Decision & { identity: string }>;
  effective(identityRef: string): Promise<EffectivePermission[]>;
}

const ROLE_NAME = /^[a-z][a-z0-9-]{1,63}$/;
const ID_RE = /^asg_[A-Za-z0-9_-]{10,40}$/;

export function createAccessService(storage: Storage, identities: IdentityService): AccessService {
  const { db } = storage;
  const toRole = (r: Selectable<RoleTable>): Role => ({
    name: r.name,
    description: r.description,
    actions: JSON.parse(r.actions) as string[],
    builtin: r.builtin === 1,
  });
  const toAssignment = (r: Selectable<AssignmentTable>): Assignment => ({
    id: r.id,
    env: r.env,
    principalType: r.principal_type,
    principalId: r.principal_id,
    role: r.role,
    scope: { env: r.env, kind: r.scope_kind, path: r.scope_path },
    allowManagement: r.allow_management === 1,
    reason: r.reason,
    createdBy: r.created_by,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
  });

  async function getRole(name: string): Promise<Role> {
    const r = await db.selectFrom('roles').selectAll().where('name', '=', name).executeTakeFirst();
    if (!r) throw notFound('RoleNotFound', `No role ${name}`, 'List roles with `custody role list`.');
    return toRole(r);
  }

  /** Live assignments of an identity (directly and through its groups) in one environment, with their roles. */
  async function grantsOf(identityId: string, env: string, now = Date.now()) {
    const principals = [identityId, ...(await identities.groupIdsOf(identityId))];
    const rows = await db
      .selectFrom('assignments as a')
      .innerJoin('roles as r', 'r.name', 'a.role')
      .selectAll('a')
      .select('r.actions')
      .where('a.principal_id', 'in', principals)
      .where('a.env', '=', env)
      .where((eb) => eb.or([eb('a.expires_at', 'is', null), eb('a.expires_at', '>', now)]))
      .execute();
    return rows.map((r) => ({ assignment: toAssignment(r), actions: JSON.parse(r.actions) as string[] }));
  }

  /** The first live assignment granting `action` on `target` to the identity, or null. */
  async function grantFor(
    identityId: string,
    kind: string,
    action: string,
    target: Scope,
  ): Promise<string | null> {
    for (const { assignment, actions } of await grantsOf(identityId, target.env)) {
      if (!actions.includes(action) || !covers(assignment.scope, action, target)) continue;
      // Defence in depth: a workload never exercises management actions without the explicit flag.
      if (kind === 'workload' && MANAGEMENT_ACTIONS.has(action) && !assignment.allowManagement) continue;
      return assignment.id;
    }
    return null;
  }

  async function decide(caller: TokenInfo, action: string, resource: string): Promise<Decision> {
    if (caller.policies.includes(ROOT_POLICY)) return { allowed: true, source: 'policy:root' };
    if (SELF_ACTIONS.has(action)) return { allowed: true, source: 'self' };
    if (action === 'roles/read' && caller.identityId) return { allowed: true, source: 'any-identity' };
    const alternatives = ANY_OF[action];
    if (alternatives) {
      for (const a of alternatives) {
        const d = await decide(caller, a, resource);
        if (d.allowed) return d;
      }
      return { allowed: false, source: null, reason: `needs one of ${alternatives.join(', ')}` };
    }
    const target = resourceScope(action, resource);
    if (!target || (!isAction(action) && action !== 'env/read'))
      return deny('broker-wide operations need the root token');
    return decideAt(caller, action, target);
  }

  async function decideAt(caller: TokenInfo, action: string, target: Scope): Promise<Decision> {
    if (caller.policies.includes(ROOT_POLICY)) return { allowed: true, source: 'policy:root' };
    if (!caller.identityId) return deny('this token speaks for no identity and holds no root policy');
    if (caller.env !== target.env)
      return deny(`the token belongs to environment ${caller.env}, not ${target.env}`);
    // Anyone logged in to an environment may see that environment's own settings.
    if (action === 'env/read') return { allowed: true, source: 'own-environment' };
    const subject = await identities.get(caller.identityId);
    const granted = await grantFor(subject.id, subject.kind, action, target);
    if (!granted) return deny('no assignment grants this action at this scope');
    if (!caller.actorIdentityId) return { allowed: true, source: granted };
    // On behalf of a user: the job may do only what both the user and the job may do.
    const actor = await identities.get(caller.actorIdentityId);
    const actorGrant = await grantFor(actor.id, actor.kind, action, target);
    if (!actorGrant) return deny(`the acting workload ${actor.name} is not allowed this itself`);
    return { allowed: true, source: `${granted}&${actorGrant}` };
  }

  async function resolvePrincipal(
    ref: string,
  ): Promise<{ type: 'identity' | 'group'; id: string; env: string; workload: boolean; members: string[] }> {
    if (ref.startsWith('group:')) {
      const g = await identities.getGroup(ref.slice(6));
      const members = await identities.members(g.id);
      // A group may hold workloads now or later: treat it as one for the management guardrail.
      return { type: 'group', id: g.id, env: g.env, workload: true, members: members.map((m) => m.id) };
    }
    const i = await identities.resolve(ref);
    return { type: 'identity', id: i.id, env: i.env, workload: i.kind === 'workload', members: [i.id] };
  }

  return {
    authorize: decide,

    async seedBuiltinRoles() {
      const now = Date.now();
      for (const r of BUILTIN_ROLES) {
        const actions = JSON.stringify(r.actions);
        await db
          .insertInto('roles')
          .values({ name: r.name, description: r.description, actions, builtin: 1, created_at: now })
          .onConflict((oc) =>
            oc.column('name').doUpdateSet({ description: r.description, actions, builtin: 1 }),
          )
          .execute();
      }
    },

    async listRoles() {
      return (
        await db.selectFrom('roles').selectAll().orderBy('builtin', 'desc').orderBy('name').execute()
      ).map(toRole);
    },

    getRole,

    async createRole({ name, actions, description = '' }) {
      if (!ROLE_NAME.test(name))
        throw badRequest(
          'InvalidRoleName',
          'A role name is 2-64 lower-case letters, digits or dashes',
          'Example: feature-store-reader.',
        );
      const unknown = actions.filter((a) => !isAction(a));
      if (actions.length === 0 || unknown.length > 0) {
        throw badRequest(
          'InvalidAction',
          `Unknown or missing actions: ${unknown.join(', ') || '(none given)'}`,
          `Actions: ${ACTIONS.join(', ')}.`,
        );
      }
      const res = await db
        .insertInto('roles')
        .values({
          name,
          description,
          actions: JSON.stringify([...new Set(actions)].sort()),
          builtin: 0,
          created_at: Date.now(),
        })
        .onConflict((oc) => oc.column('name').doNothing())
        .executeTakeFirst();
      if (Number(res.numInsertedOrUpdatedRows ?? 0) === 0)
        throw conflict('RoleExists', `Role ${name} already exists`, 'Pick another name.');
      return getRole(name);
    },

    async assign(caller, input) {
      if (!input.reason?.trim())
        throw badRequest(
          'ReasonRequired',
          'Every assignment needs a reason',
          'Add --reason "ticket ML-123: training job reads feature store".',
        );
      const scope = parseScope(input.scope);
      const role = await getRole(input.role);
      const principal = await resolvePrincipal(input.principal);
      if (principal.env !== scope.env) {
        throw badRequest(
          'CrossEnvironment',
          `The principal lives in ${principal.env}; the scope is in ${scope.env}`,
          'Assignments never cross environments.',
        );
      }
      const env = await db
        .selectFrom('environments')
        .select('name')
        .where('name', '=', scope.env)
        .executeTakeFirst();
      if (!env)
        throw notFound(
          'EnvironmentNotFound',
          `Environment ${scope.env} does not exist`,
          'See `custody env list`.',
        );
      for (const a of role.actions) {
        if (scope.kind !== 'env' && !covers(scope, a, scope)) {
          throw badRequest(
            'ScopeMismatch',
            `Role ${role.name} grants ${a}, which a ${scope.kind} scope cannot hold`,
            'Use an environment scope, or a role whose actions fit the scope.',
          );
        }
      }
      const management = role.actions.filter((a) => MANAGEMENT_ACTIONS.has(a));
      if (principal.workload && management.length > 0 && !input.allowManagement) {
        throw new CustodyError(
          'ManagementNotAllowed',
          403,
          `Role ${role.name} carries management actions (${management.join(', ')}) and the principal is (or may contain) a workload`,
          'Assign a narrower role, or pass --allow-management if a job really must manage this.',
        );
      }
      const isRoot = caller.policies.includes(ROOT_POLICY);
      if (!isRoot) {
        if (!caller.identityId) throw forbidden('Only identities or the root token assign roles');
        if (principal.members.includes(caller.identityId) || principal.id === caller.identityId) {
          throw forbidden(
            'Nobody assigns a role to themselves (or to a group they belong to)',
            'Ask another access administrator.',
          );
        }
        for (const a of ['access/assign', ...role.actions]) {
          const d = await decideAt(caller, a, scope);
          if (!d.allowed) {
            throw forbidden(
              `You cannot grant ${a} at ${formatScope(scope)}: you do not hold it there`,
              'Nobody grants beyond what they hold.',
            );
          }
        }
      }
      const ttl = input.expiresInSeconds;
      if (ttl !== undefined && (!Number.isInteger(ttl) || ttl < 60))
        throw badRequest(
          'InvalidDuration',
          'An assignment lasts at least 60 seconds',
          'Example: --expires 8h.',
        );
      const now = Date.now();
      const row = {
        id: `asg_${randomBytes(12).toString('base64url')}`,
        env: scope.env,
        principal_type: principal.type,
        principal_id: principal.id,
        role: role.name,
        scope_kind: scope.kind,
        scope_path: scope.path,
        allow_management: input.allowManagement ? 1 : 0,
        reason: input.reason.trim().slice(0, 512),
        created_by: isRoot ? `root:${caller.accessor}` : caller.identityId!,
        created_at: now,
        expires_at: ttl === undefined ? null : now + ttl * 1000,
      };
      await db.insertInto('assignments').values(row).execute();
      return toAssignment(row);
    },

    async revoke(caller, id) {
      if (!ID_RE.test(id))
        throw badRequest(
          'InvalidAssignmentId',
          'Assignment ids look like asg_…',
          'See `custody access list`.',
        );
      const row = await db.selectFrom('assignments').selectAll().where('id', '=', id).executeTakeFirst();
      if (!row)
        throw notFound('AssignmentNotFound', `No assignment ${id}`, 'It may have been revoked already.');
      const a = toAssignment(row);
      if (!caller.policies.includes(ROOT_POLICY)) {
        const d = await decideAt(caller, 'access/assign', a.scope);
        if (!d.allowed) throw forbidden(`You cannot revoke assignments at ${formatScope(a.scope)}`);
      }
      await db.deleteFrom('assignments').where('id', '=', id).execute();
      return a;
    },

    async listAssignments({ env, principalId }) {
      let q = db.selectFrom('assignments').selectAll().orderBy('created_at');
      if (env) q = q.where('env', '=', env);
      if (principalId) q = q.where('principal_id', '=', principalId);
      return (await q.execute()).map(toAssignment);
    },

    async check(identityRef, action, resource) {
      const identity = await identities.resolve(identityRef);
      if (!isAction(action))
        throw badRequest('InvalidAction', `${action} is not an action`, `Actions: ${ACTIONS.join(', ')}.`);
      const target = resourceScope(action, resource);
      if (!target)
        throw badRequest(
          'InvalidResource',
          'The resource starts with its environment',
          'Example: prod/db/password.',
        );
      if (target.env !== identity.env) {
        return {
          allowed: false,
          source: null,
          reason: `the identity lives in ${identity.env}, not ${target.env}`,
          identity: identity.id,
        };
      }
      const granted = await grantFor(identity.id, identity.kind, action, target);
      return granted
        ? { allowed: true, source: granted, identity: identity.id }
        : {
            allowed: false,
            source: null,
            reason: 'no assignment grants this action at this scope',
            identity: identity.id,
          };
    },

    async effective(identityRef) {
      const identity = await identities.resolve(identityRef);
      const groups = new Map((await identities.groupsOf(identity.id)).map((g) => [g.id, g.name]));
      const out: EffectivePermission[] = [];
      for (const { assignment, actions } of await grantsOf(identity.id, identity.env)) {
        for (const action of actions) {
          if (identity.kind === 'workload' && MANAGEMENT_ACTIONS.has(action) && !assignment.allowManagement)
            continue;
          out.push({
            action,
            scope: formatScope(assignment.scope),
            assignment: assignment.id,
            via:
              assignment.principalType === 'group'
                ? `group:${groups.get(assignment.principalId) ?? assignment.principalId}`
                : 'direct',
            expiresAt: assignment.expiresAt,
          });
        }
      }
      return out.sort((a, b) => a.scope.localeCompare(b.scope) || a.action.localeCompare(b.action));
    },
  };
}

const deny = (reason: string): Decision => ({ allowed: false, source: null, reason });
/** What any valid token may do about itself (a job's notice is about its own run). */
const SELF_ACTIONS = new Set([
  'token/lookup-self',
  'token/renew-self',
  'token/revoke-self',
  'audit/notice-self',
]);
/** Read-only views granted by any one of several actions. */
const ANY_OF: Record<string, string[]> = {
  'identities/read': ['access/assign', 'audit/read'],
  'leases/read': ['leases/revoke', 'audit/read'],
};
