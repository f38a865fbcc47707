import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { CustodyError } from '../errors.js';

export interface ErrorBody {
  error: { code: string; message: string; hint?: string };
}

/** Fastify's own errors (body parsing, limits, validation) mapped to stable Custody codes. */
function fromFastify(err: FastifyError): CustodyError | null {
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new CustodyError(
        'PayloadTooLarge',
        413,
        'The request body is too large',
        'Secret values are at most 256 KiB.',
      );
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new CustodyError(
        'UnsupportedMediaType',
        415,
        'The request body must be JSON',
        'Send Content-Type: application/json.',
      );
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new CustodyError(
        'MalformedJson',
        400,
        'The JSON body is empty',
        'Send a JSON object, or no Content-Type.',
      );
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new CustodyError(
        'BadRequest',
        400,
        'The Content-Length does not match the body',
        'Resend the request.',
      );
  }
  if (err.validation) {
    const first = err.validation[0];
    const where = `${err.validationContext ?? 'request'}${first?.instancePath ?? ''}`;
    // Ajv messages name the field and the rule, never the value.
    return new CustodyError(
      'InvalidRequest',
      400,
      `${where} ${first?.message ?? 'is invalid'}`,
      'See /v1/openapi.json for the request schema.',
    );
  }
  if (err instanceof SyntaxError || err.code === 'FST_ERR_CTP_INVALID_JSON_BODY') {
    return new CustodyError(
      'MalformedJson',
      400,
      'The request body is not valid JSON',
      'Check quoting and commas.',
    );
  }
  if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
    return new CustodyError(
      'BadRequest',
      err.statusCode,
      'The request is malformed',
      'Check the method, path and headers.',
    );
  }
  return null;
}

export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, req: FastifyRequest, reply: FastifyReply) => {
    const known = err instanceof CustodyError ? err : fromFastify(err);
    if (!known || known.status >= 500) {
      // Internal details stay in the server log (which never holds secret values); clients get a code.
      if (!known)
        req.log.error({ err: { type: err.name, message: err.message, stack: err.stack } }, 'unhandled error');
    }
    const e =
      known ??
      new CustodyError(
        'InternalError',
        500,
        'The broker hit an internal error',
        `Quote request id ${req.id} to the operator.`,
      );
    if (e.status === 401) reply.header('www-authenticate', 'Bearer realm="custody"');
    const body: ErrorBody = {
      error: { code: e.code, message: e.message, ...(e.hint ? { hint: e.hint } : {}) },
    };
    return reply.status(e.status).send(body);
  });
  app.setNotFoundHandler((req, reply) => {
    const body: ErrorBody = {
      error: {
        code: 'RouteNotFound',
        message: `No route for ${req.method} ${req.url.split('?')[0]}`,
        hint: 'See /v1/openapi.json.',
      },
    };
    return reply.status(404).send(body);
  });
}
