import type { FastifyReply, FastifyRequest } from 'fastify';
import type { LoginResult } from '../../auth/methods/auth-method-service.js';
import type { TokenInfo } from '../../auth/token-service.js';
import { parseDuration } from '../../duration.js';
import { CustodyError } from '../../errors.js';
import type { VaultDoor } from './door.js';
import { authMount } from './mounts.js';
import {
  envelope,
  invalid,
  noContent,
  noHandler,
  vaultOperation as op,
  rfc3339,
  secondsUntil,
  unixSeconds,
  vaultError,
  vaultToken,
} from './wire.js';

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown, max = 256 * 1024) =>
  typeof v === 'string' && v.length > 0 && v.length <= max ? v : undefined;

/** Vault's `auth/token/lookup*` data for a Custody token. `id` only when the caller presented it. */
function lookupData(t: TokenInfo, token: string | null) {
  return {
    accessor: t.accessor,
    creation_time: unixSeconds(t.createdAt),
    creation_ttl: t.ttlSeconds,
    display_name: t.displayName,
    entity_id: t.identityId ?? '',
    expire_time: t.expiresAt === null ? null : rfc3339(t.expiresAt),
    explicit_max_ttl: t.maxExpiresAt === null ? 0 : Math.round((t.maxExpiresAt - t.createdAt) / 1000),
    id: token ?? '',
    issue_time: rfc3339(t.createdAt),
    meta: Object.keys(t.meta).length > 0 ? t.meta : null,
    num_uses: 0,
    orphan: t.parentAccessor === null,
    path: t.authMethod ? `auth/${t.env ? `${t.env}/` : ''}${t.authMethod}/login` : 'auth/token/create',
    policies: t.policies,
    renewable: t.renewable,
    ttl: secondsUntil(t.expiresAt),
    type: 'service',
    // Custody's own fields, for people reading the reply.
    custody_env: t.env,
  };
}

/** Vault's `auth` block of a login or renew reply. */
function authBlock(t: TokenInfo, token: string, metadata: Record<string, string> | null) {
  return {
    client_token: token,
    accessor: t.accessor,
    policies: t.policies,
    token_policies: t.policies,
    identity_policies: null,
    metadata,
    lease_duration: secondsUntil(t.expiresAt),
    renewable: t.renewable,
    entity_id: t.identityId ?? '',
    token_type: 'service',
    orphan: t.parentAccessor === null,
    mfa_requirement: null,
    num_uses: 0,
  };
}

const loginAudit = (l: LoginResult, role: string) => ({
  data: {
    identity: l.identity.id,
    identity_name: l.identity.name,
    kind: l.identity.kind,
    role,
    accessor: l.info.accessor,
    expires_at: rfc3339(l.info.expiresAt),
  },
  sensitive: { token: l.token },
});

const increment = (v: unknown) => {
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string' && typeof v !== 'number') throw invalid('increment must be a duration');
  return parseDuration(v, 'increment');
};

