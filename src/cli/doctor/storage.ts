import type { Lease } from '../../client/lease.js';
import { describeError } from '../../client/redact.js';
import type { Doctor } from './checks.js';

/*
 * `custody doctor --creds` on a storage role (azure-blob, aws-s3): between issuing and revoking the
 * test lease, list the role's prefix with the official SDK, as the job would; after revoking, say
 * whether the credential really stopped (a SAS bound to a stored access policy) or only expires (STS,
 * expiry-only SAS). Nothing here prints a credential: the lease's secret values were remembered
 * by the caller and every line is redacted.
 */

interface StorageProbe {
  /** Tries the credential again after the lease was revoked. */
  afterRevoke(): Promise<void>;
}

const at = (l: Lease) => l.expiresAt.toISOString();

export async function checkStorageUse(
  d: Doctor,
  ref: string,
  lease: Lease,
): Promise<StorageProbe | undefined> {
  const data = lease.data;
  const name = `storage ${ref}`;
  let list: () => Promise<number>;
  let where: string;
  if (data.AZURE_STORAGE_SAS_TOKEN && data.AZURE_STORAGE_ACCOUNT_URL && data.AZURE_STORAGE_CONTAINER) {
    const { ContainerClient } = await import('@azure/storage-blob');
    const url = `${data.AZURE_STORAGE_ACCOUNT_URL}/${data.AZURE_STORAGE_CONTAINER}?${data.AZURE_STORAGE_SAS_TOKEN}`;
    const prefix = data.AZURE_STORAGE_PREFIX || undefined;
    where = `container ${data.AZURE_STORAGE_CONTAINER}${prefix ? ` under ${prefix}` : ''}`;
    list = async () => {
      const c = new ContainerClient(url, undefined, { retryOptions: { maxTries: 1 } });
      const page = await c.listBlobsFlat({ prefix }).byPage({ maxPageSize: 5 }).next();
      return page.done ? 0 : page.value.segment.blobItems.length;
    };
  } else if (data.AWS_SESSION_TOKEN && data.S3_BUCKET) {
    const { S3Client, ListObjectsV2Command } = await import('@aws-sdk/client-s3');
    where = `s3://${data.S3_BUCKET}/${data.S3_PREFIX ?? ''}`;
    list = async () => {
      const s3 = new S3Client({
        region: data.AWS_REGION,
        maxAttempts: 1,
        forcePathStyle: true,
        ...(data.AWS_ENDPOINT_URL_S3 ? { endpoint: data.AWS_ENDPOINT_URL_S3 } : {}),
        credentials: {
          accessKeyId: data.AWS_ACCESS_KEY_ID,
          secretAccessKey: data.AWS_SECRET_ACCESS_KEY,
          sessionToken: data.AWS_SESSION_TOKEN,
        },
      });
      try {
        const out = await s3.send(
          new ListObjectsV2Command({
            Bucket: data.S3_BUCKET,
            Prefix: data.S3_PREFIX || undefined,
            MaxKeys: 5,
          }),
        );
        return out.KeyCount ?? 0;
      } finally {
        s3.destroy();
      }
    };
  } else return undefined;

  const status = (err: unknown) =>
    (err as { statusCode?: number }).statusCode ??
    (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  let listed = false;
  try {
    const n = await list();
    listed = true;
    d.add(
      'PASS',
      name,
      `the credential lists ${where} (${n === 0 ? 'empty' : `${n}${n === 5 ? '+' : ''} objects seen`})`,
    );
  } catch (err) {
    if (status(err) === 403)
      d.add(
        'WARN',
        name,
        `listing ${where} was refused (HTTP 403): ${describeError(err)}`,
        'the role may not grant list (azure-blob: l; aws-s3: list); if the job lists its prefix, add it to the role',
      );
    else
      d.add(
        'FAIL',
        name,
        `could not reach the storage with the credential: ${describeError(err)}`,
        'check that this machine reaches the storage endpoint (network, proxy, firewall, https-only/IP range of the role)',
      );
  }
  return {
    async afterRevoke() {
      if (!lease.revocable) {
        d.add(
          'PASS',
          `${name} revocation`,
          `not revocable early: the credential keeps working until ${at(lease)} (the lease says so)`,
        );
        return;
      }
      if (!listed) return;
      try {
        await list();
        d.add(
          'WARN',
          `${name} revocation`,
          'the credential still worked right after the lease was revoked',
          'Azure applies stored access policy changes within 30 s; run doctor again, and if it persists check the container’s stored access policies',
        );
      } catch (err) {
        if (status(err) === 403)
          d.add(
            'PASS',
            `${name} revocation`,
            'revoked: the storage refuses the credential right after the lease ended',
          );
        else d.add('WARN', `${name} revocation`, `could not check after revocation: ${describeError(err)}`);
      }
    },
  };
}
