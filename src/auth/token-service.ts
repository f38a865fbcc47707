import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Selectable } from 'kysely';
import { badRequest, CustodyError, notFound } from '../errors.js';
import type { Storage } from '../storage/storage.js';
import type { TokenTable } from '../storage/tables.js';

export const ROOT_POLICY = 'root';
const DEFAULT_TTL_S = 24 * 3600;
const DEFAULT_MAX_TTL_S = 32 * 24 * 3600;

/** What a token speaks for. Never holds the token itself. */
export interface TokenInfo {
  accessor: string;
  policies: string[];
  identityId: string | null;
  displayName: string;
  meta: Record<string, string>;
  parentAccessor: string | null;
  createdAt: number;
  expiresAt: number | null;
  maxExpiresAt: number | null;
  ttlSeconds: number;
  renewable: boolean;
  /** Set for login tokens: the environment their identity lives in. */
  env: string | null;
  /** On-behalf-of tokens: the workload identity acting for the user in identityId. */
  actorIdentityId: string | null;
  authMethod: string | null;
}

export interface CreateTokenInput {
  policies: string[];
  ttlSeconds?: number;
  maxTtlSeconds?: number;
  renewable?: boolean;
  displayName?: string;
  meta?: Record<string, string>;
  /** The creating token: the new one becomes its child and may hold only a subset of its policies. */
  parent?: TokenInfo;
  identityId?: string | null;
  env?: string | null;
  actorIdentityId?: string | null;
  authMethod?: string | null;
  /** Only for the bootstrap root token: never expires, not renewable. */
  bootstrapRoot?: boolean;
}

export interface TokenService {
  create(input: CreateTokenInput): Promise<{ token: string; info: TokenInfo }>;
  /** Resolves a presented token; null when unknown, revoked or expired. */
  resolve(token: string): Promise<TokenInfo | null>;
  lookupAccessor(accessor: string): Promise<TokenInfo>;
  renew(accessor: string, incrementSeconds?: number): Promise<TokenInfo>;
  /**
   * Revokes the token and, recursively, every token created from it. Returns how many. The
   * `onRevoke` listeners then get the revoked accessors (their leases end with them).
   */
  revoke(accessor: string): Promise<number>;
  onRevoke(listener: (accessors: string[]) => Promise<unknown>): void;
  purgeExpired(now?: number): Promise<number>;
}

// Tokens carry 256 random bits, so a plain SHA-256 is a safe lookup hash (no salt or KDF needed).
const hashToken = (token: string) => createHash('sha256').update(token, 'utf8').digest();

