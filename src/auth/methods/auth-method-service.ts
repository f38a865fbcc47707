import type { Barrier } from '../../barrier/barrier.js';
import { badRequest, CustodyError, conflict } from '../../errors.js';
import type { KvService } from '../../kv/kv-service.js';
import { validateEnvName } from '../../kv/names.js';
import type { Storage } from '../../storage/storage.js';
import type { Identity, IdentityKind, IdentityService } from '../identity-service.js';
import type { TokenInfo, TokenService } from '../token-service.js';
import { newRoleId, roleIdMatches, SecretIds } from './approle.js';
import { type AppRoleRoleConfigInput, normalizeAppRoleRoleConfig } from './approle-config.js';
import {
  claimAt,
  claimGroups,
  failedBoundClaim,
  mappedMetadata,
  parseClaimPath,
  userClaimValue,
} from './claims.js';
import { KeySourceError } from './http-fetch.js';
import {
  type JwtMethodConfigInput,
  type JwtRoleConfigInput,
  normalizeJwtMethodConfig,
  normalizeJwtRoleConfig,
} from './jwt-config.js';
import { invalidJwt, verifyJwt } from './jwt-verifier.js';
import { createKeySource, type KeySource } from './key-source.js';
import { validateMethodName, validateRoleName } from './names.js';
import { MethodStore, methodNotFound, roleNotFound } from './store.js';
import type {
  AppRoleRoleConfig,
  AuthMethod,
  AuthMethodType,
  JwtMethodConfig,
  JwtRoleConfig,
  LoginCredentials,
  LoginResult,
  LoginRole,
  SecretIdIssued,
} from './types.js';

export type * from './types.js';

export interface CreateMethodInput {
  type: AuthMethodType;
  /** Defaults to the type. */
  name?: string;
  config?: JwtMethodConfigInput | Record<string, never>;
}

export type RoleConfigInput = JwtRoleConfigInput & AppRoleRoleConfigInput;

/**
 * Auth methods (JWT/OIDC and AppRole) and their login roles, per environment, and the logins
 * they allow: credentials in, identity and token out. Decides nothing about what an identity may do.
 */
export interface AuthMethodService {
  createMethod(env: string, input: CreateMethodInput): Promise<AuthMethod>;
  listMethods(env: string): Promise<AuthMethod[]>;
  getMethod(env: string, method: string): Promise<AuthMethod>;
  deleteMethod(env: string, method: string): Promise<void>;

  /** Creates or replaces a login role; an AppRole role keeps its role id. */
  putRole(env: string, method: string, role: string, config: RoleConfigInput): Promise<LoginRole>;
  getRole(env: string, method: string, role: string): Promise<LoginRole>;
  listRoles(env: string, method: string): Promise<LoginRole[]>;
  deleteRole(env: string, method: string, role: string): Promise<void>;

  readRoleId(env: string, method: string, role: string): Promise<string>;
  createSecretId(
    env: string,
    method: string,
    role: string,
    input: { metadata?: Record<string, string>; cidrs?: string[] },
  ): Promise<SecretIdIssued>;
  destroySecretId(env: string, method: string, role: string, accessor: string): Promise<void>;

  /** Anonymous login with a JWT or an AppRole role id + secret id, from `remoteAddr`. */
  login(
    env: string,
    method: string,
    role: string,
    credentials: LoginCredentials,
    remoteAddr: string,
  ): Promise<LoginResult>;
  /**
   * On-behalf-of exchange: a workload (its own token) trades a user's JWT for a token whose
   * identity is the user and whose actor is the workload, child of the workload's token.
   */
  loginOnBehalfOf(
    env: string,
    method: string,
    role: string,
    input: { actorToken: string | undefined; userJwt: string },
  ): Promise<LoginResult & { actor: Identity }>;

  /** Releases cached key sets (HTTP agents). */
  /** Deletes AppRole secret ids past their TTL; returns how many. */
  purgeExpired(now?: number): Promise<number>;
  close(): Promise<void>;
}

export interface AuthMethodDeps {
  storage: Storage;
  barrier: Barrier;
  tokens: TokenService;
  identities: IdentityService;
  kv: Pick<KvService, 'getEnvironment'>;
}

const JWT_ROLE_KEYS = new Set([
  'user_claim',
  'bound_subject',
  'bound_audiences',
  'bound_claims',
  'claim_mappings',
  'groups_claim',
  'identity_kind',
  'token_ttl',
  'token_max_ttl',
]);
const APPROLE_ROLE_KEYS = new Set([
  'secret_id_ttl',
  'secret_id_num_uses',
  'secret_id_bound_cidrs',
  'token_bound_cidrs',
  'token_ttl',
  'token_max_ttl',
]);

