import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { after, test } from 'node:test';
import { Agent, request } from 'undici';
import { verifyAuditFile } from '../../src/audit/index.js';
import { type BrokerProcess, startBrokerProcess } from '../support/broker-process.js';

let dataDir = '';
after(async () => {
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

async function call(bp: BrokerProcess, agent: Agent, method: string, p: string, body?: unknown) {
  const res = await request(`${bp.url}${p}`, {
    method: method as 'GET',
    dispatcher: agent,
    headers: {
      authorization: `Bearer ${bp.rootToken}`,
      ...(body ? { 'content-type': 'application/json' } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: res.statusCode, body: (await res.body.json()) as any };
}

test('kill -9 during a stream of writes: every acknowledged write survives, nothing is half-written', async () => {
  let bp = await startBrokerProcess();
  dataDir = bp.dataDir;
  const { readFile } = await import('node:fs/promises');
  let agent = new Agent({ connect: { ca: await readFile(bp.caCertPath!, 'utf8') } });
  assert.equal((await call(bp, agent, 'POST', '/v1/envs', { name: 'prod' })).status, 200);

  // Eight writers each write versions of their own secret; value = "<writer>:<n>" makes any torn write visible.
  const acked = new Map<string, number>();
  let stop = false;
  const writers = Array.from({ length: 8 }, async (_, w) => {
    for (let n = 1; !stop; n++) {
      try {
        const res = await call(bp, agent, 'PUT', `/v1/secrets/prod/w${w}`, { value: `w${w}:${n}` });
        if (res.status !== 200) break;
        assert.equal(res.body.seq, n);
        acked.set(`w${w}`, n);
      } catch {
        break; // the broker died mid-request: this write was never acknowledged
      }
    }
  });
  await new Promise((r) => setTimeout(r, 1500));
  assert.ok(
    [...acked.values()].every((n) => n > 0),
    'every writer got acknowledgements before the kill',
  );
  const killed = await bp.kill9();
  stop = true;
  await Promise.all(writers);
  await agent.close();
  assert.equal(killed, 'SIGKILL');

  bp = await startBrokerProcess({ dataDir });
  agent = new Agent({ connect: { ca: await readFile(bp.caCertPath!, 'utf8') } });
  try {
    let total = 0;
    for (const [name, lastAcked] of acked) {
      const versions = await call(bp, agent, 'GET', `/v1/secret-versions/prod/${name}`);
      assert.equal(versions.status, 200);
      const seqs = versions.body.items.map((v: any) => v.seq);
      assert.ok(seqs.length >= lastAcked, `${name}: ${seqs.length} versions, ${lastAcked} acknowledged`);
      assert.deepEqual(
        seqs,
        Array.from({ length: seqs.length }, (_, i) => i + 1),
        'no gaps',
      );
      // At most the one in-flight write may have committed without its acknowledgement.
      assert.ok(seqs.length <= lastAcked + 1);
      for (const seq of seqs) {
        const v = await call(bp, agent, 'GET', `/v1/secrets/prod/${name}?version=${seq}`);
        assert.equal(v.status, 200, `${name} v${seq} is readable`);
        assert.equal(v.body.value, `${name}:${seq}`, `${name} v${seq} is whole`);
      }
      total += lastAcked;
    }
    assert.ok(total > 20, `a real stream of writes was interrupted (${total} acknowledged)`);
    const audit = await verifyAuditFile(path.join(dataDir, 'audit.log'));
    assert.equal(audit.ok, true, `audit chain intact after the crash: ${JSON.stringify(audit)}`);
  } finally {
    await agent.close();
    await bp.stop();
  }
});