export function createTokenService(storage: Storage): TokenService {
  const { db } = storage;
  const revokeListeners: ((accessors: string[]) => Promise<unknown>)[] = [];

  const toInfo = (r: Selectable<TokenTable>): TokenInfo => ({
    accessor: r.accessor,
    policies: JSON.parse(r.policies) as string[],
    identityId: r.identity_id,
    displayName: r.display_name,
    meta: JSON.parse(r.meta) as Record<string, string>,
    parentAccessor: r.parent_accessor,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    maxExpiresAt: r.max_expires_at,
    ttlSeconds: r.ttl_seconds,
    renewable: r.renewable === 1,
    env: r.env,
    actorIdentityId: r.actor_identity_id,
    authMethod: r.auth_method,
  });

  const live = (r: Selectable<TokenTable> | undefined, now = Date.now()) =>
    r && (r.expires_at === null || r.expires_at > now) ? r : undefined;

  async function byAccessor(accessor: string): Promise<Selectable<TokenTable>> {
    if (!/^[A-Za-z0-9_-]{8,64}$/.test(accessor)) {
      throw badRequest(
        'InvalidAccessor',
        'That is not a token accessor',
        'Accessors look like acc_… and come from `custody token create`.',
      );
    }
    const r = live(
      await db.selectFrom('tokens').selectAll().where('accessor', '=', accessor).executeTakeFirst(),
    );
    if (!r)
      throw notFound(
        'TokenNotFound',
        'No live token has that accessor',
        'It may have expired or been revoked.',
      );
    return r;
  }

  return {
    async create(input) {
      const root = input.bootstrapRoot === true;
      const ttl = input.ttlSeconds ?? DEFAULT_TTL_S;
      const maxTtl = input.maxTtlSeconds ?? DEFAULT_MAX_TTL_S;
      for (const [n, v] of [
        ['ttl', ttl],
        ['max ttl', maxTtl],
      ] as const) {
        if (!Number.isInteger(v) || v < 1 || v > 10 * 365 * 86400) {
          throw badRequest(
            'InvalidTtl',
            `The token ${n} must be from 1 second to 10 years`,
            'Examples: 30m, 8h, 7d.',
          );
        }
      }
      if (ttl > maxTtl)
        throw badRequest(
          'InvalidTtl',
          'The ttl is longer than the max ttl',
          'Lower --ttl or raise --max-ttl.',
        );
      if (input.parent && !input.parent.policies.includes(ROOT_POLICY)) {
        const extra = input.policies.filter((p) => !input.parent!.policies.includes(p));
        if (extra.length > 0) {
          throw new CustodyError(
            'PermissionDenied',
            403,
            `Cannot create a token with policies you do not hold: ${extra.join(', ')}`,
            "A child token holds a subset of its parent's policies.",
          );
        }
      }
      const now = Date.now();
      const token = `cst_${randomBytes(32).toString('base64url')}`;
      const row = {
        accessor: `acc_${randomBytes(16).toString('base64url')}`,
        token_hash: hashToken(token).toString('hex'),
        parent_accessor: input.parent?.accessor ?? null,
        policies: JSON.stringify([...new Set(input.policies)].sort()),
        identity_id: input.identityId ?? null,
        display_name: input.displayName ?? (root ? 'root' : 'token'),
        meta: JSON.stringify(input.meta ?? {}),
        created_at: now,
        // The bootstrap root token does not expire: it is meant to be revoked after bootstrap.
        expires_at: root ? null : now + ttl * 1000,
        max_expires_at: root ? null : now + maxTtl * 1000,
        ttl_seconds: root ? 0 : ttl,
        renewable: root ? 0 : input.renewable === false ? 0 : 1,
        env: input.env ?? null,
        actor_identity_id: input.actorIdentityId ?? null,
        auth_method: input.authMethod ?? null,
      };
      await db.insertInto('tokens').values(row).execute();
      return { token, info: toInfo(row) };
    },

    async resolve(token) {
      if (typeof token !== 'string' || token.length < 10 || token.length > 200) return null;
      const hash = hashToken(token);
      const r = live(
        await db
          .selectFrom('tokens')
          .selectAll()
          .where('token_hash', '=', hash.toString('hex'))
          .executeTakeFirst(),
      );
      // The index lookup found the row; compare in constant time anyway so no timing path depends on the token.
      if (!r || !timingSafeEqual(Buffer.from(r.token_hash, 'hex'), hash)) return null;
      return toInfo(r);
    },

    lookupAccessor: async (accessor) => toInfo(await byAccessor(accessor)),

    async renew(accessor, incrementSeconds) {
      const r = await byAccessor(accessor);
      if (r.renewable !== 1) {
        throw new CustodyError(
          'TokenNotRenewable',
          400,
          'This token is not renewable',
          'Log in again or create a new token.',
        );
      }
      const inc = incrementSeconds ?? r.ttl_seconds;
      if (!Number.isInteger(inc) || inc < 1)
        throw badRequest(
          'InvalidTtl',
          'The increment must be a positive number of seconds',
          'Example: --increment 1h.',
        );
      const expires = Math.min(Date.now() + inc * 1000, r.max_expires_at ?? Number.MAX_SAFE_INTEGER);
      await db.updateTable('tokens').set({ expires_at: expires }).where('accessor', '=', accessor).execute();
      return toInfo({ ...r, expires_at: expires });
    },

    async revoke(accessor) {
      await byAccessor(accessor);
      const revoked = await storage.transaction(async (trx) => {
        // Breadth-first over the token tree; revoking a parent revokes every descendant.
        let frontier = [accessor];
        const all: string[] = [];
        while (frontier.length > 0) {
          const children = await trx
            .selectFrom('tokens')
            .select('accessor')
            .where('parent_accessor', 'in', frontier)
            .execute();
          await trx.deleteFrom('tokens').where('accessor', 'in', frontier).execute();
          all.push(...frontier);
          frontier = children.map((c) => c.accessor);
        }
        return all;
      });
      for (const l of revokeListeners) await l(revoked);
      return revoked.length;
    },

    onRevoke(listener) {
      revokeListeners.push(listener);
    },

    async purgeExpired(now = Date.now()) {
      const res = await db.deleteFrom('tokens').where('expires_at', '<=', now).executeTakeFirst();
      return Number(res.numDeletedRows);
    },
  };
}
