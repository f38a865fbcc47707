import { badRequest, CustodyError } from '../../errors.js';
import { validateEnvName } from '../../kv/names.js';
import type { Identity } from '../identity-service.js';
import type { TokenInfo } from '../token-service.js';
import type { AuthMethodService } from './auth-method-service.js';
import { identityFromJwt, verifiedClaims } from './jwt-identity.js';
import { issueLoginToken } from './login.js';
import { type MethodContext, wrongType } from './method-context.js';
import type { JwtRoleConfig } from './types.js';

/** On-behalf-of exchange: a workload trades a user's JWT for a token acting as that user. */
export function onBehalfOf(ctx: MethodContext): Pick<AuthMethodService, 'loginOnBehalfOf'> {
  const { tokens, identities } = ctx;

  /** The workload behind `actorToken`: a live workload token of `env`, itself no on-behalf-of token. */
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
    async loginOnBehalfOf(env, method, role, { actorToken, userJwt }) {
      const { info: actorInfo, actor } = await actorOf(validateEnvName(env), actorToken);
      const { m, r } = await ctx.roleOf(env, method, role);
      if (m.type !== 'jwt') throw wrongType('jwt', 'On-behalf-of exchange takes a user JWT.');
      const rc = r.config as JwtRoleConfig;
      if (rc.identity_kind !== 'user') {
        throw badRequest(
          'NotAUserRole',
          `Login role ${r.name} issues workload identities`,
          'On-behalf-of exchange needs a role with identity_kind "user".',
        );
      }
      const claims = await verifiedClaims(ctx, m, r, userJwt);
      const identity = await identityFromJwt(ctx, m, r, claims);
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
      const issued = await issueLoginToken(ctx, m, r, identity, {
        actorIdentityId: actor.id,
        parent: actorInfo,
        ttlSeconds: Math.min(rc.token_ttl, left),
        maxTtlSeconds: Math.min(rc.token_max_ttl, left),
        meta: { role: r.name, on_behalf_of: 'true' },
      });
      return { ...issued, actor };
    },
  };
}
