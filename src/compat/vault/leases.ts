import type { FastifyReply, FastifyRequest } from 'fastify';
import { parseDuration } from '../../duration.js';
import type { Lease } from '../../leases/lease-service.js';
import type { VaultDoor } from './door.js';
import { DATABASE_ALIAS, DATABASE_TYPES, isEngineName, isEnvName } from './mounts.js';
import {
  envelope,
  invalid,
  noContent,
  noHandler,
  notFoundEmpty,
  vaultOperation as op,
  rfc3339,
  secondsUntil,
  vaultError,
} from './wire.js';

/**
 * Dynamic credentials and their leases. Lease ids are Custody's own (`ENV/ENGINE/ROLE/<id>`); Vault
 * clients treat them as opaque strings. Same actions as the native routes: `leases/issue` on
 * `ENV/ENGINE/ROLE`; lookup, renew and revoke authorized by the lease service (holder or grant);
 * revoke-prefix `leases/revoke` on the prefix.
 */

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const MAX_LEASE_ID = 256;

function leaseIdOf(req: FastifyRequest, fromPath: string): string {
  const body = isObject(req.body) ? req.body : {};
  const id = fromPath || body.lease_id;
  if (typeof id !== 'string' || id.length === 0) throw invalid('lease_id must be specified');
  if (id.length > MAX_LEASE_ID) throw invalid('invalid lease ID');
  return id;
}

const lookupData = (l: Lease) => ({
  id: l.id,
  issue_time: rfc3339(l.issuedAt),
  expire_time: rfc3339(l.state === 'active' ? l.expiresAt : (l.revokedAt ?? l.expiresAt)),
  last_renewal: l.lastRenewedAt === null ? null : rfc3339(l.lastRenewedAt),
  renewable: l.renewable && l.state === 'active',
  ttl: l.state === 'active' ? secondsUntil(l.expiresAt) : 0,
  // Custody's own: a revoked lease is kept (and audited) rather than forgotten.
  state: l.state,
});

/**
 * The engine a database mount means. `<engine>/creds` is that engine; `database/creds/<role>`, when
 * no engine is called `database`, is the one database engine of the environment that has the role.
 * Name resolution only: what the caller may do is decided on the resolved resource by the pipeline.
 */
async function resolveEngine(
  door: VaultDoor,
  env: string,
  mount: string,
  role: string | undefined,
  explicitEnv: boolean,
): Promise<{ engine: string } | { error: Error }> {
  if (explicitEnv || mount !== DATABASE_ALIAS) return { engine: mount };
  const { engines } = door.services;
  try {
    const all = await engines.list(env);
    if (all.some((e) => e.name === DATABASE_ALIAS)) return { engine: DATABASE_ALIAS };
    if (!role) {
      return {
        error: invalid(
          `${DATABASE_ALIAS}/ names no engine in environment ${env}: give a role (${DATABASE_ALIAS}/creds/<role>) or use <engine>/creds/<role>`,
        ),
      };
    }
    const matches: string[] = [];
    for (const e of all.filter((x) => DATABASE_TYPES.has(x.type))) {
      const has = await engines.readRole(env, e.name, role).then(
        () => true,
        () => false,
      );
      if (has) matches.push(e.name);
    }
    if (matches.length === 1) return { engine: matches[0] };
    if (matches.length === 0)
      return {
        error: vaultError(404, 'RoleNotFound', [
          `no database engine in environment ${env} has a role ${role}; use <engine>/creds/<role>`,
        ]),
      };
    return {
      error: invalid(
        `${DATABASE_ALIAS}/creds/${role} is ambiguous in environment ${env}: engines ${matches.join(', ')} have that role; use <engine>/creds/${role}`,
      ),
    };
  } catch (err) {
    return { error: err as Error };
  }
}

/** `GET <mount>/creds/<role>`: a new lease from the engine role. */
export async function credsRoute(
  door: VaultDoor,
  req: FastifyRequest,
  route: { mount: string; env: string; engine: string; role: string; explicitEnv: boolean },
): Promise<unknown> {
  if (req.method !== 'GET' && req.method !== 'POST' && req.method !== 'PUT')
    throw noHandler(req.method, `${route.mount}/creds/${route.role}`);
  const { pipeline, leases, identities } = door.services;
  const { env, role } = route;
  const resolved = await resolveEngine(door, env, route.engine, role, route.explicitEnv);
  const engine = 'engine' in resolved ? resolved.engine : route.engine;
  const issued = await pipeline.run(
    op(req, { action: 'leases/issue', resource: `${env}/${engine}/${role}`, data: { mount: route.mount } }),
    async (ctx) => {
      // An unresolvable alias is reported only to a caller the pipeline let through.
      if ('error' in resolved) throw resolved.error;
      const caller = ctx.caller!;
      const identityName = caller.identityId
        ? (await identities.get(caller.identityId)).name
        : caller.displayName;
      const res = await leases.issue({ ...caller, identityName }, env, engine, role);
      ctx.auditResponse({
        data: { lease_id: res.lease.id, username: res.username },
        sensitive: { password: res.password },
      });
      return res;
    },
  );
  const l = issued.lease;
  return envelope(req, {
    lease_id: l.id,
    renewable: l.renewable,
    lease_duration: secondsUntil(l.expiresAt),
    data: { ...issued.data, username: issued.username, password: issued.password },
    mount_type: 'database',
  });
}

