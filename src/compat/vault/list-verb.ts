import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyInstance } from 'fastify';

/**
 * Vault clients send the HTTP method `LIST`, which Node's HTTP parser rejects (HPE_INVALID_METHOD)
 * before any framework sees the request. This hooks the server's `clientError`: a packet that starts
 * with `LIST ` for a path under the Vault prefix is re-issued in-process as `GET …?list=true` with the
 * same headers and the client's address (so token CIDR bindings still apply), the response is written
 * to the socket with `Connection: close`, and the connection is closed. Every other client error goes
 * to the handlers that were there before (Fastify's).
 */

type ClientErrorListener = (err: Error, socket: Duplex) => void;
interface ParserError extends Error {
  code?: string;
  rawPacket?: Buffer;
}

const MAX_HEAD = 32 * 1024;
const installed = new WeakSet<object>();
/** Hop-by-hop and body framing headers: meaningless for the re-issued request or recomputed for the reply. */
const DROP_REQUEST = new Set([
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'expect',
  'upgrade',
]);
const DROP_RESPONSE = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive']);

export function installListVerb(app: FastifyInstance, pathPrefix: string): void {
  const server = app.server;
  if (installed.has(server)) return;
  installed.add(server);
  const previous = server.listeners('clientError') as ClientErrorListener[];
  server.removeAllListeners('clientError');
  server.on('clientError', (err: ParserError, socket: Duplex) => {
    const raw = err.rawPacket;
    if (err.code === 'HPE_INVALID_METHOD' && raw && raw.subarray(0, 5).toString('latin1') === 'LIST ') {
      answerList(app, raw, socket, pathPrefix).catch(() => socket.destroy());
      return;
    }
    for (const listener of previous) listener.call(server, err, socket);
  });
}

function writeResponse(
  socket: Duplex,
  status: number,
  headers: Record<string, string | string[] | number | undefined>,
  body: Buffer,
): void {
  const lines = [`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}`];
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || DROP_RESPONSE.has(name.toLowerCase())) continue;
    for (const v of Array.isArray(value) ? value : [value]) lines.push(`${name}: ${v}`);
  }
  lines.push(`content-length: ${body.length}`, 'connection: close', '', '');
  socket.end(Buffer.concat([Buffer.from(lines.join('\r\n'), 'latin1'), body]));
}

async function answerList(
  app: FastifyInstance,
  raw: Buffer,
  socket: Duplex,
  pathPrefix: string,
): Promise<void> {
  // The parser is done with this connection: nothing else may read from it.
  socket.removeAllListeners('data');
  const end = raw.indexOf('\r\n\r\n');
  const plain = (status: number, message: string) =>
    writeResponse(
      socket,
      status,
      { 'content-type': 'application/json' },
      Buffer.from(JSON.stringify({ errors: [message] })),
    );
  if (end === -1 || end > MAX_HEAD) return plain(400, 'malformed LIST request');
  const [requestLine, ...headerLines] = raw.subarray(0, end).toString('latin1').split('\r\n');
  const m = /^LIST (\/\S*) HTTP\/1\.[01]$/.exec(requestLine);
  if (!m) return plain(400, 'malformed LIST request');
  const url = m[1];
  if (!url.startsWith(pathPrefix))
    return plain(405, 'the LIST method is served only under the Vault API prefix');
  const headers: Record<string, string> = {};
  for (const line of headerLines) {
    const colon = line.indexOf(':');
    if (colon <= 0) return plain(400, 'malformed LIST request');
    const name = line.slice(0, colon).trim().toLowerCase();
    if (DROP_REQUEST.has(name)) continue;
    const value = line.slice(colon + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  const res = await app.inject({
    method: 'GET',
    url: `${url}${url.includes('?') ? '&' : '?'}list=true`,
    headers,
    remoteAddress: (socket as Duplex & { remoteAddress?: string }).remoteAddress,
  });
  writeResponse(socket, res.statusCode, res.headers, res.rawPayload);
}
