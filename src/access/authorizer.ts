import type { TokenInfo } from '../auth/token-service.js';

export interface Decision {
  allowed: boolean;
  /** What granted it (audited): `policy:root`, `self`, or an assignment id (two for on-behalf-of). */
  source: string | null;
  reason?: string;
}

/** Decides whether a caller may perform an action on a resource. Default deny. */
export interface Authorizer {
  authorize(caller: TokenInfo, action: string, resource: string): Promise<Decision>;
}
