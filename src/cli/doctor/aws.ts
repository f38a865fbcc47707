import { Readable } from 'node:stream';
import type { ClientConfig } from '../../client/config.js';
import { statusOf } from '../../client/errors.js';
import { describeError, redact } from '../../client/redact.js';
import { classifyNetworkError, type Doctor, formatCheck, isConnectError, shortError } from './checks.js';

/*
 * The AWS Secrets Manager provider path: region and credentials resolved by the SDK's own chain,
 * then GetSecretValue through the provider, with the error sorted into authentication (the keys
 * were refused), permission (IAM denied GetSecretValue, or no such secret in this region) and the
 * network. Some servers answer an authentication failure with an XML body the JSON SDK cannot
 * parse (moto does; the SDK then reports only a SyntaxError): the raw body of every error reply is
 * kept so the real code and message can be shown.
 */

const AUTH_CODES = new Set([
  'InvalidClientTokenId',
  'UnrecognizedClientException',
  'SignatureDoesNotMatch',
  'IncompleteSignature',
  'InvalidSignatureException',
  'ExpiredToken',
  'ExpiredTokenException',
  'AuthFailure',
  'MissingAuthenticationToken',
]);
const DENIED_CODES = new Set(['AccessDenied', 'AccessDeniedException']);

/** Where the SDK's default chain takes credentials from, judging by the environment (names only). */
function credentialSource(env: NodeJS.ProcessEnv): string {
  if (env.AWS_ACCESS_KEY_ID)
    return `the environment (AWS_ACCESS_KEY_ID${env.AWS_SESSION_TOKEN ? ' + AWS_SESSION_TOKEN' : ''})`;
  if (env.AWS_PROFILE) return `profile ${env.AWS_PROFILE}`;
  if (env.AWS_WEB_IDENTITY_TOKEN_FILE) return 'web identity (AWS_WEB_IDENTITY_TOKEN_FILE, e.g. EKS IRSA)';
  if (env.AWS_CONTAINER_CREDENTIALS_RELATIVE_URI || env.AWS_CONTAINER_CREDENTIALS_FULL_URI)
    return 'the container credentials endpoint (ECS task role)';
  return 'the shared config files or the instance role';
}

/** The error code and message of a failed call: the SDK's, or read out of the raw reply body. */
function awsError(err: unknown, raw: string): { code?: string; message: string } {
  const cause = (err as { cause?: unknown }).cause as { name?: string; message?: string } | undefined;
  if (cause?.name && cause.name !== 'SyntaxError' && cause.name !== 'Error')
    return { code: cause.name, message: cause.message ?? '' };
  const xml = /<Code>([^<]+)<\/Code>/.exec(raw);
  if (xml) return { code: xml[1], message: /<Message>([^<]*)<\/Message>/.exec(raw)?.[1] ?? '' };
  try {
    const j = JSON.parse(raw) as { __type?: string; message?: string; Message?: string };
    if (j.__type) return { code: j.__type.split('#').pop(), message: j.message ?? j.Message ?? '' };
  } catch {}
  return { message: shortError(err) };
}

