import { randomBytes } from 'node:crypto';
import {
  BlobServiceClient,
  type ContainerClient,
  generateBlobSASQueryParameters,
  type SASProtocol,
  type SignedIdentifier,
  StorageSharedKeyCredential,
} from '@azure/storage-blob';
import {
  StorageSharedKeyCredential as DataLakeKey,
  DirectorySASPermissions,
  generateDataLakeSASQueryParameters,
} from '@azure/storage-file-datalake';
import { badRequest, CustodyError, conflict } from '../../errors.js';
import type { Engine, IssueContext, IssuedCredential, LeaseTerms, PreparedCredential } from '../engine.js';
import { prefixDepth } from '../object-prefix.js';
import type { AzureBlobConfig, AzureBlobRole } from './config.js';

/**
 * `azure-blob`: service SAS tokens signed with the account key, scoped to one container (or, on
 * accounts with a hierarchical namespace, one directory: `sr=d`), limited to the role's permissions.
 *
 * Early revocation uses stored access policies. Azure allows five per container, so they are a
 * scarce slot pool, not a per-role template: a `policy` lease takes one slot of its own (id
 * `cst-<random>`, expiry and permissions live in the policy, the SAS only names it), revoking the
 * lease deletes that policy and with it every request the SAS could still make, and renewing moves
 * the policy's expiry. Sharing one policy among several leases would make revoking one lease revoke
 * its neighbours, so leases never share: when a container's five slots are taken, issuing fails with
 * 409 PolicySlotsExhausted (expired Custody policies are pruned first; policies that are not
 * Custody's are kept untouched). Roles that need more concurrent leases per container use
 * `revocation: "expiry-only"`: a plain SAS with its own expiry, marked not revocable early.
 */

export interface AzureRevocationData {
  container: string;
  /** The stored access policy id, or null for an expiry-only SAS. */
  policy: string | null;
}

const MAX_POLICIES = 5;
const POLICY_PREFIX = 'cst-';

export class AzureBlobEngine implements Engine<AzureBlobRole> {
  readonly type = 'azure-blob';
  private readonly key: StorageSharedKeyCredential;
  private readonly service: BlobServiceClient;
  private hns: boolean | undefined;
  /** One read-modify-write of a container's policies at a time on this node. */
  private readonly locks = new Map<string, Promise<unknown>>();

  constructor(private readonly config: AzureBlobConfig) {
    this.key = new StorageSharedKeyCredential(config.account_name, config.account_key);
    this.service = new BlobServiceClient(config.endpoint, this.key, {
      retryOptions: { maxTries: 2, tryTimeoutInMs: 20_000 },
    });
  }

  async verify(): Promise<void> {
    try {
      const info = await this.service.getAccountInfo();
      this.hns = info.isHierarchicalNamespaceEnabled === true;
    } catch (err) {
      const status = (err as { statusCode?: number }).statusCode;
      if (status === 403)
        throw badRequest(
          'EngineAuthFailed',
          `Storage account ${this.config.account_name} at ${this.config.endpoint} refused the account key`,
          'Check account_name and account_key (key1 or key2 of this account); a regenerated key invalidates the old one.',
        );
      throw this.fail(err, 'Checking the storage account', 400);
    }
  }

  leaseTerms(role: AzureBlobRole): LeaseTerms {
    return role.revocation === 'policy'
      ? { revocable: true, renewable: true }
      : { revocable: false, renewable: false };
  }

  prepare(role: AzureBlobRole): PreparedCredential {
    const id = randomBytes(12).toString('base64url');
    const policy = role.revocation === 'policy' ? `${POLICY_PREFIX}${id}` : null;
    const revocation: AzureRevocationData = { container: role.container, policy };
    return { username: policy ?? `sas-${id}`, password: '', revocation: { ...revocation } };
  }