/** `auth/token/*`: the calling token's lookup, renewal and revocation, and child tokens. */
export async function tokenRoute(
  door: VaultDoor,
  req: FastifyRequest,
  reply: FastifyReply,
  sub: string,
): Promise<unknown> {
  const { pipeline, tokens } = door.services;
  const body = isObject(req.body) ? req.body : {};
  const method = req.method;
  const mount_type = 'token';

  if (sub === 'lookup-self' && (method === 'GET' || method === 'POST')) {
    const info = await pipeline.run(
      op(req, { action: 'token/lookup-self', resource: '' }),
      async (ctx) => ctx.caller!,
    );
    return envelope(req, { data: lookupData(info, vaultToken(req) ?? null), mount_type });
  }
  if (sub === 'renew-self' && (method === 'POST' || method === 'PUT')) {
    const inc = increment(body.increment);
    const info = await pipeline.run(
      op(req, { action: 'token/renew-self', resource: '', data: { increment: inc } }),
      (ctx) => tokens.renew(ctx.caller!.accessor, inc),
    );
    return envelope(req, { auth: authBlock(info, vaultToken(req) ?? '', info.meta), mount_type });
  }
  if (sub === 'revoke-self' && (method === 'POST' || method === 'PUT')) {
    await pipeline.run(op(req, { action: 'token/revoke-self', resource: '' }), (ctx) =>
      tokens.revoke(ctx.caller!.accessor),
    );
    return noContent(reply);
  }
  if ((sub === 'lookup' || sub === 'lookup-accessor') && (method === 'POST' || method === 'PUT')) {
    // Native twin: POST /v1/auth/token/lookup (by accessor, or by the token itself).
    const accessor = sub === 'lookup-accessor' ? str(body.accessor, 64) : undefined;
    const token = sub === 'lookup' ? str(body.token, 200) : undefined;
    if (!accessor && !token) throw invalid(sub === 'lookup' ? 'missing token' : 'missing accessor');
    const info = await pipeline.run(
      op(req, {
        action: 'token/lookup',
        resource: accessor ?? '',
        data: { accessor },
        sensitive: token ? { token } : undefined,
      }),
      async () => {
        if (accessor) return tokens.lookupAccessor(accessor);
        const found = await tokens.resolve(token!);
        if (!found) throw vaultError(403, 'TokenNotFound', ['bad token']);
        return found;
      },
    );
    return envelope(req, { data: lookupData(info, token ?? null), mount_type });
  }
  if (sub === 'create' && (method === 'POST' || method === 'PUT')) {
    // Native twin: POST /v1/auth/token/create (a child of the calling token).
    const policies = body.policies;
    if (
      policies !== undefined &&
      (!Array.isArray(policies) || policies.length > 32 || policies.some((p) => typeof p !== 'string'))
    )
      throw invalid('policies must be a list of names');
    const meta = body.meta;
    if (meta !== undefined && meta !== null && !isObject(meta)) throw invalid('meta must be an object');
    const ttl = increment(body.ttl);
    const maxTtl = increment(body.explicit_max_ttl);
    const renewable = body.renewable === undefined ? undefined : body.renewable === true;
    const displayName = str(body.display_name, 128);
    const created = await pipeline.run(
      op(req, {
        action: 'token/create',
        resource: '',
        data: { policies, ttl, max_ttl: maxTtl, display_name: displayName },
      }),
      async (ctx) => {
        const res = await tokens.create({
          policies: (policies as string[] | undefined) ?? [],
          ttlSeconds: ttl,
          maxTtlSeconds: maxTtl,
          renewable,
          displayName,
          meta: meta ? Object.fromEntries(Object.entries(meta).map(([k, v]) => [k, String(v)])) : undefined,
          parent: ctx.caller!,
        });
        ctx.auditResponse({ data: { accessor: res.info.accessor }, sensitive: { token: res.token } });
        return res;
      },
    );
    return envelope(req, { auth: authBlock(created.info, created.token, created.info.meta), mount_type });
  }
  throw noHandler(method, `auth/token/${sub}`);
}

/**
 * `auth/<mount>/login`: AppRole (`role_id` + `secret_id`) or JWT (`role` + `jwt`) against the
 * environment's auth method of that name. Vault's AppRole login names no role: the role is the one
 * whose role id matches, found by trying the method's roles (the service checks each role id first).
 */
export async function loginRoute(door: VaultDoor, req: FastifyRequest, mount: string): Promise<unknown> {
  const { pipeline, authMethods } = door.services;
  const target = authMount(mount, door.defaultEnv);
  if (!target) throw noHandler(req.method, `auth/${mount}/login`);
  const { env, method } = target;
  const body = isObject(req.body) ? req.body : {};
  const jwt = str(body.jwt);
  const roleId = str(body.role_id, 256);
  const secretId = str(body.secret_id, 256);
  const role = str(body.role, 128);
  if (!jwt && !roleId) throw invalid('missing credentials: send {"role_id", "secret_id"} or {"role", "jwt"}');
  if (jwt && !role) throw invalid('missing role');

  const sensitive = Object.fromEntries(
    Object.entries({ jwt, role_id: roleId, secret_id: secretId }).filter(([, v]) => v !== undefined),
  );
  const result = await pipeline
    .run(
      op(req, {
        action: 'auth/login',
        resource: role ? `${env}/${method}/${role}` : `${env}/${method}`,
        anonymous: true,
        sensitive,
      }),
      async (ctx) => {
        const creds = { jwt, roleId, secretId };
        let login: { l: LoginResult; role: string } | null = null;
        if (role) {
          login = { l: await authMethods.login(env, method, role, creds, req.ip), role };
        } else {
          for (const r of await authMethods.listRoles(env, method)) {
            try {
              login = { l: await authMethods.login(env, method, r.name, creds, req.ip), role: r.name };
              break;
            } catch (err) {
              if (!(err instanceof CustodyError && err.code === 'InvalidRoleId')) throw err;
            }
          }
          if (!login) throw vaultError(400, 'InvalidRoleId', ['invalid role or secret ID']);
        }
        ctx.auditResponse(loginAudit(login.l, login.role));
        return login;
      },
    )
    .catch((err: unknown) => {
      // Vault answers bad login credentials with 400, not 403.
      if (err instanceof CustodyError && err.status === 401 && err.code !== 'MissingToken')
        throw vaultError(400, err.code, [err.message]);
      throw err;
    });
  const { l } = result;
  return envelope(req, {
    auth: authBlock(l.info, l.token, {
      role_name: result.role,
      env: l.info.env ?? env,
      identity: l.identity.name,
    }),
    mount_type: '',
  });
}
