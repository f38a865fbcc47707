import type { Selectable } from 'kysely';
import type { Barrier } from '../../barrier/barrier.js';
import { conflict, notFound } from '../../errors.js';
import type { Storage } from '../../storage/storage.js';
import type { AuthRoleTable } from '../../storage/tables.js';
import type { AuthMethod, AuthMethodType, LoginRole } from './types.js';

const methodAad = (env: string, name: string) => `custody:auth-method:${env}/${name}`;

export const methodNotFound = (env: string, name: string) =>
  notFound(
    'AuthMethodNotFound',
    `No auth method ${name} in environment ${env}`,
    'List them with GET /v1/auth/methods/ENV.',
  );

export const roleNotFound = (env: string, method: string, role: string) =>
  notFound(
    'LoginRoleNotFound',
    `No login role ${role} under auth method ${env}/${method}`,
    'List them with GET /v1/auth/methods/ENV/METHOD/roles.',
  );

const methodExists = (env: string, name: string) =>
  conflict(
    'AuthMethodExists',
    `Auth method ${env}/${name} already exists`,
    'Delete it first, or pick another name.',
  );

/** Rows of auth_methods (config barrier-encrypted, bound to env/name) and auth_roles. */
export class MethodStore {
  constructor(
    private readonly storage: Storage,
    private readonly barrier: Barrier,
  ) {}

  async insertMethod(m: AuthMethod): Promise<void> {
    const res = await this.storage.db
      .insertInto('auth_methods')
      .values({
        env: m.env,
        name: m.name,
        type: m.type,
        config: this.barrier.encrypt(JSON.stringify(m.config), methodAad(m.env, m.name)),
        created_at: m.createdAt,
        updated_at: m.updatedAt,
      })
      .onConflict((oc) => oc.columns(['env', 'name']).doNothing())
      .executeTakeFirst();
    if (Number(res.numInsertedOrUpdatedRows ?? 0) === 0) throw methodExists(m.env, m.name);
  }

  /** Fails early (before any network test of a new configuration) when the name is taken. */
  async assertMethodAbsent(env: string, name: string): Promise<void> {
    const r = await this.storage.db
      .selectFrom('auth_methods')
      .select('name')
      .where('env', '=', env)
      .where('name', '=', name)
      .executeTakeFirst();
    if (r) throw methodExists(env, name);
  }

  async getMethod(env: string, name: string): Promise<AuthMethod> {
    const r = await this.storage.db
      .selectFrom('auth_methods')
      .selectAll()
      .where('env', '=', env)
      .where('name', '=', name)
      .executeTakeFirst();
    if (!r) throw methodNotFound(env, name);
    return this.toMethod(r);
  }

  async listMethods(env: string): Promise<AuthMethod[]> {
    const rows = await this.storage.db
      .selectFrom('auth_methods')
      .selectAll()
      .where('env', '=', env)
      .orderBy('name')
      .execute();
    return Promise.all(rows.map((r) => this.toMethod(r)));
  }

  /** Deletes the method with its roles and secret ids; false when there was no such method. */
  async deleteMethod(env: string, name: string): Promise<boolean> {
    return this.storage.transaction(async (trx) => {
      await trx.deleteFrom('approle_secret_ids').where('env', '=', env).where('method', '=', name).execute();
      await trx.deleteFrom('auth_roles').where('env', '=', env).where('method', '=', name).execute();
      const res = await trx
        .deleteFrom('auth_methods')
        .where('env', '=', env)
        .where('name', '=', name)
        .executeTakeFirst();
      return Number(res.numDeletedRows) > 0;
    });
  }

  /** Creates or replaces a role; an existing role keeps its lookup key (AppRole role id). */
  async putRole(role: LoginRole, lookupKey: string | null): Promise<void> {
    const config = JSON.stringify(role.config);
    await this.storage.db
      .insertInto('auth_roles')
      .values({
        env: role.env,
        method: role.method,
        name: role.name,
        config,
        lookup_key: lookupKey,
        created_at: role.createdAt,
        updated_at: role.updatedAt,
      })
      .onConflict((oc) =>
        oc.columns(['env', 'method', 'name']).doUpdateSet({ config, updated_at: role.updatedAt }),
      )
      .execute();
  }

  async findRole(env: string, method: string, name: string): Promise<Selectable<AuthRoleTable> | undefined> {
    return this.storage.db
      .selectFrom('auth_roles')
      .selectAll()
      .where('env', '=', env)
      .where('method', '=', method)
      .where('name', '=', name)
      .executeTakeFirst();
  }

  async getRole(env: string, method: string, name: string, type: AuthMethodType): Promise<LoginRole> {
    const r = await this.findRole(env, method, name);
    if (!r) throw roleNotFound(env, method, name);
    return toRole(r, type);
  }

  async lookupKey(env: string, method: string, name: string): Promise<string | null> {
    const r = await this.findRole(env, method, name);
    if (!r) throw roleNotFound(env, method, name);
    return r.lookup_key;
  }

  async listRoles(env: string, method: string, type: AuthMethodType): Promise<LoginRole[]> {
    const rows = await this.storage.db
      .selectFrom('auth_roles')
      .selectAll()
      .where('env', '=', env)
      .where('method', '=', method)
      .orderBy('name')
      .execute();
    return rows.map((r) => toRole(r, type));
  }

  async deleteRole(env: string, method: string, name: string): Promise<boolean> {
    return this.storage.transaction(async (trx) => {
      await trx
        .deleteFrom('approle_secret_ids')
        .where('env', '=', env)
        .where('method', '=', method)
        .where('role', '=', name)
        .execute();
      const res = await trx
        .deleteFrom('auth_roles')
        .where('env', '=', env)
        .where('method', '=', method)
        .where('name', '=', name)
        .executeTakeFirst();
      return Number(res.numDeletedRows) > 0;
    });
  }

  private async toMethod(r: {
    env: string;
    name: string;
    type: string;
    config: string;
    created_at: number;
    updated_at: number;
  }): Promise<AuthMethod> {
    const plain = await this.barrier.decrypt(r.config, methodAad(r.env, r.name));
    return {
      env: r.env,
      name: r.name,
      type: r.type as AuthMethodType,
      config: JSON.parse(plain.toString('utf8')),
      createdAt: r.created_at,
      updatedAt: r.updated_at,
    };
  }
}

const toRole = (r: Selectable<AuthRoleTable>, type: AuthMethodType): LoginRole => ({
  env: r.env,
  method: r.method,
  name: r.name,
  type,
  config: JSON.parse(r.config),
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});
