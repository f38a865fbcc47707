import { badRequest, CustodyError } from '../../errors.js';
import type { Identity } from '../identity-service.js';
import type { CreateTokenInput } from '../token-service.js';
import { roleIdMatches } from './approle.js';
import type { AuthMethodService } from './auth-method-service.js';
import { identityFromJwt, verifiedClaims } from './jwt-identity.js';
import type { MethodContext } from './method-context.js';
import type {
  AppRoleRoleConfig,
  AuthMethod,
  JwtRoleConfig,
  LoginCredentials,
  LoginResult,
  LoginRole,
} from './types.js';

const displayName = (method: string, role: string, name: string) => `${method}-${role}-${name}`.slice(0, 128);

/**
 * Issues the token of a login. It carries no policies (RBAC assignments decide what its identity
 * may do), is renewable and is named after method, role and identity.
 */
export async function issueLoginToken(
  ctx: MethodContext,
  m: AuthMethod,
  r: LoginRole,
  identity: Identity,
  token: Required<Pick<CreateTokenInput, 'ttlSeconds' | 'maxTtlSeconds' | 'meta'>> &
    Pick<CreateTokenInput, 'actorIdentityId' | 'parent'>,
): Promise<LoginResult> {
  const created = await ctx.tokens.create({
    policies: [],
    identityId: identity.id,
    env: m.env,
    authMethod: m.name,
    renewable: true,
    displayName: displayName(m.name, r.name, identity.name),
    ...token,
  });
  return { token: created.token, info: created.info, identity };
}

/** Anonymous logins: a JWT, or an AppRole role id + secret id, for a login role. */
export function logins(ctx: MethodContext): Pick<AuthMethodService, 'login'> {
  const { store, secretIds, identities } = ctx;

  async function jwtLogin(m: AuthMethod, r: LoginRole, jwt: string | undefined): Promise<LoginResult> {
    if (typeof jwt !== 'string' || jwt.length === 0) {
      throw badRequest('WrongCredentials', `${m.env}/${m.name} is a jwt method`, 'Send {"jwt": "…"}.');
    }
    const claims = await verifiedClaims(ctx, m, r, jwt);
    const identity = await identityFromJwt(ctx, m, r, claims);
    const rc = r.config as JwtRoleConfig;
    return issueLoginToken(ctx, m, r, identity, {
      ttlSeconds: rc.token_ttl,
      maxTtlSeconds: rc.token_max_ttl,
      meta: { role: r.name },
    });
  }

  async function appRoleLogin(
    m: AuthMethod,
    r: LoginRole,
    creds: LoginCredentials,
    remoteAddr: string,
  ): Promise<LoginResult> {
    if (typeof creds.roleId !== 'string' || typeof creds.secretId !== 'string') {
      throw badRequest(
        'WrongCredentials',
        `${m.env}/${m.name} is an approle method`,
        'Send {"role_id": "…", "secret_id": "…"}.',
      );
    }
    const lookupKey = await store.lookupKey(m.env, m.name, r.name);
    if (!roleIdMatches(creds.roleId, lookupKey)) {
      throw new CustodyError(
        'InvalidRoleId',
        401,
        'The role id does not belong to this role',
        'Read it with GET /v1/auth/methods/ENV/METHOD/roles/ROLE/role-id.',
      );
    }
    const rc = r.config as AppRoleRoleConfig;
    const used = await secretIds.consume(
      { env: m.env, method: m.name, role: r.name },
      rc,
      creds.secretId,
      remoteAddr,
    );
    // An AppRole role is one workload: its identity is named after the role.
    const identity = await identities.upsertFromLogin({
      env: m.env,
      authMethod: m.name,
      loginRole: r.name,
      kind: 'workload',
      name: r.name,
      metadata: {},
    });
    const meta: Record<string, string> = {
      ...used.metadata,
      role: r.name,
      secret_id_accessor: used.accessor,
    };
    if (rc.token_bound_cidrs.length > 0) meta.bound_cidrs = rc.token_bound_cidrs.join(',');
    return issueLoginToken(ctx, m, r, identity, {
      ttlSeconds: rc.token_ttl,
      maxTtlSeconds: rc.token_max_ttl,
      meta,
    });
  }

  return {
    async login(env, method, role, credentials, remoteAddr) {
      const { m, r } = await ctx.roleOf(env, method, role);
      return m.type === 'jwt' ? jwtLogin(m, r, credentials.jwt) : appRoleLogin(m, r, credentials, remoteAddr);
    },
  };
}
