import type { TokenInfo } from '../auth/token-service.js';
import { ROOT_POLICY } from '../auth/token-service.js';

export interface Decision {
  allowed: boolean;
  /** What granted it (audited): a policy name today, an assignment id once RBAC lands. */
  source: string | null;
  reason?: string;
}

/** Decides whether a caller may perform an action on a resource. Default deny. */
export interface Authorizer {
  authorize(caller: TokenInfo, action: string, resource: string): Promise<Decision>;
}

/** Actions every authenticated token may perform on itself. */
const SELF_ACTIONS = new Set(['token/lookup-self', 'token/renew-self', 'token/revoke-self']);

/**
 * Policy-based authorizer: `root` may do everything; any other token only manages itself.
 * Role assignments scoped to environments replace this when RBAC lands.
 */
export function createPolicyAuthorizer(): Authorizer {
  return {
    async authorize(caller, action) {
      if (caller.policies.includes(ROOT_POLICY)) return { allowed: true, source: 'policy:root' };
      if (SELF_ACTIONS.has(action)) return { allowed: true, source: 'self' };
      return { allowed: false, source: null, reason: 'no policy or assignment grants this action' };
    },
  };
}