/**
 * A Vault lease prefix in Custody's terms: `<engine>/creds[/<role>]` (default environment) and
 * `<env>/<engine>/creds[/<role>]` become `ENV/ENGINE[/ROLE]/`; anything else is taken as a Custody
 * lease-id prefix, as the native API takes it.
 */
async function leasePrefix(door: VaultDoor, raw: string): Promise<{ prefix: string; error?: Error }> {
  const p = raw.replace(/^\/+/, '').replace(/\/+$/, '');
  if (!p) throw invalid('a prefix is required');
  const parts = p.split('/');
  const at = parts.indexOf('creds');
  if (at === 1 && parts.length <= 3 && isEngineName(parts[0])) {
    const env = door.defaultEnv;
    const r = await resolveEngine(door, env, parts[0], parts[2], false);
    const engine = 'engine' in r ? r.engine : parts[0];
    const prefix = `${env}/${engine}/${parts[2] ? `${parts[2]}/` : ''}`;
    return 'error' in r ? { prefix, error: r.error } : { prefix };
  }
  if (at === 2 && parts.length <= 4 && isEnvName(parts[0]) && isEngineName(parts[1])) {
    return { prefix: `${parts[0]}/${parts[1]}/${parts[3] ? `${parts[3]}/` : ''}` };
  }
  return { prefix: raw.replace(/^\/+/, '') };
}

const increment = (v: unknown) => {
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string' && typeof v !== 'number') throw invalid('increment must be a duration');
  return parseDuration(v, 'increment');
};

/** `sys/leases/*`, and the older `sys/renew`, `sys/revoke`, `sys/revoke-prefix` paths. */
export async function leaseRoute(
  door: VaultDoor,
  req: FastifyRequest,
  reply: FastifyReply,
  sub: string,
  rest: string,
  list: boolean,
): Promise<unknown> {
  const { pipeline, leases } = door.services;
  const method = req.method;
  const write = method === 'PUT' || method === 'POST';
  const mount_type = 'system';

  if (sub === 'lookup' && method === 'GET' && list) {
    const { prefix, error } = await leasePrefix(door, rest);
    const resource = prefix.replace(/\/+$/, '');
    const keys = await pipeline.run(
      op(req, { action: 'leases/read', resource, data: { prefix } }),
      async () => {
        if (error) throw error;
        const found = new Set<string>();
        for (const l of await leases.list({ prefix, state: 'active', limit: 10_000 })) {
          const tail = l.id.slice(prefix.length);
          const slash = tail.indexOf('/');
          found.add(slash === -1 ? tail : `${tail.slice(0, slash)}/`);
        }
        return [...found].sort();
      },
    );
    if (keys.length === 0) throw notFoundEmpty('NoLeases');
    return envelope(req, { data: { keys }, mount_type });
  }
  if (sub === 'lookup' && write) {
    const id = leaseIdOf(req, rest);
    const lease = await pipeline.run(
      op(req, { action: 'leases/lookup', resource: id, authorizeInService: true }),
      (ctx) => leases.lookup(ctx.caller!, id),
    );
    return envelope(req, { data: lookupData(lease), mount_type });
  }
  if (sub === 'renew' && write) {
    const id = leaseIdOf(req, rest);
    const inc = increment(isObject(req.body) ? req.body.increment : undefined);
    const res = await pipeline.run(
      op(req, { action: 'leases/renew', resource: id, data: { increment: inc }, authorizeInService: true }),
      (ctx) => leases.renew(ctx.caller!, id, inc),
    );
    return envelope(req, {
      lease_id: res.lease.id,
      renewable: res.lease.renewable,
      lease_duration: secondsUntil(res.lease.expiresAt),
      warnings: res.capped ? ['TTL of the lease was capped by the role max_ttl'] : null,
      mount_type,
    });
  }
  if (sub === 'revoke' && write) {
    const id = leaseIdOf(req, rest);
    await pipeline.run(op(req, { action: 'leases/revoke', resource: id, authorizeInService: true }), (ctx) =>
      leases.revoke(ctx.caller!, id),
    );
    return noContent(reply);
  }
  if (sub === 'revoke-prefix' && write) {
    const { prefix, error } = await leasePrefix(door, rest);
    await pipeline.run(
      op(req, { action: 'leases/revoke', resource: prefix.replace(/\/+$/, ''), data: { prefix } }),
      async () => {
        if (error) throw error;
        return leases.revokeMany({ prefix });
      },
    );
    return noContent(reply);
  }
  if (sub === 'revoke-force') {
    throw vaultError(405, 'UnsupportedOperation', [
      'revoke-force is not supported by the Vault door: use `custody lease revoke --force` (native API, force: true), which reports what was left behind',
    ]);
  }
  throw noHandler(method, `sys/leases/${sub}${rest ? `/${rest}` : ''}`);
}
