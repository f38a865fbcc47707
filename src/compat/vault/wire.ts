import type { FastifyReply, FastifyRequest } from 'fastify';
import { CustodyError } from '../../errors.js';
import type { Operation } from '../../pipeline/pipeline.js';

/**
 * Vault's wire format: the response envelope, its error shape and the translation of a request into
 * the pipeline's operation. Nothing here decides anything; it only reshapes.
 */

export type VaultBody = Record<string, unknown>;

/** An error with Vault's exact body. A CustodyError, so the pipeline audits its status and code. */
export class VaultReplyError extends CustodyError {
  constructor(
    status: number,
    code: string,
    message: string,
    readonly body: VaultBody,
  ) {
    super(code, status, message);
  }
}

/** `{"errors": [...]}` with Vault's status code. */
export const vaultError = (status: number, code: string, errors: string[]) =>
  new VaultReplyError(status, code, errors[0] ?? code, { errors });

export const notFoundEmpty = (code = 'NotFound') => vaultError(404, code, []);

export const noHandler = (method: string, path: string) =>
  vaultError(404, 'NoHandler', [
    `no handler for route "${path}" (${method}). route entry not found. The Custody Vault door serves the subset listed in src/compat/vault/README.md.`,
  ]);

export const unsupported = (what: string, hint: string) =>
  vaultError(405, 'UnsupportedOperation', [`${what} is not supported by Custody's Vault door: ${hint}`]);

export const invalid = (message: string) => vaultError(400, 'InvalidRequest', [message]);

/** The token a Vault client presents: `X-Vault-Token`, or `Authorization: Bearer` like Vault accepts. */
export function vaultToken(req: FastifyRequest): string | undefined {
  const header = req.headers['x-vault-token'];
  if (typeof header === 'string' && header.length > 0) return header;
  const auth = req.headers.authorization;
  if (auth?.startsWith('Bearer ')) return auth.slice(7).trim();
  return undefined;
}

/** Translates a Vault-door request into the pipeline's operation; the adapter adds action and resource. */
export function vaultOperation(
  req: FastifyRequest,
  op: Omit<Operation, 'door' | 'requestId' | 'remoteAddr' | 'token'>,
): Operation {
  return { ...op, door: 'vault', requestId: req.id, remoteAddr: req.ip, token: vaultToken(req) };
}

/** Every successful Vault reply has this envelope. */
export function envelope(
  req: FastifyRequest,
  fields: {
    data?: unknown;
    auth?: unknown;
    lease_id?: string;
    renewable?: boolean;
    lease_duration?: number;
    warnings?: string[] | null;
    mount_type?: string;
  },
): VaultBody {
  return {
    request_id: req.id,
    lease_id: fields.lease_id ?? '',
    renewable: fields.renewable ?? false,
    lease_duration: fields.lease_duration ?? 0,
    data: fields.data ?? null,
    wrap_info: null,
    warnings: fields.warnings ?? null,
    auth: fields.auth ?? null,
    mount_type: fields.mount_type ?? '',
  };
}

export const noContent = (reply: FastifyReply) => reply.status(204).send();

/** Unix seconds, as Vault's `creation_time`. */
export const unixSeconds = (ms: number) => Math.floor(ms / 1000);

/** RFC 3339 time or Vault's empty string for "never". */
export const rfc3339 = (ms: number | null | undefined) => (ms ? new Date(ms).toISOString() : '');

/** Seconds left until `ms`, never negative. */
export const secondsUntil = (ms: number | null) =>
  ms === null ? 0 : Math.max(0, Math.round((ms - Date.now()) / 1000));

/** Maps a Custody error (or a Fastify one) to Vault's status code and `{"errors": [...]}` body. */
export function toVaultError(err: unknown): { status: number; body: VaultBody } {
  if (err instanceof VaultReplyError) return { status: err.status, body: err.body };
  if (err instanceof CustodyError) {
    const errors = (status: number, list: string[]) => ({ status, body: { errors: list } });
    switch (err.code) {
      case 'MissingToken':
      case 'InvalidToken':
      case 'PermissionDenied':
      case 'AddressNotAllowed':
        // Vault answers every authentication or authorization failure with 403 "permission denied";
        // hvac's is_authenticated() relies on exactly that.
        return errors(403, ['permission denied', err.message]);
      case 'CasMismatch':
        return errors(400, ['check-and-set parameter did not match the current version', err.message]);
      case 'SecretNotFound':
      case 'VersionNotFound':
      case 'SecretDeleted':
        return errors(404, []);
      case 'Sealed':
        return errors(503, ['Vault is sealed', err.message]);
    }
    if (err.status === 401) return errors(403, ['permission denied', err.message]);
    // Vault has no 409: a conflict (deleted secret, existing name) is a bad request to it.
    if (err.status === 409) return errors(400, [err.message]);
    return errors(err.status, [err.message]);
  }
  const fe = err as { statusCode?: number; code?: string; message?: string } | null;
  if (fe?.code === 'FST_ERR_CTP_BODY_TOO_LARGE')
    return { status: 413, body: { errors: ['request too large'] } };
  if (err instanceof SyntaxError || fe?.code === 'FST_ERR_CTP_INVALID_JSON_BODY')
    return {
      status: 400,
      body: { errors: ['failed to parse JSON input: the request body is not valid JSON'] },
    };
  if (fe?.statusCode && fe.statusCode >= 400 && fe.statusCode < 500)
    return { status: fe.statusCode, body: { errors: ['the request is malformed'] } };
  return { status: 500, body: { errors: ['internal error'] } };
}
