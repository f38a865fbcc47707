// Baseline: bare Fastify over HTTPS with the broker's certificate, same paths, fixed small bodies.
// Usage: node --import tsx bench/baseline-main.ts <cert.pem> <key.pem> [port]
import { readFile } from 'node:fs/promises';
import Fastify from 'fastify';

const [certPath, keyPath, port = '0'] = process.argv.slice(2);
if (!certPath || !keyPath) {
  console.error('usage: baseline-main.ts <cert.pem> <key.pem> [port]');
  process.exit(2);
}
const https = { cert: await readFile(certPath, 'utf8'), key: await readFile(keyPath, 'utf8') };
const app = Fastify({ https, logger: false });

// Same shape and size as the broker's version metadata, so response bytes are comparable.
const meta = {
  env: 'bench',
  name: 'read-000',
  version: '0123456789abcdef0123456789abcdef',
  seq: 1,
  enabled: true,
  not_before: null,
  expires: null,
  content_type: null,
  tags: {},
  created_at: '2025-01-01T00:00:00.000Z',
  updated_at: '2025-01-01T00:00:00.000Z',
};
const secret = { ...meta, value: 'value-0000000000' };

app.get('/v1/secrets/:env/*', async () => secret);
app.put('/v1/secrets/:env/*', async () => meta);

await app.listen({ host: '127.0.0.1', port: Number(port) });
const addr = app.server.address();
const url = `https://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : port}`;

let stopping = false;
async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  await app.close();
  process.exit(0);
}
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());
process.on('disconnect', () => void stop());

if (process.send) process.send({ type: 'ready', url });
else console.log(url);
