import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { badRequest, CustodyError, notFound } from '../../errors.js';
import type { Storage } from '../../storage/storage.js';
import { addressAllowed, parseCidrs } from './cidr.js';
import type { AppRoleRoleConfig, SecretIdIssued } from './types.js';

/** Role ids and secret ids carry 256 random bits, so a plain SHA-256 is a safe lookup hash. */
const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest();

export const newRoleId = () => `rid_${randomBytes(24).toString('base64url')}`;

const invalidSecretId = (check: string, hint: string) =>
  new CustodyError('InvalidSecretId', 401, `The secret id failed the ${check} check`, hint);

/** Compares a presented role id with the stored one in constant time. */
export function roleIdMatches(presented: string, stored: string | null): boolean {
  return stored !== null && timingSafeEqual(sha256(presented), sha256(stored));
}

interface RoleRef {
  env: string;
  method: string;
  role: string;
}

function metadataOf(input: Record<string, string> | undefined): Record<string, string> {
  const entries = Object.entries(input ?? {});
  if (
    entries.length > 32 ||
    entries.some(([k, v]) => !/^[A-Za-z0-9_.-]{1,64}$/.test(k) || typeof v !== 'string' || v.length > 512)
  ) {
    throw badRequest(
      'InvalidMetadata',
      'metadata is at most 32 keys (1-64 letters, digits, `_ . -`) with string values up to 512 characters',
    );
  }
  return Object.fromEntries(entries);
}

/** AppRole secret ids: issued once, stored only as SHA-256 hashes, with TTL, use count and CIDRs. */
export class SecretIds {
  constructor(private readonly storage: Storage) {}

  async issue(
    ref: RoleRef,
    config: AppRoleRoleConfig,
    input: { metadata?: Record<string, string>; cidrs?: string[] },
  ): Promise<SecretIdIssued> {
    const secretId = `sid_${randomBytes(32).toString('base64url')}`;
    const now = Date.now();
    const row = {
      hash: sha256(secretId).toString('hex'),
      accessor: `sida_${randomBytes(16).toString('base64url')}`,
      env: ref.env,
      method: ref.method,
      role: ref.role,
      cidrs: JSON.stringify(parseCidrs(input.cidrs, 'cidrs')),
      uses_left: config.secret_id_num_uses === 0 ? null : config.secret_id_num_uses,
      metadata: JSON.stringify(metadataOf(input.metadata)),
      created_at: now,
      expires_at: config.secret_id_ttl === 0 ? null : now + config.secret_id_ttl * 1000,
    };
    await this.storage.db.insertInto('approle_secret_ids').values(row).execute();
    return { secretId, accessor: row.accessor, expiresAt: row.expires_at, usesLeft: row.uses_left };
  }

  async destroy(ref: RoleRef, accessor: string): Promise<void> {
    const res = await this.storage.db
      .deleteFrom('approle_secret_ids')
      .where('accessor', '=', accessor)
      .where('env', '=', ref.env)
      .where('method', '=', ref.method)
      .where('role', '=', ref.role)
      .executeTakeFirst();
    if (Number(res.numDeletedRows) === 0) {
      throw notFound(
        'SecretIdNotFound',
        'No secret id of this role has that accessor',
        'It may have expired, been used up or destroyed already.',
      );
    }
  }

  /**
   * Checks a presented secret id for this role from `ip` and consumes one use (atomically; the
   * last use deletes it). Returns its accessor and metadata.
   */
  async consume(
    ref: RoleRef,
    config: AppRoleRoleConfig,
    secretId: string,
    ip: string,
  ): Promise<{ accessor: string; metadata: Record<string, string> }> {
    const { db } = this.storage;
    const hash = sha256(secretId);
    const row = await db
      .selectFrom('approle_secret_ids')
      .selectAll()
      .where('hash', '=', hash.toString('hex'))
      .executeTakeFirst();
    if (
      !row ||
      !timingSafeEqual(Buffer.from(row.hash, 'hex'), hash) ||
      row.env !== ref.env ||
      row.method !== ref.method ||
      row.role !== ref.role
    ) {
      throw invalidSecretId('match', 'The secret id is unknown for this role (or was destroyed).');
    }
    if (row.expires_at !== null && row.expires_at <= Date.now()) {
      await db.deleteFrom('approle_secret_ids').where('hash', '=', row.hash).execute();
      throw invalidSecretId('expiry', 'The secret id has expired; ask for a new one.');
    }
    const cidrs = JSON.parse(row.cidrs) as string[];
    if (!addressAllowed(ip, config.secret_id_bound_cidrs) || !addressAllowed(ip, cidrs)) {
      throw new CustodyError(
        'AddressNotAllowed',
        403,
        'The secret id may not be used from this address',
        'The role or the secret id is bound to CIDRs that do not include the caller.',
      );
    }
    if (!addressAllowed(ip, config.token_bound_cidrs)) {
      throw new CustodyError(
        'AddressNotAllowed',
        403,
        "This address is outside the role's token_bound_cidrs",
        'Log in from an address inside the CIDRs the tokens are bound to.',
      );
    }
    if (row.uses_left !== null) {
      const res = await db
        .updateTable('approle_secret_ids')
        .set((eb) => ({ uses_left: eb('uses_left', '-', 1) }))
        .where('hash', '=', row.hash)
        .where('uses_left', '>=', 1)
        .executeTakeFirst();
      await db
        .deleteFrom('approle_secret_ids')
        .where('hash', '=', row.hash)
        .where('uses_left', '<=', 0)
        .execute();
      if (Number(res.numUpdatedRows) === 0) {
        throw invalidSecretId('use count', 'The secret id has been used up; ask for a new one.');
      }
    }
    return { accessor: row.accessor, metadata: JSON.parse(row.metadata) as Record<string, string> };
  }
}
