import { CustodyError, conflict } from '../../errors.js';
import type { Identity, IdentityKind } from '../identity-service.js';
import {
  claimAt,
  claimGroups,
  failedBoundClaim,
  mappedMetadata,
  parseClaimPath,
  userClaimValue,
} from './claims.js';
import { invalidJwt, verifyJwt } from './jwt-verifier.js';
import type { MethodContext } from './method-context.js';
import type { AuthMethod, JwtMethodConfig, JwtRoleConfig, LoginRole } from './types.js';

/** Verifies a JWT against the method's keys and issuer and the role's bounds; returns its claims. */
export async function verifiedClaims(
  ctx: MethodContext,
  m: AuthMethod,
  r: LoginRole,
  jwt: string,
): Promise<Record<string, unknown>> {
  const mc = m.config as JwtMethodConfig;
  const rc = r.config as JwtRoleConfig;
  const claims = (await verifyJwt(jwt, await ctx.keySources.for(m), {
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
async function assertSameKind(
  ctx: MethodContext,
  m: AuthMethod,
  name: string,
  kind: IdentityKind,
): Promise<void> {
  const existing = await ctx.identities.resolve(`${m.env}/${m.name}/${name}`).catch((err: unknown) => {
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

/** The identity that verified claims speak for, created or updated from the role's claim mappings. */
export async function identityFromJwt(
  ctx: MethodContext,
  m: AuthMethod,
  r: LoginRole,
  claims: Record<string, unknown>,
): Promise<Identity> {
  const rc = r.config as JwtRoleConfig;
  const name = userClaimValue(claims, rc.user_claim);
  if (name === null) {
    throw invalidJwt(
      'user claim',
      `The token's user claim \`${rc.user_claim}\` is missing, empty, longer than 256 characters or not a string or number.`,
    );
  }
  await assertSameKind(ctx, m, name, rc.identity_kind);
  return ctx.identities.upsertFromLogin({
    env: m.env,
    authMethod: m.name,
    loginRole: r.name,
    kind: rc.identity_kind,
    name,
    metadata: mappedMetadata(claims, rc.claim_mappings),
    claimGroups: rc.groups_claim === null ? undefined : claimGroups(claims, rc.groups_claim),
  });
}