function onlyKeys(input: object, allowed: Set<string>, what: string): void {
  const extra = Object.keys(input).filter((k) => !allowed.has(k));
  if (extra.length > 0) {
    throw badRequest(
      'InvalidConfig',
      `${extra.join(', ')} ${extra.length === 1 ? 'is not a setting' : 'are not settings'} of ${what}`,
      `Settings: ${[...allowed].join(', ')}.`,
    );
  }
}

const wrongType = (expected: AuthMethodType, hint: string) =>
  badRequest('WrongAuthMethodType', `This operation needs an ${expected} method`, hint);

const displayName = (method: string, role: string, name: string) => `${method}-${role}-${name}`.slice(0, 128);

export function createAuthMethodService(deps: AuthMethodDeps): AuthMethodService {
  const { tokens, identities, kv } = deps;
  const store = new MethodStore(deps.storage, deps.barrier);
  const secretIds = new SecretIds(deps.storage);
  /** One key source per method incarnation, so JWKS caches and cooldowns survive across logins. */
  const sources = new Map<string, { createdAt: number; source: Promise<KeySource> }>();

  function dropSource(key: string): void {
    const cached = sources.get(key);
    sources.delete(key);
    cached?.source.then((s) => s.close()).catch(() => {});
  }

  function sourceFor(m: AuthMethod): Promise<KeySource> {
    const key = `${m.env}/${m.name}`;
    const cached = sources.get(key);
    if (cached && cached.createdAt === m.createdAt) return cached.source;
    if (cached) dropSource(key);
    const source = createKeySource(m.config as JwtMethodConfig);
    sources.set(key, { createdAt: m.createdAt, source });
    source.catch(() => sources.delete(key));
    return source;
  }

  async function methodOf(env: string, method: string): Promise<AuthMethod> {
    return store.getMethod(validateEnvName(env), validateMethodName(method));
  }

  async function roleOf(env: string, method: string, role: string) {
    const m = await methodOf(env, method);
    const r = await store.getRole(m.env, m.name, validateRoleName(role), m.type);
    return { m, r };
  }

  async function verifiedClaims(m: AuthMethod, r: LoginRole, jwt: string): Promise<Record<string, unknown>> {
    const mc = m.config as JwtMethodConfig;
    const rc = r.config as JwtRoleConfig;
    const claims = (await verifyJwt(jwt, await sourceFor(m), {
      issuer: mc.issuer,
      audiences: rc.bound_audiences.length > 0 ? rc.bound_audiences : mc.audiences,
      algorithms: mc.algorithms,
      leewaySeconds: mc.leeway_seconds,
    })) as Record<string, unknown>;
    if (rc.bound_subject !== null && claims.sub !== rc.bound_subject) {
      throw invalidJwt('bound subject', "The token's subject (sub) is not the role's bound_subject.");
    }
    const failed = failedBoundClaim(claims, rc.bound_claims);
    if (failed !== null) {
      const missing = claimAt(claims, parseClaimPath(failed)) === undefined;
      throw invalidJwt(
        'bound claim',
        `Bound claim \`${failed}\` ${missing ? 'is missing from the token' : 'does not match the role'}.`,
      );
    }
    return claims;
  }

  /**
   * Identities are keyed by environment, method and name. A role of the other kind must not turn
   * an existing workload into a user (which would lift the workload management guardrail) or back.
   */
  async function assertSameKind(m: AuthMethod, name: string, kind: IdentityKind): Promise<void> {
    const existing = await identities.resolve(`${m.env}/${m.name}/${name}`).catch((err: unknown) => {
      if (err instanceof CustodyError && err.code === 'IdentityNotFound') return null;
      throw err;
    });
    if (existing && existing.kind !== kind) {
      throw conflict(
        'IdentityKindConflict',
        `An identity of kind ${existing.kind} already has this name under auth method ${m.name}`,
        'Use separate auth methods for people and workloads, or a user_claim that keeps their names apart.',
      );
    }
  }

  async function identityFromJwt(m: AuthMethod, r: LoginRole, claims: Record<string, unknown>) {
    const rc = r.config as JwtRoleConfig;
    const name = userClaimValue(claims, rc.user_claim);
    if (name === null) {
      throw invalidJwt(
        'user claim',
        `The token's user claim \`${rc.user_claim}\` is missing, empty, longer than 256 characters or not a string or number.`,
      );
    }
    await assertSameKind(m, name, rc.identity_kind);
    return identities.upsertFromLogin({
      env: m.env,
      authMethod: m.name,
      loginRole: r.name,
      kind: rc.identity_kind,
      name,
      metadata: mappedMetadata(claims, rc.claim_mappings),
      claimGroups: rc.groups_claim === null ? undefined : claimGroups(claims, rc.groups_claim),
    });
  }

  async function jwtLogin(m: AuthMethod, r: LoginRole, jwt: string | undefined): Promise<LoginResult> {
    if (typeof jwt !== 'string' || jwt.length === 0) {
      throw badRequest('WrongCredentials', `${m.env}/${m.name} is a jwt method`, 'Send {"jwt": "…"}.');
    }
    const claims = await verifiedClaims(m, r, jwt);
    const identity = await identityFromJwt(m, r, claims);
    const rc = r.config as JwtRoleConfig;
    const { token, info } = await tokens.create({
      policies: [],
      identityId: identity.id,
      env: m.env,
      authMethod: m.name,
      ttlSeconds: rc.token_ttl,
      maxTtlSeconds: rc.token_max_ttl,
      renewable: true,
      displayName: displayName(m.name, r.name, identity.name),
      meta: { role: r.name },
    });
    return { token, info, identity };
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
    const { token, info } = await tokens.create({
      policies: [],
      identityId: identity.id,
      env: m.env,
      authMethod: m.name,
      ttlSeconds: rc.token_ttl,
      maxTtlSeconds: rc.token_max_ttl,
      renewable: true,
      displayName: displayName(m.name, r.name, identity.name),
      meta,
    });
    return { token, info, identity };
  }

  async function actorOf(
    env: string,
    actorToken: string | undefined,
  ): Promise<{ info: TokenInfo; actor: Identity }> {
    const info = actorToken ? await tokens.resolve(actorToken) : null;
    if (!info) {
      throw new CustodyError(
        'InvalidToken',
        401,
        "The workload's own token is missing, unknown, expired or revoked",
        'Send the job\'s Custody token as "Authorization: Bearer …".',
      );
    }
    const actor = info.identityId ? await identities.get(info.identityId) : null;
    if (actor?.kind !== 'workload' || info.actorIdentityId !== null) {
      throw new CustodyError(
        'NotAWorkload',
        403,
        'Only a workload identity token can act on behalf of a user',
        'Log the job in with its own workload role first; on-behalf-of tokens cannot be chained.',
      );
    }
    if (info.env !== env || actor.env !== env) {
      throw new CustodyError(
        'CrossEnvironment',
        403,
        `The workload token belongs to environment ${info.env}, not ${env}`,
        'On-behalf-of exchange never crosses environments.',
      );
    }
    return { info, actor };
  }

  return {
    async createMethod(env, input) {
      validateEnvName(env);
      const type = input.type;
      if (type !== 'jwt' && type !== 'approle') {
        throw badRequest('InvalidAuthMethodType', 'The auth method type is jwt or approle');
      }
      const name = validateMethodName(input.name ?? type);
      await kv.getEnvironment(env);
      await store.assertMethodAbsent(env, name);
      const now = Date.now();
      let config: AuthMethod['config'];
      let source: KeySource | null = null;
      if (type === 'jwt') {
        const normalized = normalizeJwtMethodConfig((input.config ?? {}) as JwtMethodConfigInput);
        source = await createKeySource(normalized);
        try {
          await source.check();
        } catch (err) {
          await source.close();
          if (!(err instanceof KeySourceError)) throw err;
          throw badRequest(
            'JwksUnreachable',
            "The identity provider's discovery document or key set could not be loaded",
            `${err.message}. Check issuer / jwks_url, that the broker can reach it, and ca_pem for a private CA.`,
          );
        }
        config = normalized;
      } else {
        if (Object.keys(input.config ?? {}).length > 0) {
          throw badRequest(
            'InvalidConfig',
            'An approle method has no settings',
            'Configure its roles instead.',
          );
        }
        config = {};
      }
      const method: AuthMethod = { env, name, type, config, createdAt: now, updatedAt: now };
      try {
        await store.insertMethod(method);
      } catch (err) {
        await source?.close();
        throw err;
      }
      if (source) {
        dropSource(`${env}/${name}`);
        sources.set(`${env}/${name}`, { createdAt: now, source: Promise.resolve(source) });
      }
      return method;
    },

    listMethods: async (env) => store.listMethods(validateEnvName(env)),

    getMethod: methodOf,

    async deleteMethod(env, method) {
      if (!(await store.deleteMethod(validateEnvName(env), validateMethodName(method)))) {
        throw methodNotFound(env, method);
      }
      dropSource(`${env}/${method}`);
    },

    async putRole(env, method, role, input) {
      const m = await methodOf(env, method);
      validateRoleName(role);
      const now = Date.now();
      const existing = await store.findRole(m.env, m.name, role);
      let config: LoginRole['config'];
      let lookupKey: string | null = null;
      if (m.type === 'jwt') {
        onlyKeys(input, JWT_ROLE_KEYS, 'jwt roles');
        config = normalizeJwtRoleConfig(input, m.config as JwtMethodConfig);
      } else {
        onlyKeys(input, APPROLE_ROLE_KEYS, 'approle roles');
        config = normalizeAppRoleRoleConfig(input);
        lookupKey = existing?.lookup_key ?? newRoleId();
      }
      const r: LoginRole = {
        env: m.env,
        method: m.name,
        name: role,
        type: m.type,
        config,
        createdAt: existing?.created_at ?? now,
        updatedAt: now,
      };
      await store.putRole(r, lookupKey);
      return r;
    },

    getRole: async (env, method, role) => (await roleOf(env, method, role)).r,

    async listRoles(env, method) {
      const m = await methodOf(env, method);
      return store.listRoles(m.env, m.name, m.type);
    },

    async deleteRole(env, method, role) {
      const m = await methodOf(env, method);
      if (!(await store.deleteRole(m.env, m.name, validateRoleName(role))))
        throw roleNotFound(env, method, role);
    },

    async readRoleId(env, method, role) {
      const { m, r } = await roleOf(env, method, role);
      if (m.type !== 'approle') throw wrongType('approle', 'Only AppRole roles have a role id.');
      return (await store.lookupKey(m.env, m.name, r.name))!;
    },

    async createSecretId(env, method, role, input) {
      const { m, r } = await roleOf(env, method, role);
      if (m.type !== 'approle') throw wrongType('approle', 'Only AppRole roles have secret ids.');
      return secretIds.issue(
        { env: m.env, method: m.name, role: r.name },
        r.config as AppRoleRoleConfig,
        input,
      );
    },

    async destroySecretId(env, method, role, accessor) {
      const { m, r } = await roleOf(env, method, role);
      if (m.type !== 'approle') throw wrongType('approle', 'Only AppRole roles have secret ids.');
      await secretIds.destroy({ env: m.env, method: m.name, role: r.name }, accessor);
    },

    async login(env, method, role, credentials, remoteAddr) {
      const { m, r } = await roleOf(env, method, role);
      return m.type === 'jwt' ? jwtLogin(m, r, credentials.jwt) : appRoleLogin(m, r, credentials, remoteAddr);
    },

    async loginOnBehalfOf(env, method, role, { actorToken, userJwt }) {
      const { info: actorInfo, actor } = await actorOf(validateEnvName(env), actorToken);
      const { m, r } = await roleOf(env, method, role);
      if (m.type !== 'jwt') throw wrongType('jwt', 'On-behalf-of exchange takes a user JWT.');
      const rc = r.config as JwtRoleConfig;
      if (rc.identity_kind !== 'user') {
        throw badRequest(
          'NotAUserRole',
          `Login role ${r.name} issues workload identities`,
          'On-behalf-of exchange needs a role with identity_kind "user".',
        );
      }
      const claims = await verifiedClaims(m, r, userJwt);
      const identity = await identityFromJwt(m, r, claims);
      // The user's token never outlives the workload token it is derived from (its parent).
      const left = Math.floor(((actorInfo.expiresAt ?? Number.MAX_SAFE_INTEGER) - Date.now()) / 1000);
      if (left < 1) {
        throw new CustodyError(
          'InvalidToken',
          401,
          "The workload's own token is about to expire",
          'Renew it first.',
        );
      }
      const { token, info } = await tokens.create({
        policies: [],
        identityId: identity.id,
        actorIdentityId: actor.id,
        parent: actorInfo,
        env: m.env,
        authMethod: m.name,
        ttlSeconds: Math.min(rc.token_ttl, left),
        maxTtlSeconds: Math.min(rc.token_max_ttl, left),
        renewable: true,
        displayName: displayName(m.name, r.name, identity.name),
        meta: { role: r.name, on_behalf_of: 'true' },
      });
      return { token, info, identity, actor };
    },

    async purgeExpired(now = Date.now()) {
      const res = await deps.storage.db
        .deleteFrom('approle_secret_ids')
        .where('expires_at', '<=', now)
        .executeTakeFirst();
      return Number(res.numDeletedRows);
    },

    async close() {
      for (const key of [...sources.keys()]) dropSource(key);
    },
  };
}
