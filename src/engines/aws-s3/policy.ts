import type { AwsS3Role, S3Action } from './config.js';

/**
 * IAM policy documents the aws-s3 engine writes. Pure functions, so the exact documents are tested.
 *
 * The session policy is passed to sts:AssumeRole: the session's permissions are the intersection of
 * the IAM role's policies and this document, so a lease can never do more than the role says
 * (bucket, prefix, actions), whatever the IAM role itself allows.
 */

const OBJECT_ACTIONS: Record<Exclude<S3Action, 'list'>, string[]> = {
  read: ['s3:GetObject', 's3:GetObjectVersion'],
  write: ['s3:PutObject', 's3:AbortMultipartUpload', 's3:ListMultipartUploadParts'],
  delete: ['s3:DeleteObject', 's3:DeleteObjectVersion'],
};

/** `aws`, `aws-cn` or `aws-us-gov`, from the role ARN (S3 ARNs use the same partition). */
export const partitionOf = (roleArn: string) => roleArn.split(':')[1] ?? 'aws';

export function sessionPolicy(role: AwsS3Role): Record<string, unknown> {
  const p = partitionOf(role.role_arn);
  const statements: Record<string, unknown>[] = [];
  const objectActions = role.actions.flatMap((a) => (a === 'list' ? [] : OBJECT_ACTIONS[a]));
  if (objectActions.length)
    statements.push({
      Sid: 'CustodyObjects',
      Effect: 'Allow',
      Action: objectActions,
      Resource: [`arn:${p}:s3:::${role.bucket}/${role.prefix}*`],
    });
  if (role.actions.includes('list')) {
    const list: Record<string, unknown> = {
      Sid: 'CustodyList',
      Effect: 'Allow',
      Action: ['s3:ListBucket'],
      Resource: [`arn:${p}:s3:::${role.bucket}`],
    };
    // Listing is a bucket-level action: the s3:prefix condition keeps it inside the prefix.
    if (role.prefix) list.Condition = { StringLike: { 's3:prefix': [`${role.prefix}*`] } };
    statements.push(list);
  }
  return { Version: '2012-10-17', Statement: statements };
}

/** The inline policy on the IAM role that holds the revoked sessions. */
export const REVOKED_POLICY_NAME = 'custody-revoked-sessions';

/**
 * Adds a deny for one revoked session to the role's revoked-sessions policy, and drops entries
 * whose sessions have expired anyway (an inline role policy holds at most 10,240 characters).
 * Each statement denies everything to requests of that session name (`aws:userid` is
 * `<role id>:<session name>`) signed with credentials issued before the revocation — the same
 * `aws:TokenIssueTime` condition AWS's console "Revoke active sessions" writes for a whole role.
 * The Sid carries the session's expiry (Unix seconds) so later revocations can prune it.
 */
export function addRevokedSession(
  current: Record<string, unknown> | null,
  session: { name: string; expiresAt: number },
  now: number,
): Record<string, unknown> {
  const kept = ((current?.Statement as Record<string, unknown>[] | undefined) ?? []).filter((s) => {
    const m = /^Custody(\d+)x/.exec(String(s.Sid ?? ''));
    return !m || Number(m[1]) * 1000 > now;
  });
  const sid =
    `Custody${Math.ceil(session.expiresAt / 1000)}x${session.name.replace(/[^A-Za-z0-9]/g, '')}`.slice(
      0,
      100,
    );
  if (!kept.some((s) => s.Sid === sid))
    kept.push({
      Sid: sid,
      Effect: 'Deny',
      Action: ['*'],
      Resource: ['*'],
      Condition: {
        StringLike: { 'aws:userid': `*:${session.name}` },
        DateLessThan: { 'aws:TokenIssueTime': new Date(now).toISOString() },
      },
    });
  return { Version: '2012-10-17', Statement: kept };
}
