import type { FastifyRequest } from 'fastify';
import type { Operation } from '../pipeline/pipeline.js';

/** Translates a native request into the pipeline's operation; the adapter adds action and resource. */
export function nativeOperation(
  req: FastifyRequest,
  op: Omit<Operation, 'door' | 'requestId' | 'remoteAddr' | 'token'>,
): Operation {
  return { ...op, door: 'native', requestId: req.id, remoteAddr: req.ip, token: presentedToken(req) };
}

function presentedToken(req: FastifyRequest): string | undefined {
  const auth = req.headers.authorization;
  if (auth?.startsWith('Bearer ')) return auth.slice(7).trim();
  const header = req.headers['x-custody-token'];
  return typeof header === 'string' ? header : undefined;
}
