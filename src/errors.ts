/**
 * The one error type every domain throws. Adapters map it to their wire shape; the stable `code`
 * is what scripts and clients match on, `hint` tells a person what to do next. Messages must never
 * contain secret values, tokens or passwords.
 */
export class CustodyError extends Error {
  constructor(
    readonly code: string,
    readonly status: number,
    message: string,
    readonly hint?: string,
  ) {
    super(message);
    this.name = 'CustodyError';
  }
}

export const badRequest = (code: string, message: string, hint?: string) =>
  new CustodyError(code, 400, message, hint);
export const notFound = (code: string, message: string, hint?: string) =>
  new CustodyError(code, 404, message, hint);
export const conflict = (code: string, message: string, hint?: string) =>
  new CustodyError(code, 409, message, hint);
export const forbidden = (message: string, hint?: string) =>
  new CustodyError('PermissionDenied', 403, message, hint);
export const unauthorized = (message: string, hint?: string) =>
  new CustodyError('Unauthorized', 401, message, hint);
export const sealed = () =>
  new CustodyError(
    'Sealed',
    503,
    'The broker is sealed',
    'Unseal it with `custody operator unseal` (shamir) or restart it with its key file (file mode).',
  );
