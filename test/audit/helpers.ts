import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AuditInput, type AuditRecord, type ChainState, SinkChain } from '../../src/audit/index.js';

export function record(i: number, extra: Partial<AuditRecord> = {}): AuditRecord {
  return {
    time: new Date(Date.UTC(2025, 0, 1, 0, 0, i)).toISOString(),
    type: i % 2 ? 'request' : 'response',
    request_id: `req-${i}`,
    door: 'native',
    remote_addr: '127.0.0.1',
    auth: { accessor: `acc-${i}`, identity: 'job-a', policies: ['reader'], root: false, method: 'token' },
    action: 'secrets/get',
    resource: `prod/db/secret-${i}`,
    outcome: 'allowed',
    data: { version: i, tags: ['a', 'b'], nested: { z: 1, a: [i, { y: true }] } },
    ...extra,
  };
}

/** n chained lines as a file sink would write them. */
export function chainLines(n: number, start?: ChainState): string[] {
  const chain = new SinkChain(start);
  return Array.from({ length: n }, (_, i) => chain.stamp(record(i + 1)));
}

export function input(extra: Partial<AuditInput> = {}): AuditInput {
  return {
    type: 'request',
    requestId: 'req-1',
    door: 'native',
    remoteAddr: '10.0.0.7',
    auth: { accessor: 'acc-1', identity: 'job-a', policies: ['reader'] },
    action: 'secrets/get',
    resource: 'prod/db/password',
    outcome: 'allowed',
    ...extra,
  };
}

/** A fresh directory under the OS temp dir; remove it with the returned function. */
export async function tempDir(): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'custody-audit-'));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}
