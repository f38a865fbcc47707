import { randomUUID } from 'node:crypto';
import type { Selectable } from 'kysely';
import { badRequest, conflict, notFound } from '../errors.js';
import type { Storage } from '../storage/storage.js';
import type { IdentityTable } from '../storage/tables.js';

export type IdentityKind = 'workload' | 'user';

export interface Identity {
  id: string;
  env: string;
  kind: IdentityKind;
  name: string;
  authMethod: string;
  loginRole: string;
  metadata: Record<string, string>;
  createdAt: number;
  lastLoginAt: number;
}

export interface Group {
  id: string;
  env: string;
  name: string;
  createdAt: number;
}

export interface LoginSubject {
  env: string;
  authMethod: string;
  loginRole: string;
  kind: IdentityKind;
  name: string;
  metadata: Record<string, string>;
  /** Group names from the token's groups claim; membership is re-synced at every login. */
  claimGroups?: string[];
}

/** Identities (who a token speaks for) and groups, per environment. */
export interface IdentityService {
  /** Finds or creates the identity a login resolves to, refreshes its metadata and claim groups. */
  upsertFromLogin(subject: LoginSubject): Promise<Identity>;
  get(id: string): Promise<Identity>;
  /** Resolves `ID` or `ENV/NAME` (or `ENV/METHOD/NAME` when a name exists under several methods). */
  resolve(ref: string): Promise<Identity>;
  list(env: string): Promise<Identity[]>;
  groupIdsOf(identityId: string): Promise<string[]>;
  groupsOf(identityId: string): Promise<Group[]>;
  createGroup(env: string, name: string): Promise<Group>;
  getGroup(ref: string): Promise<Group>;
  listGroups(env: string): Promise<Group[]>;
  deleteGroup(id: string): Promise<void>;
  addMember(groupId: string, identityId: string): Promise<void>;
  removeMember(groupId: string, identityId: string): Promise<void>;
  members(groupId: string): Promise<Identity[]>;
}

const GROUP_RE = /^[A-Za-z0-9_][A-Za-z0-9_.:@-]{0,127}$/;