export async function checkAws(d: Doctor, config: ClientConfig, env: NodeJS.ProcessEnv): Promise<void> {
  const p = 'aws-secrets-manager';
  const [provider] = d.lib.providersFromConfig({ ...config, providers: [p] });
  const client = (provider as unknown as { client: any }).client;
  let raw = '';
  client.middlewareStack.add(
    (next: (a: unknown) => Promise<any>) => async (args: unknown) => {
      const out = await next(args);
      const res = out?.response;
      if (res?.statusCode >= 400 && res.body && typeof res.body[Symbol.asyncIterator] === 'function') {
        const chunks: Buffer[] = [];
        for await (const c of res.body) chunks.push(Buffer.from(c));
        const buf = Buffer.concat(chunks);
        raw = buf.subarray(0, 4096).toString('utf8');
        res.body = Readable.from([buf]);
      }
      return out;
    },
    { step: 'deserialize', priority: 'low', name: 'custodyDoctorKeepErrorBody' },
  );
  try {
    let region: string;
    try {
      region = await client.config.region();
    } catch (err) {
      d.add(
        'FAIL',
        `${p}: region`,
        `no AWS region: ${shortError(err)}`,
        'set AWS_REGION to the region of the secret (secrets are per region)',
      );
      return;
    }
    const source = credentialSource(env);
    try {
      const creds = await client.config.credentials();
      d.remember(creds?.secretAccessKey, creds?.sessionToken);
    } catch (err) {
      d.add(
        'FAIL',
        `${p}: authentication`,
        `no AWS credentials found: ${shortError(err)}`,
        'set AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run with a role (instance profile, EKS IRSA, ECS task role)',
      );
      return;
    }
    const ref = d.lib.secretRefFor(config, p);
    const where = `Secrets Manager in ${region}${env.AWS_ENDPOINT_URL ? ` (${env.AWS_ENDPOINT_URL})` : ''}`;
    let value: string;
    try {
      value = await provider.get(ref);
    } catch (err) {
      const status = statusOf(err);
      if (status === undefined && isConnectError(err)) {
        const { detail, hint } = classifyNetworkError(err, where, 'AWS_CA_BUNDLE');
        d.add('FAIL', `${p}: reachable`, detail, hint);
        return;
      }
      const { code, message } = awsError(err, raw);
      const said = redact(`${code ?? `HTTP ${status ?? '?'}`}${message ? `: ${message}` : ''}`, [...d.known]);
      if (status !== undefined) d.add('PASS', `${p}: reachable`, `${where} answered`);
      if (code && AUTH_CODES.has(code)) {
        d.add(
          'FAIL',
          `${p}: authentication`,
          `AWS refused the credentials from ${source}: ${said}`,
          /Expired/.test(code)
            ? 'the session credentials expired: get new ones (aws sso login, assume the role again)'
            : code === 'SignatureDoesNotMatch'
              ? 'AWS_SECRET_ACCESS_KEY does not belong to AWS_ACCESS_KEY_ID: fix the pair'
              : 'the access key id is unknown to AWS (deleted, mistyped, or from another partition): create a new access key or use a role',
        );
        return;
      }
      d.add('PASS', `${p}: authentication`, `credentials from ${source} accepted`);
      if (code && DENIED_CODES.has(code))
        d.add(
          'FAIL',
          `${p}: permission`,
          `GetSecretValue on ${ref} denied: ${said}`,
          `grant the principal secretsmanager:GetSecretValue on arn:aws:secretsmanager:${region}:<account>:secret:${ref.split('#')[0]}-* (IAM policy or the secret's resource policy), plus kms:Decrypt if the secret uses a customer-managed KMS key`,
        );
      else if (code === 'ResourceNotFoundException')
        d.add(
          'FAIL',
          `${p}: permission`,
          `no secret ${ref.split('#')[0]} in ${region}: ${said}`,
          `check MLFLOW_AWS_SECRET_ID (a name or full ARN) and AWS_REGION (secrets are per region): \`aws secretsmanager list-secrets --region ${region}\``,
        );
      else if (code === 'DecryptionFailure' || /^KMS/.test(code ?? ''))
        d.add(
          'FAIL',
          `${p}: permission`,
          `the secret cannot be decrypted: ${said}`,
          "grant kms:Decrypt on the secret's KMS key to the principal",
        );
      else if (status === 404 && /no field/.test(describeError(err)))
        d.add(
          'FAIL',
          `${p}: permission`,
          describeError(err),
          'the secret exists but has no such field: fix the #field part of MLFLOW_AWS_SECRET_ID',
        );
      else
        d.add('FAIL', `${p}: permission`, said, 'check MLFLOW_AWS_SECRET_ID, AWS_REGION and the IAM policy');
      return;
    }
    d.remember(value);
    d.add('PASS', `${p}: reachable`, `${where} answered`);
    d.add('PASS', `${p}: authentication`, `credentials from ${source} accepted`);
    d.add('PASS', `${p}: permission`, `may read ${ref}`);
    formatCheck(d, p, value, config.aws.authMode, config.authHeaderName);
  } finally {
    await provider.close().catch(() => {});
  }
}
