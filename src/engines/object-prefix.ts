import { badRequest } from '../errors.js';

/**
 * The path prefix a storage role is limited to (a blob "directory" or an S3 key prefix), shared by
 * the azure-blob and aws-s3 engines. A prefix is a scope: anything that could widen it once the
 * backend normalizes the path (`..`, `.`, empty segments, a leading `/`, wildcards, control
 * characters) is refused rather than cleaned up, so what the role says is what the credential gets.
 */

const MAX_PREFIX = 512;

/** `datasets/imagenet` → `datasets/imagenet/`; `''`/undefined → `''` (the whole container/bucket). */
export function parsePrefix(raw: unknown, code: string, hint: string): string {
  if (raw === undefined || raw === null || raw === '') return '';
  if (typeof raw !== 'string') throw badRequest(code, 'prefix must be a string', hint);
  if (raw.length > MAX_PREFIX) throw badRequest(code, `prefix is longer than ${MAX_PREFIX} characters`, hint);
  // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
  if (/[\u0000-\u001f\u007f\\*?$]/.test(raw))
    throw badRequest(code, 'prefix has a control character, a backslash or a wildcard (* ? $)', hint);
  if (raw.startsWith('/')) throw badRequest(code, 'prefix must not start with /', hint);
  const trimmed = raw.endsWith('/') ? raw.slice(0, -1) : raw;
  for (const seg of trimmed.split('/')) {
    if (seg === '..' || seg === '.')
      throw badRequest(
        code,
        'prefix must not contain . or .. segments',
        `${hint} A prefix cannot climb out of itself.`,
      );
    if (seg === '') throw badRequest(code, 'prefix must not contain empty segments (//)', hint);
  }
  return `${trimmed}/`;
}

/** How many directory levels a prefix has (`a/b/` → 2): Azure's `sdd` for a directory SAS. */
export const prefixDepth = (prefix: string) => (prefix ? prefix.split('/').length - 1 : 0);