  async create(
    role: AzureBlobRole,
    prepared: PreparedCredential,
    ctx: IssueContext,
  ): Promise<IssuedCredential> {
    if (role.prefix && (await this.isHns()) !== true) {
      throw badRequest(
        'PrefixNeedsHierarchicalNamespace',
        `Storage account ${this.config.account_name} has no hierarchical namespace: a SAS cannot be limited to the prefix ${role.prefix}`,
        'Azure scopes a SAS to a directory (sr=d) only on accounts with a hierarchical namespace (Data Lake Storage). Enable it, or give each dataset its own container and drop the prefix.',
      );
    }
    const policy = (prepared.revocation as unknown as AzureRevocationData).policy;
    if (policy) {
      await this.withContainer(role.container, async (c) => {
        const { identifiers, publicAccess } = await this.readPolicies(c);
        const now = Date.now();
        const kept = identifiers.filter((i) => !isExpiredOurs(i, now));
        if (!kept.some((i) => i.id === policy)) {
          if (kept.length >= MAX_POLICIES) {
            const ours = kept.filter((i) => i.id.startsWith(POLICY_PREFIX)).length;
            throw conflict(
              'PolicySlotsExhausted',
              `Container ${role.container} already has ${kept.length} stored access policies (${ours} for Custody leases): Azure allows ${MAX_POLICIES}`,
              'Revoke or wait for a lease on this container, give concurrent jobs one lease each fewer, or use revocation: "expiry-only" on the role (no slot, not revocable early).',
            );
          }
          kept.push({
            id: policy,
            accessPolicy: { expiresOn: ctx.expiresAt, permissions: role.permissions },
          });
        }
        await this.writePolicies(c, kept, publicAccess, policy, 'present');
      });
    }
    const token = this.sign(role, policy, ctx.expiresAt);
    const containerUrl = `${this.config.endpoint}/${role.container}`;
    const data: Record<string, string> = {
      AZURE_STORAGE_ACCOUNT: this.config.account_name,
      AZURE_STORAGE_ACCOUNT_URL: this.config.endpoint,
      AZURE_STORAGE_SAS_TOKEN: token,
      AZURE_STORAGE_CONTAINER: role.container,
      AZURE_STORAGE_PREFIX: role.prefix,
      AZURE_STORAGE_CONTAINER_SAS_URL: `${containerUrl}?${token}`,
      AZURE_STORAGE_ACCOUNT_SAS_URL: `${this.config.endpoint}?${token}`,
      revocable_early: role.revocation === 'policy' ? 'true' : 'false',
    };
    if (role.prefix) data.AZURE_STORAGE_PREFIX_SAS_URL = `${containerUrl}/${role.prefix}?${token}`;
    return { username: prepared.username, password: token, data };
  }

  async renew(role: AzureBlobRole, revocation: Record<string, unknown>, expiresAt: Date): Promise<void> {
    const r = revocation as unknown as AzureRevocationData;
    const policy = r.policy;
    if (!policy) return; // lease terms say not renewable; nothing to move
    await this.withContainer(r.container, async (c) => {
      const { identifiers, publicAccess } = await this.readPolicies(c);
      const mine = identifiers.find((i) => i.id === policy);
      if (!mine)
        throw new CustodyError(
          'EngineError',
          409,
          `The stored access policy of this lease is gone from container ${r.container}`,
          'Somebody removed it (or the container’s policies were replaced): issue new credentials.',
        );
      mine.accessPolicy = { ...mine.accessPolicy, expiresOn: expiresAt, permissions: role.permissions };
      await this.writePolicies(c, identifiers, publicAccess, policy, 'present');
    });
  }

  async revoke(_role: AzureBlobRole | null, revocation: Record<string, unknown>): Promise<void> {
    const r = revocation as unknown as AzureRevocationData;
    const policy = r.policy;
    if (!policy) return; // an expiry-only SAS: nothing to end early (the lease says so)
    await this.withContainer(r.container, async (c) => {
      let current: Awaited<ReturnType<AzureBlobEngine['readPolicies']>>;
      try {
        current = await this.readPolicies(c);
      } catch (err) {
        if ((err as { statusCode?: number }).statusCode === 404) return; // container gone: so is the policy
        throw err;
      }
      const now = Date.now();
      const kept = current.identifiers.filter((i) => i.id !== policy && !isExpiredOurs(i, now));
      if (!current.identifiers.some((i) => i.id === policy)) return; // already gone
      await this.writePolicies(c, kept, current.publicAccess, policy, 'absent');
    });
  }

  async setPassword(): Promise<void> {
    throw badRequest(
      'NotSupported',
      'azure-blob engines have no static roles',
      'Use dynamic roles: each lease gets its own SAS.',
    );
  }

  async rotateRoot(): Promise<Record<string, unknown>> {
    throw badRequest(
      'NotSupported',
      'azure-blob cannot rotate the account key itself',
      'Regenerate the key the engine does not use in Azure (`az storage account keys renew`), configure the engine with it, then regenerate the other.',
    );
  }

  async close(): Promise<void> {}

