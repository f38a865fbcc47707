import { badRequest } from '../../errors.js';
import { isLoopbackHost } from '../mlflow/config.js';
import { parsePrefix } from '../object-prefix.js';

/** The AWS identity that calls sts:AssumeRole (and, for revocation, iam:PutRolePolicy). */
export interface AwsS3Config {
  region: string;
  access_key_id: string;
  /** Sealed under the barrier with the rest of the config; never shown. */
  secret_access_key: string;
  /** Another STS/IAM/S3 endpoint (an S3-compatible store, a VPC endpoint, or moto in tests). */
  sts_endpoint?: string;
  iam_endpoint?: string;
  s3_endpoint?: string;
  /**
   * The IAM roles' MaxSessionDuration (AWS default 3600 s, at most 43200 s): a lease TTL above it
   * is refused, because STS would refuse the AssumeRole.
   */
  max_session_duration: number;
  /**
   * Revoking a lease adds a deny statement for that session (matched by session name and issued
   * before the revocation) to an inline policy on the IAM role: needs iam:GetRolePolicy and
   * iam:PutRolePolicy on the roles. Off: revoking only ends the lease record.
   */
  revoke_sessions: boolean;
}

export type S3Action = 'read' | 'list' | 'write' | 'delete';

export interface AwsS3Role {
  role_arn: string;
  bucket: string;
  /** `''` (the whole bucket) or a normalized `dir/sub/`. */
  prefix: string;
  actions: S3Action[];
  external_id?: string;
  /** Derived, shown with the role (ignored on input). */
  revocable_early: false;
  revocation_note: string;
}

/** STS limits: AssumeRole takes 900 s to the role's MaxSessionDuration (at most 12 h). */
export const STS_MIN_SECONDS = 900;
export const STS_MAX_SECONDS = 43_200;

const CONFIG_KEYS = [
  'region',
  'access_key_id',
  'secret_access_key',
  'sts_endpoint',
  'iam_endpoint',
  's3_endpoint',
  'max_session_duration',
  'revoke_sessions',
];
const ROLE_KEYS = [
  'role_arn',
  'bucket',
  'prefix',
  'actions',
  'external_id',
  'revocable_early',
  'revocation_note',
];
const ACTIONS: readonly S3Action[] = ['read', 'list', 'write', 'delete'];
const CONFIG_HINT =
  'Example: {"region":"eu-west-1","access_key_id":"AKIA…","secret_access_key":"…","max_session_duration":3600}.';
const ROLE_HINT =
  'Example: {"role_arn":"arn:aws:iam::123456789012:role/ml-data","bucket":"datasets","prefix":"imagenet/","actions":["read","list"]}.';

const configError = (message: string, hint = CONFIG_HINT) => badRequest('InvalidEngineConfig', message, hint);
const roleError = (message: string, hint = ROLE_HINT) => badRequest('InvalidEngineRole', message, hint);
const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function endpoint(raw: unknown, key: string): string | undefined {
  if (raw === undefined || raw === null || raw === '') return undefined;
  if (typeof raw !== 'string' || raw.length > 2048) throw configError(`${key} must be a URL`);
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw configError(`${key} is not a valid URL`);
  }
  if (url.username || url.password || url.search || url.hash)
    throw configError(`${key} must not carry credentials, a query or a fragment`);
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopbackHost(url.hostname)))
    throw configError(`${key} must be https (plain http only to a loopback host)`);
  return url.toString().replace(/\/+$/, '');
}

