import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { freePort, onProcessExit } from './process.js';

/**
 * Azurite's blob service (the npm package, a devDependency) on a free loopback port, in memory.
 * A second account with a key of its own is configured besides Azurite's well-known one, so a test
 * never signs with the published emulator key by accident.
 */
export interface Azurite {
  /** `http://127.0.0.1:<port>/<account>`: the blob endpoint of the test account (path style). */
  endpoint: string;
  account: string;
  key: string;
  stop(): Promise<void>;
}

const BIN = fileURLToPath(new URL('../../node_modules/.bin/azurite-blob', import.meta.url));

export async function startAzurite(): Promise<Azurite> {
  const port = await freePort();
  const dir = await mkdtemp(path.join(tmpdir(), 'custody-azurite-'));
  const account = 'mldata';
  const key = Buffer.from(`custody-test-key-${port}-0123456789abcdef`).toString('base64');
  const proc: ChildProcess = spawn(
    BIN,
    [
      '--blobHost',
      '127.0.0.1',
      '--blobPort',
      String(port),
      '--inMemoryPersistence',
      '--skipApiVersionCheck',
      '--silent',
    ],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
      cwd: dir,
      env: { ...process.env, AZURITE_ACCOUNTS: `${account}:${key}` },
    },
  );
  const kill = () => proc.exitCode === null && proc.kill('SIGKILL');
  onProcessExit(kill);
  let stderr = '';
  proc.stderr!.on('data', (c) => (stderr += c));
  const endpoint = `http://127.0.0.1:${port}/${account}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const r = await fetch(`${endpoint}?comp=list`);
      await r.arrayBuffer();
      if (r.status > 0) break;
    } catch {}
    if (Date.now() > deadline || proc.exitCode !== null) throw new Error(`azurite did not start: ${stderr}`);
    await sleep(100);
  }
  return {
    endpoint,
    account,
    key,
    async stop() {
      if (proc.exitCode === null) {
        proc.kill('SIGTERM');
        await Promise.race([new Promise((r) => proc.once('exit', r)), sleep(5_000)]);
        kill();
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
