// The broker as the bench runs it: embedded defaults (SQLite, HTTPS with the generated CA, file audit).
// Usage: node --import tsx bench/broker-main.ts <dataDir> [port]
import { startBroker } from '../src/broker.js';
import { resolveServerConfig } from '../src/config.js';

const [dataDir, port = '0'] = process.argv.slice(2);
if (!dataDir) {
  console.error('usage: broker-main.ts <dataDir> [port]');
  process.exit(2);
}
// Empty env: CUSTODY_* variables on the machine must not change what is measured.
const config = resolveServerConfig({ dataDir, listen: `127.0.0.1:${port}`, logLevel: 'warn' }, {});
const broker = await startBroker(config);

let stopping = false;
async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  await broker.close();
  process.exit(0);
}
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());
// The parent died or let go: do not linger.
process.on('disconnect', () => void stop());

if (process.send) process.send({ type: 'ready', url: broker.url });
else console.log(broker.url);
