import type { FastifyError } from 'fastify';
import { CustodyError } from '../../errors.js';

/** Key Vault's error body. */
export interface AzureErrorBody {
  error: { code: string; message: string; innererror?: { code: string } };
}

export interface AzureError {
  status: number;
  body: AzureErrorBody;
}

const NOT_FOUND = new Set(['SecretNotFound', 'VersionNotFound', 'DeletedSecretNotFound']);
/** 403s about the secret itself (not about the caller): Key Vault names them by what is wrong. */
const UNUSABLE = new Set(['SecretDisabled', 'SecretExpired', 'SecretNotYetValid', 'PurgeProtected']);

const body = (code: string, message: string, inner?: string): AzureErrorBody => ({
  error: { code, message, ...(inner ? { innererror: { code: inner } } : {}) },
});

/** Maps a Custody error (any domain's) to Key Vault's status, code and inner code. */
export function toAzureError(e: CustodyError): AzureError {
  const msg = e.message;
  switch (e.status) {
    case 400:
    case 413:
    case 415:
      return { status: e.status === 413 ? 413 : 400, body: body('BadParameter', msg, e.code) };
    case 401:
      return { status: 401, body: body('Unauthorized', msg, e.code) };
    case 403:
      if (UNUSABLE.has(e.code)) return { status: 403, body: body('Forbidden', msg, e.code) };
      if (e.code === 'PermissionDenied')
        return { status: 403, body: body('Forbidden', msg, 'ForbiddenByRbac') };
      return { status: 403, body: body('Forbidden', msg, e.code) };
    case 404:
      if (NOT_FOUND.has(e.code)) return { status: 404, body: body('SecretNotFound', msg) };
      if (e.code === 'EnvironmentNotFound') return { status: 404, body: body('VaultNotFound', msg) };
      return { status: 404, body: body('NotFound', msg, e.code) };
    case 409:
      // Key Vault's own inner code for "this name is deleted and awaits purge or recovery".
      if (e.code === 'SecretDeleted')
        return { status: 409, body: body('Conflict', msg, 'ObjectIsDeletedButRecoverable') };
      return { status: 409, body: body('Conflict', msg, e.code) };
    case 405:
      return { status: 405, body: body('MethodNotAllowed', msg) };
    case 501:
      return { status: 501, body: body('NotSupported', msg) };
    case 503:
      return { status: 503, body: body('ServiceUnavailable', msg, e.code) };
  }
  if (e.status >= 400 && e.status < 500) return { status: e.status, body: body('BadParameter', msg, e.code) };
  return { status: 500, body: body('InternalServerError', msg) };
}

/** Fastify's own errors (JSON parsing, body limits) in Key Vault's shape; null for anything unexpected. */
export function fromFastifyError(err: FastifyError): CustodyError | null {
  if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE')
    return new CustodyError('PayloadTooLarge', 413, 'The request body is too large');
  if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE')
    return new CustodyError('UnsupportedMediaType', 415, 'The request body must be JSON');
  if (err instanceof SyntaxError || err.code === 'FST_ERR_CTP_INVALID_JSON_BODY')
    return new CustodyError('MalformedJson', 400, 'The request body is not valid JSON');
  if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500)
    return new CustodyError('BadRequest', err.statusCode, 'The request is malformed');
  return null;
}

export const notKeyVault = (method: string, path: string): AzureError => ({
  status: 404,
  body: body('NotFound', `No route for ${method} ${path}: this host is not a Key Vault host`),
});