export function createIdentityService(storage: Storage): IdentityService {
  const { db } = storage;
  const toIdentity = (r: Selectable<IdentityTable>): Identity => ({
    id: r.id,
    env: r.env,
    kind: r.kind,
    name: r.name,
    authMethod: r.auth_method,
    loginRole: r.login_role,
    metadata: JSON.parse(r.metadata) as Record<string, string>,
    createdAt: r.created_at,
    lastLoginAt: r.last_login_at,
  });
  const toGroup = (r: { id: string; env: string; name: string; created_at: number }): Group => ({
    id: r.id,
    env: r.env,
    name: r.name,
    createdAt: r.created_at,
  });

  async function get(id: string): Promise<Identity> {
    const r = await db.selectFrom('identities').selectAll().where('id', '=', id).executeTakeFirst();
    if (!r)
      throw notFound(
        'IdentityNotFound',
        `No identity ${id}`,
        'List identities with `custody identity list ENV`.',
      );
    return toIdentity(r);
  }

  async function getGroup(ref: string): Promise<Group> {
    const slash = ref.indexOf('/');
    let q = db.selectFrom('groups').selectAll();
    q =
      slash > 0
        ? q.where('env', '=', ref.slice(0, slash)).where('name', '=', ref.slice(slash + 1))
        : q.where('id', '=', ref);
    const r = await q.executeTakeFirst();
    if (!r)
      throw notFound(
        'GroupNotFound',
        `No group ${ref}`,
        'Groups are ENV/NAME; list them with `custody group list ENV`.',
      );
    return toGroup(r);
  }

  async function ensureGroup(env: string, name: string): Promise<string> {
    await db
      .insertInto('groups')
      .values({ id: randomUUID(), env, name, created_at: Date.now() })
      .onConflict((oc) => oc.columns(['env', 'name']).doNothing())
      .execute();
    const g = await db
      .selectFrom('groups')
      .select('id')
      .where('env', '=', env)
      .where('name', '=', name)
      .executeTakeFirstOrThrow();
    return g.id;
  }

  return {
    async upsertFromLogin(s) {
      const now = Date.now();
      const metadata = JSON.stringify(s.metadata);
      const existing = await db
        .selectFrom('identities')
        .select('kind')
        .where('env', '=', s.env)
        .where('auth_method', '=', s.authMethod)
        .where('name', '=', s.name)
        .executeTakeFirst();
      // A login role of another kind must never turn a workload into a user (which would lift the
      // management guardrail) or the reverse.
      if (existing && existing.kind !== s.kind) {
        throw conflict(
          'IdentityKindConflict',
          `${s.env}/${s.name} is a ${existing.kind} identity; this login role makes ${s.kind}s`,
          'Use a different user claim or auth method for the other kind.',
        );
      }
      await db
        .insertInto('identities')
        .values({
          id: randomUUID(),
          env: s.env,
          kind: s.kind,
          name: s.name,
          auth_method: s.authMethod,
          login_role: s.loginRole,
          metadata,
          created_at: now,
          last_login_at: now,
        })
        .onConflict((oc) =>
          oc
            .columns(['env', 'auth_method', 'name'])
            .doUpdateSet({ metadata, last_login_at: now, login_role: s.loginRole }),
        )
        .execute();
      const row = await db
        .selectFrom('identities')
        .selectAll()
        .where('env', '=', s.env)
        .where('auth_method', '=', s.authMethod)
        .where('name', '=', s.name)
        .executeTakeFirstOrThrow();
      if (s.claimGroups) {
        const wanted = [...new Set(s.claimGroups.filter((g) => GROUP_RE.test(g)))].slice(0, 256);
        const ids = await Promise.all(wanted.map((g) => ensureGroup(s.env, g)));
        await storage.transaction(async (trx) => {
          await trx
            .deleteFrom('group_members')
            .where('identity_id', '=', row.id)
            .where('source', '=', 'claim')
            .execute();
          for (const gid of ids) {
            await trx
              .insertInto('group_members')
              .values({ group_id: gid, identity_id: row.id, source: 'claim' })
              .onConflict((oc) => oc.columns(['group_id', 'identity_id']).doNothing())
              .execute();
          }
        });
      }
      return toIdentity(row);
    },

    get,

    async resolve(ref) {
      const parts = ref.split('/');
      if (parts.length === 1) return get(ref);
      let q = db.selectFrom('identities').selectAll().where('env', '=', parts[0]);
      if (parts.length === 2) q = q.where('name', '=', parts[1]);
      else q = q.where('auth_method', '=', parts[1]).where('name', '=', parts.slice(2).join('/'));
      const rows = await q.limit(2).execute();
      if (rows.length === 0)
        throw notFound(
          'IdentityNotFound',
          `No identity ${ref}`,
          'Identities appear after their first login; see `custody identity list ENV`.',
        );
      if (rows.length > 1)
        throw badRequest(
          'AmbiguousIdentity',
          `${ref} names identities under several auth methods`,
          'Use ENV/METHOD/NAME or the identity id.',
        );
      return toIdentity(rows[0]);
    },

    async list(env) {
      return (
        await db.selectFrom('identities').selectAll().where('env', '=', env).orderBy('name').execute()
      ).map(toIdentity);
    },

    async groupIdsOf(identityId) {
      return (
        await db
          .selectFrom('group_members')
          .select('group_id')
          .where('identity_id', '=', identityId)
          .execute()
      ).map((r) => r.group_id);
    },

    async groupsOf(identityId) {
      const rows = await db
        .selectFrom('group_members as m')
        .innerJoin('groups as g', 'g.id', 'm.group_id')
        .select(['g.id', 'g.env', 'g.name', 'g.created_at'])
        .where('m.identity_id', '=', identityId)
        .orderBy('g.name')
        .execute();
      return rows.map(toGroup);
    },

    async createGroup(env, name) {
      if (!GROUP_RE.test(name)) {
        throw badRequest(
          'InvalidGroupName',
          'A group name is 1-128 letters, digits or `_ . : @ -`',
          'Example: ml-platform.',
        );
      }
      const res = await db
        .insertInto('groups')
        .values({ id: randomUUID(), env, name, created_at: Date.now() })
        .onConflict((oc) => oc.columns(['env', 'name']).doNothing())
        .executeTakeFirst();
      if (Number(res.numInsertedOrUpdatedRows ?? 0) === 0)
        throw conflict('GroupExists', `Group ${env}/${name} already exists`, 'Add members to it instead.');
      return getGroup(`${env}/${name}`);
    },

    getGroup,

    async listGroups(env) {
      return (await db.selectFrom('groups').selectAll().where('env', '=', env).orderBy('name').execute()).map(
        toGroup,
      );
    },

    async deleteGroup(id) {
      await db
        .deleteFrom('assignments')
        .where('principal_type', '=', 'group')
        .where('principal_id', '=', id)
        .execute();
      await db.deleteFrom('groups').where('id', '=', id).execute();
    },

    async addMember(groupId, identityId) {
      const [g, i] = [await getGroup(groupId), await get(identityId)];
      if (g.env !== i.env)
        throw badRequest(
          'CrossEnvironment',
          'A group and its members live in one environment',
          `Group is in ${g.env}, identity in ${i.env}.`,
        );
      await db
        .insertInto('group_members')
        .values({ group_id: g.id, identity_id: i.id, source: 'admin' })
        .onConflict((oc) => oc.columns(['group_id', 'identity_id']).doUpdateSet({ source: 'admin' }))
        .execute();
    },

    async removeMember(groupId, identityId) {
      await db
        .deleteFrom('group_members')
        .where('group_id', '=', groupId)
        .where('identity_id', '=', identityId)
        .execute();
    },

    async members(groupId) {
      const rows = await db
        .selectFrom('group_members as m')
        .innerJoin('identities as i', 'i.id', 'm.identity_id')
        .selectAll('i')
        .where('m.group_id', '=', groupId)
        .orderBy('i.name')
        .execute();
      return rows.map(toIdentity);
    },
  };
}