  /** The SAS query string (no leading `?`). */
  sign(role: AzureBlobRole, policy: string | null, expiresAt: Date): string {
    const protocol = (role.https_only ? 'https' : 'https,http') as SASProtocol;
    const ipRange = role.ip_range
      ? { start: role.ip_range.split('-')[0]!, end: role.ip_range.split('-')[1] }
      : undefined;
    // With a policy, expiry and permissions live in the policy only (Azure refuses a SAS that sets
    // a field its policy sets too), which is also what lets renew move the expiry.
    const timing = policy ? { identifier: policy } : { expiresOn: expiresAt, permissions: role.permissions };
    if (role.prefix) {
      // `sr=d` needs service version 2020-02-10 or later: the SDK signs with its own, newer one.
      const key = new DataLakeKey(this.config.account_name, this.config.account_key);
      return generateDataLakeSASQueryParameters(
        {
          fileSystemName: role.container,
          pathName: role.prefix.slice(0, -1),
          isDirectory: true,
          directoryDepth: prefixDepth(role.prefix),
          protocol,
          ipRange,
          ...(policy
            ? { identifier: policy }
            : { expiresOn: expiresAt, permissions: DirectorySASPermissions.parse(role.permissions) }),
        },
        key,
      ).toString();
    }
    return generateBlobSASQueryParameters(
      { containerName: role.container, protocol, ipRange, ...timing } as Parameters<
        typeof generateBlobSASQueryParameters
      >[0],
      this.key,
    ).toString();
  }

  private async isHns(): Promise<boolean> {
    if (this.hns === undefined) await this.verify();
    return this.hns === true;
  }

  private async withContainer<T>(container: string, fn: (c: ContainerClient) => Promise<T>): Promise<T> {
    const prev = this.locks.get(container) ?? Promise.resolve();
    const run = prev.catch(() => {}).then(() => fn(this.service.getContainerClient(container)));
    this.locks.set(container, run);
    try {
      return await run.catch((err) => {
        throw this.fail(err, `Updating the stored access policies of container ${container}`);
      });
    } finally {
      if (this.locks.get(container) === run) this.locks.delete(container);
    }
  }

  private async readPolicies(c: ContainerClient) {
    const res = await c.getAccessPolicy();
    return { identifiers: res.signedIdentifiers ?? [], publicAccess: res.blobPublicAccess };
  }

  /**
   * Set Container ACL replaces the whole list and has no ETag condition, so another broker node
   * may write at the same time: read back, and write again while our change is missing.
   */
  private async writePolicies(
    c: ContainerClient,
    identifiers: SignedIdentifier[],
    publicAccess: Awaited<ReturnType<AzureBlobEngine['readPolicies']>>['publicAccess'],
    id: string,
    want: 'present' | 'absent',
  ): Promise<void> {
    let list = identifiers;
    let access = publicAccess;
    const wanted = list.find((i) => i.id === id);
    for (let attempt = 1; ; attempt++) {
      await c.setAccessPolicy(access, list);
      const now = await this.readPolicies(c);
      const has = now.identifiers.some((i) => i.id === id);
      if (has === (want === 'present')) return;
      if (attempt >= 4)
        throw new CustodyError(
          'EngineError',
          503,
          'The container’s stored access policies kept changing under this update',
          'Another writer replaces them at the same time; try again.',
        );
      list = now.identifiers.filter((i) => i.id !== id);
      if (want === 'present' && wanted) {
        if (list.length >= MAX_POLICIES)
          throw conflict(
            'PolicySlotsExhausted',
            'The container’s 5 stored access policies were taken meanwhile',
            'Try again later.',
          );
        list.push(wanted);
      }
      access = now.publicAccess;
    }
  }

  /** A CustodyError for a failed storage call; never carries the key or a SAS. */
  private fail(err: unknown, what: string, status = 502): CustodyError {
    if (err instanceof CustodyError) return err;
    const e = err as { statusCode?: number; code?: string; name?: string };
    const where = `${this.config.account_name} at ${this.config.endpoint}`;
    if (e.statusCode === 404)
      return new CustodyError(
        'EngineError',
        status === 400 ? 400 : 404,
        `${what} failed: storage account ${where} has no such container`,
        'Create the container first, or fix the role’s container name.',
      );
    if (e.statusCode === 403)
      return new CustodyError(
        'EngineAuthFailed',
        status,
        `${what} failed: storage account ${where} refused the account key`,
        'The key may have been regenerated: configure the engine with the current key.',
      );
    if (typeof e.statusCode === 'number')
      return new CustodyError(
        'EngineError',
        status,
        `${what} failed: Azure Storage answered HTTP ${e.statusCode}${typeof e.code === 'string' ? ` ${e.code.slice(0, 60)}` : ''}`,
        'Check the role and the storage account.',
      );
    return new CustodyError(
      'EngineUnreachable',
      status,
      `${what} failed: storage account ${where} is unreachable`,
      'Check the endpoint and that the broker can reach it.',
    );
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `AzureBlobEngine { account: '${this.config.account_name}', endpoint: '${this.config.endpoint}' }`;
  }
}

const isExpiredOurs = (i: SignedIdentifier, now: number) =>
  i.id.startsWith(POLICY_PREFIX) &&
  i.accessPolicy?.expiresOn !== undefined &&
  i.accessPolicy.expiresOn.getTime() < now;
