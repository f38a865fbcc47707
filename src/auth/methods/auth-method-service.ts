import type { Barrier } from '../../barrier/barrier.js';
import type { KvService } from '../../kv/kv-service.js';
import type { Storage } from '../../storage/storage.js';
import type { Identity, IdentityService } from '../identity-service.js';
import type { TokenService } from '../token-service.js';
import type { AppRoleRoleConfigInput } from './approle-config.js';
import type { JwtMethodConfigInput, JwtRoleConfigInput } from './jwt-config.js';
import { logins } from './login.js';
import { loginRoles } from './login-roles.js';
import { methodConfig } from './method-config.js';
import { createMethodContext } from './method-context.js';
import { onBehalfOf } from './on-behalf-of.js';
import { appRoleSecretIds } from './secret-ids.js';
import type {
  AuthMethod,
  AuthMethodType,
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

  /** Deletes AppRole secret ids past their TTL; returns how many. */
  purgeExpired(now?: number): Promise<number>;
  /** Releases cached key sets (HTTP agents). */
  close(): Promise<void>;
}

export interface AuthMethodDeps {
  storage: Storage;
  barrier: Barrier;
  tokens: TokenService;
  identities: IdentityService;
  kv: Pick<KvService, 'getEnvironment'>;
}

/** One service assembled from its parts, which share one context (stores, key-set cache). */
export function createAuthMethodService(deps: AuthMethodDeps): AuthMethodService {
  const ctx = createMethodContext(deps);
  return {
    ...methodConfig(ctx),
    ...loginRoles(ctx),
    ...appRoleSecretIds(ctx),
    ...logins(ctx),
    ...onBehalfOf(ctx),
    async close() {
      ctx.keySources.dropAll();
    },
  };
}
