import type { Authorizer } from '../access/authorizer.js';
import type { AuditService } from '../audit/audit-service.js';
import { addressAllowed } from '../auth/methods/cidr.js';
import type { TokenInfo, TokenService } from '../auth/token-service.js';
import { ROOT_POLICY } from '../auth/token-service.js';
import type { Barrier } from '../barrier/barrier.js';
import { CustodyError, sealed } from '../errors.js';
import type { Metrics } from '../telemetry/metrics.js';

export type Door = 'native' | 'azure' | 'vault';

/** One request from any front door, translated by its adapter. */
export interface Operation {
  action: string;
  /** `ENV/NAME`, `ENV`, a token accessor…; empty for broker-wide operations. */
  resource: string;
  door: Door;
  requestId: string;
  remoteAddr: string;
  /** The credential as presented; undefined when none was sent. */
  token?: string;
  /** Served without a token (seal status, unseal, init). */
  anonymous?: boolean;
  /** Served while sealed (status, unseal). */
  whileSealed?: boolean;
  /**
   * The service authorizes (the scope is only known once the record is read, e.g. revoking an
   * assignment by id). Authentication and audit still happen here.
   */
  authorizeInService?: boolean;
  /** Request parameters safe to record as they are. */
  data?: Record<string, unknown>;
  /** Request values recorded only as HMAC digests (secret values, tokens, shares). */
  sensitive?: Record<string, unknown>;
}

export interface OperationContext {
  caller: TokenInfo | null;
  /** Record response fields in the audit entry; `sensitive` ones as HMAC digests only. */
  auditResponse(fields: { data?: Record<string, unknown>; sensitive?: Record<string, unknown> }): void;
}

/**
 * The one path every operation walks: sealed check → authenticate → audit request (fail closed)
 * → authorize → service → audit response. Adapters never do any of these themselves.
 */
export class Pipeline {
  constructor(
    private readonly deps: {
      barrier: Barrier;
      tokens: TokenService;
      authorizer: Authorizer;
      audit: AuditService;
      metrics: Metrics;
    },
  ) {}

  async run<T>(op: Operation, handler: (ctx: OperationContext) => Promise<T>): Promise<T> {
    const started = process.hrtime.bigint();
    let outcome = 'ok';
    try {
      return await this.execute(op, handler);
    } catch (err) {
      outcome =
        err instanceof CustodyError && (err.status === 401 || err.status === 403) ? 'denied' : 'error';
      throw err;
    } finally {
      this.deps.metrics.requests.inc({ operation: op.action, door: op.door, outcome });
      this.deps.metrics.latency.observe(
        { operation: op.action },
        Number(process.hrtime.bigint() - started) / 1e9,
      );
    }
  }

  private async execute<T>(op: Operation, handler: (ctx: OperationContext) => Promise<T>): Promise<T> {
    const { barrier, tokens, authorizer, audit } = this.deps;
    if (barrier.isSealed && !op.whileSealed) throw sealed();

    let caller: TokenInfo | null = null;
    let denial: CustodyError | null = null;
    let grantedBy: string | null = null;
    if (!op.anonymous) {
      if (!op.token) {
        denial = new CustodyError(
          'MissingToken',
          401,
          'This request needs a token',
          'Set CUSTODY_TOKEN or pass --token.',
        );
      } else {
        caller = await tokens.resolve(op.token);
        // A token bound to networks (AppRole token_bound_cidrs) works only from inside them.
        if (caller?.meta.bound_cidrs && !addressAllowed(op.remoteAddr, caller.meta.bound_cidrs.split(','))) {
          caller = null;
          denial = new CustodyError(
            'AddressNotAllowed',
            403,
            'This token may not be used from this address',
            'The token is bound to other networks (token_bound_cidrs).',
          );
        } else if (!caller) {
          denial = new CustodyError(
            'InvalidToken',
            401,
            'The token is unknown, expired or revoked',
            'Log in again or ask for a new token.',
          );
        } else {
          const decision = op.authorizeInService
            ? { allowed: true, source: 'service' }
            : await authorizer.authorize(caller, op.action, op.resource);
          grantedBy = decision.source;
          if (!decision.allowed) {
            denial = new CustodyError(
              'PermissionDenied',
              403,
              `Not allowed to ${op.action} on ${op.resource || 'this broker'}: ${decision.reason ?? 'denied'}`,
              'Ask an administrator for a role assignment that grants this action at this scope.',
            );
          }
        }
      }
    }

    const auth = caller
      ? {
          accessor: caller.accessor,
          identity: caller.identityId ?? caller.displayName,
          method: caller.authMethod ?? 'token',
          env: caller.env,
          actor: caller.actorIdentityId,
          policies: caller.policies,
          root: caller.policies.includes(ROOT_POLICY),
          granted_by: grantedBy,
        }
      : null;
    const base = {
      requestId: op.requestId,
      door: op.door,
      remoteAddr: op.remoteAddr,
      auth,
      action: op.action,
      resource: op.resource,
    };
    // Fail closed: if this throws (no sink took the entry) nothing below runs.
    await audit.log({
      ...base,
      type: 'request',
      outcome: denial ? 'denied' : 'allowed',
      errorCode: denial?.code,
      data: op.data,
      sensitive: op.sensitive,
    });
    if (denial) {
      await audit.log({
        ...base,
        type: 'response',
        outcome: 'denied',
        status: denial.status,
        errorCode: denial.code,
      });
      throw denial;
    }

    let response: { data?: Record<string, unknown>; sensitive?: Record<string, unknown> } = {};
    let result: T;
    try {
      result = await handler({ caller, auditResponse: (f) => (response = f) });
    } catch (err) {
      const e = err instanceof CustodyError ? err : null;
      await audit.log({
        ...base,
        type: 'response',
        outcome: 'error',
        status: e?.status ?? 500,
        errorCode: e?.code ?? 'InternalError',
      });
      throw err;
    }
    await audit.log({
      ...base,
      type: 'response',
      outcome: 'ok',
      status: 200,
      data: response.data,
      sensitive: response.sensitive,
    });
    return result;
  }
}
