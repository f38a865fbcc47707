import { GetRolePolicyCommand, IAMClient, PutRolePolicyCommand } from '@aws-sdk/client-iam';
import { AssumeRoleCommand, GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { badRequest, CustodyError } from '../../errors.js';
import type { Engine, IssueContext, IssuedCredential, LeaseTerms, PreparedCredential } from '../engine.js';
import { randomSuffix, sanitizePart } from '../mlflow/username.js';
import { type AwsS3Config, type AwsS3Role, STS_MAX_SECONDS, STS_MIN_SECONDS } from './config.js';
import { addRevokedSession, REVOKED_POLICY_NAME, sessionPolicy } from './policy.js';

/**
 * `aws-s3`: sts:AssumeRole with a session policy generated from the role (bucket, prefix, actions),
 * for exactly the lease's TTL. STS credentials cannot be withdrawn once issued, so leases are
 * marked not revocable and not renewable, and a TTL STS would refuse is refused up front.
 */

export interface AwsRevocationData {
  role_arn: string;
  session: string;
  expires_at: number;
}

export class AwsS3Engine implements Engine<AwsS3Role> {
  readonly type = 'aws-s3';
  private readonly sts: STSClient;
  private iam: IAMClient | undefined;

  constructor(private readonly config: AwsS3Config) {
    this.sts = new STSClient({
      region: config.region,
      credentials: { accessKeyId: config.access_key_id, secretAccessKey: config.secret_access_key },
      ...(config.sts_endpoint ? { endpoint: config.sts_endpoint } : {}),
      maxAttempts: 2,
    });
  }

  async verify(): Promise<void> {
    try {
      await this.sts.send(new GetCallerIdentityCommand({}));
    } catch (err) {
      const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (status === 403 || status === 401)
        throw badRequest(
          'EngineAuthFailed',
          `STS refused the access key ${this.config.access_key_id}`,
          'Check access_key_id and secret_access_key (an IAM user or role allowed sts:AssumeRole on the roles).',
        );
      throw this.fail(err, 'Checking the AWS credentials', 400);
    }
  }

  leaseTerms(_role: AwsS3Role, ttlSeconds: number): LeaseTerms {
    const max = this.config.max_session_duration;
    if (ttlSeconds > max)
      throw badRequest(
        'TtlAboveStsMaximum',
        `A TTL of ${ttlSeconds}s is above the STS session maximum of ${max}s for this engine`,
        `STS issues sessions of ${STS_MIN_SECONDS}s up to the IAM role's MaxSessionDuration (at most ${STS_MAX_SECONDS}s); ask for --ttl ${max}s or less, or raise MaxSessionDuration on the role and max_session_duration on the engine.`,
      );
    if (ttlSeconds < STS_MIN_SECONDS)
      throw badRequest(
        'TtlBelowStsMinimum',
        `A TTL of ${ttlSeconds}s is below the STS minimum of ${STS_MIN_SECONDS}s`,
        `STS sessions last at least ${STS_MIN_SECONDS}s and cannot be ended early: a shorter lease would promise what the credentials do not keep. Use --ttl 15m or more.`,
      );
    return { revocable: false, renewable: false };
  }

  prepare(_role: AwsS3Role, ctx: IssueContext): PreparedCredential {
    // Session names show in CloudTrail as the caller: say who and what, always unique.
    const session = [
      'custody',
      sanitizePart(ctx.env, 12),
      sanitizePart(ctx.role, 16),
      sanitizePart(ctx.identityName, 16),
      randomSuffix(10),
    ]
      .filter(Boolean)
      .join('-')
      .slice(0, 64);
    const revocation: AwsRevocationData = {
      role_arn: _role.role_arn,
      session,
      expires_at: ctx.expiresAt.getTime(),
    };
    return { username: session, password: '', revocation: { ...revocation } };
  }

  async create(role: AwsS3Role, prepared: PreparedCredential, ctx: IssueContext): Promise<IssuedCredential> {
    const duration = Math.round((ctx.expiresAt.getTime() - Date.now()) / 1000);
    let creds: { AccessKeyId?: string; SecretAccessKey?: string; SessionToken?: string; Expiration?: Date };
    try {
      const out = await this.sts.send(
        new AssumeRoleCommand({
          RoleArn: role.role_arn,
          RoleSessionName: prepared.username,
          DurationSeconds: Math.max(STS_MIN_SECONDS, duration),
          Policy: JSON.stringify(sessionPolicy(role)),
          ...(role.external_id ? { ExternalId: role.external_id } : {}),
        }),
      );
      creds = out.Credentials ?? {};
    } catch (err) {
      throw this.fail(err, `AssumeRole ${role.role_arn}`);
    }
    if (!creds.AccessKeyId || !creds.SecretAccessKey || !creds.SessionToken)
      throw new CustodyError(
        'EngineError',
        502,
        'STS answered without credentials',
        'Check the STS endpoint.',
      );
    const data: Record<string, string> = {
      AWS_ACCESS_KEY_ID: creds.AccessKeyId,
      AWS_SECRET_ACCESS_KEY: creds.SecretAccessKey,
      AWS_SESSION_TOKEN: creds.SessionToken,
      AWS_REGION: this.config.region,
      AWS_DEFAULT_REGION: this.config.region,
      S3_BUCKET: role.bucket,
      S3_PREFIX: role.prefix,
      S3_URL: `s3://${role.bucket}/${role.prefix}`,
      expiration: (creds.Expiration ?? ctx.expiresAt).toISOString(),
      revocable_early: 'false',
    };
    if (this.config.s3_endpoint) data.AWS_ENDPOINT_URL_S3 = this.config.s3_endpoint;
    return { username: prepared.username, password: creds.SecretAccessKey, data };
  }

  async renew(): Promise<void> {
    throw badRequest('LeaseNotRenewable', 'STS sessions cannot be extended', 'Issue new credentials.');
  }

  /**
   * STS sessions cannot be revoked. With `revoke_sessions`, the session is denied through the IAM
   * role's inline policy; without it there is nothing to do on AWS (the lease says not revocable).
   */
  async revoke(_role: AwsS3Role | null, revocation: Record<string, unknown>): Promise<void> {
    const r = revocation as unknown as AwsRevocationData;
    if (!this.config.revoke_sessions || r.expires_at <= Date.now()) return;
    const roleName = r.role_arn.split('/').pop()!;
    const iam = this.iamClient();
    let current: Record<string, unknown> | null = null;
    try {
      const got = await iam.send(
        new GetRolePolicyCommand({ RoleName: roleName, PolicyName: REVOKED_POLICY_NAME }),
      );
      if (got.PolicyDocument)
        current = JSON.parse(decodeURIComponent(got.PolicyDocument)) as Record<string, unknown>;
    } catch (err) {
      if ((err as { name?: string }).name !== 'NoSuchEntityException')
        throw this.fail(err, `Reading ${REVOKED_POLICY_NAME} on ${roleName}`);
    }
    const doc = addRevokedSession(current, { name: r.session, expiresAt: r.expires_at }, Date.now());
    try {
      await iam.send(
        new PutRolePolicyCommand({
          RoleName: roleName,
          PolicyName: REVOKED_POLICY_NAME,
          PolicyDocument: JSON.stringify(doc),
        }),
      );
    } catch (err) {
      throw this.fail(err, `Writing ${REVOKED_POLICY_NAME} on ${roleName}`);
    }
  }

  async setPassword(): Promise<void> {
    throw badRequest('NotSupported', 'aws-s3 engines have no static roles', 'Use dynamic roles.');
  }

  async rotateRoot(): Promise<Record<string, unknown>> {
    throw badRequest(
      'NotSupported',
      'aws-s3 cannot rotate its access key itself',
      'Create a second access key for the IAM user, configure the engine with it, then delete the old key.',
    );
  }

  async close(): Promise<void> {
    this.sts.destroy();
    this.iam?.destroy();
  }

  private iamClient(): IAMClient {
    this.iam ??= new IAMClient({
      region: this.config.region,
      credentials: { accessKeyId: this.config.access_key_id, secretAccessKey: this.config.secret_access_key },
      ...(this.config.iam_endpoint ? { endpoint: this.config.iam_endpoint } : {}),
      maxAttempts: 2,
    });
    return this.iam;
  }

  /** A CustodyError for a failed AWS call; AWS error names and codes only (never a key). */
  private fail(err: unknown, what: string, status = 502): CustodyError {
    if (err instanceof CustodyError) return err;
    const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
    const http = e.$metadata?.httpStatusCode;
    const name = typeof e.name === 'string' ? e.name.replace(/[^\w.-]/g, '').slice(0, 60) : 'Error';
    if (http === undefined)
      return new CustodyError(
        'EngineUnreachable',
        status,
        `${what} failed: AWS is unreachable (${name})`,
        'Check the region, the endpoints and that the broker can reach them.',
      );
    if (http === 403 || name === 'AccessDenied' || name === 'AccessDeniedException')
      return new CustodyError(
        'EngineAuthFailed',
        status,
        `${what} failed: AWS denied it (${name})`,
        'The engine’s identity needs sts:AssumeRole on the role (and the role’s trust policy must allow it); revoke_sessions needs iam:GetRolePolicy and iam:PutRolePolicy.',
      );
    return new CustodyError(
      'EngineError',
      status,
      `${what} failed: AWS answered HTTP ${http} ${name}`,
      'Check the role ARN and the TTL against the role’s MaxSessionDuration.',
    );
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `AwsS3Engine { region: '${this.config.region}', access_key_id: '${this.config.access_key_id}' }`;
  }
}