export function parseAwsS3Config(raw: Record<string, unknown>): AwsS3Config {
  if (!isObject(raw)) throw configError('The engine config must be a JSON object');
  const extra = Object.keys(raw).filter((k) => !CONFIG_KEYS.includes(k));
  if (extra.length)
    throw configError(`Unknown field ${extra[0]}`, `Allowed fields: ${CONFIG_KEYS.join(', ')}.`);
  const region = raw.region ?? 'us-east-1';
  if (typeof region !== 'string' || !/^[a-z]{2}(-[a-z]+)+-\d+$/.test(region))
    throw configError('region must be an AWS region such as eu-west-1');
  if (typeof raw.access_key_id !== 'string' || !/^[A-Z0-9]{16,128}$/.test(raw.access_key_id))
    throw configError('access_key_id must be an AWS access key id (AKIA…)');
  const secret = raw.secret_access_key;
  if (typeof secret !== 'string' || secret.length < 8 || secret.length > 256 || /\s/.test(secret))
    throw configError('secret_access_key is required');
  const max = raw.max_session_duration ?? 3600;
  if (!Number.isInteger(max) || (max as number) < STS_MIN_SECONDS || (max as number) > STS_MAX_SECONDS)
    throw configError(
      `max_session_duration must be ${STS_MIN_SECONDS}-${STS_MAX_SECONDS} seconds`,
      'Set it to the IAM roles’ MaxSessionDuration (AWS default 3600; raise it on the role to allow up to 12 h).',
    );
  const revoke = raw.revoke_sessions ?? false;
  if (typeof revoke !== 'boolean') throw configError('revoke_sessions must be true or false');
  const c: AwsS3Config = {
    region,
    access_key_id: raw.access_key_id,
    secret_access_key: secret,
    max_session_duration: max as number,
    revoke_sessions: revoke,
  };
  for (const k of ['sts_endpoint', 'iam_endpoint', 's3_endpoint'] as const) {
    const v = endpoint(raw[k], k);
    if (v) c[k] = v;
  }
  return c;
}

export function redactAwsS3Config(c: AwsS3Config): Record<string, unknown> {
  const { secret_access_key: _, ...rest } = c;
  return { ...rest, secret_access_key: '(sealed)' };
}

export function parseAwsS3Role(raw: Record<string, unknown>): AwsS3Role {
  if (!isObject(raw)) throw roleError('The role must be a JSON object');
  const extra = Object.keys(raw).filter((k) => !ROLE_KEYS.includes(k));
  if (extra.length) throw roleError(`Unknown field ${extra[0]}`, `Allowed fields: ${ROLE_KEYS.join(', ')}.`);
  const arn = raw.role_arn;
  if (typeof arn !== 'string' || !/^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]{1,512}$/.test(arn))
    throw roleError('role_arn must be an IAM role ARN: arn:aws:iam::<account>:role/<name>');
  const bucket = raw.bucket;
  if (
    typeof bucket !== 'string' ||
    !/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket) ||
    bucket.includes('..')
  )
    throw roleError('bucket must be an S3 bucket name: 3-63 lower-case letters, digits, dots and dashes');
  const prefix = parsePrefix(raw.prefix, 'InvalidEngineRole', ROLE_HINT);
  const rawActions =
    typeof raw.actions === 'string' ? raw.actions.split(',').map((s) => s.trim()) : raw.actions;
  if (!Array.isArray(rawActions) || rawActions.length === 0)
    throw roleError('actions is required: some of read, list, write, delete');
  const actions = new Set<S3Action>();
  for (const a of rawActions) {
    if (typeof a !== 'string' || !ACTIONS.includes(a as S3Action))
      throw roleError(
        `Unknown action ${JSON.stringify(String(a).slice(0, 30))}`,
        'Actions are read (GetObject), list (ListBucket under the prefix), write (PutObject, multipart) and delete (DeleteObject).',
      );
    actions.add(a as S3Action);
  }
  const role: AwsS3Role = {
    role_arn: arn,
    bucket,
    prefix,
    actions: ACTIONS.filter((a) => actions.has(a)),
    revocable_early: false,
    revocation_note:
      'STS session credentials cannot be revoked: they work until they expire (the lease TTL, 15 min to the role’s MaxSessionDuration). With revoke_sessions on the engine, revoking the lease adds a deny for that session to the IAM role (takes effect within seconds).',
  };
  if (raw.external_id !== undefined) {
    if (typeof raw.external_id !== 'string' || !/^[\w+=,.@:/-]{2,1224}$/.test(raw.external_id))
      throw roleError('external_id must be 2-1224 characters of letters, digits and +=,.@:/-');
    role.external_id = raw.external_id;
  }
  return role;
}
