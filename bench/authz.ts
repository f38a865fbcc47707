// Authorization-check cost at 10, 1 000 and 100 000 assignments, and login throughput.
// Usage: node --import tsx bench/authz.ts   (BENCH_AUTHZ_SECONDS, default 2)
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { Agent, request } from 'undici';
import { createAccessService } from '../src/access/access-service.js';
import { createIdentityService } from '../src/auth/identity-service.js';
import type { TokenInfo } from '../src/auth/token-service.js';
import { startBroker } from '../src/broker.js';
import { resolveServerConfig } from '../src/config.js';
import { openStorage } from '../src/storage/storage.js';

const SECONDS = Number(process.env.BENCH_AUTHZ_SECONDS ?? 2);
const log = (msg: string) => process.stderr.write(`${msg}\n`);

/** Runs `fn` back to back for SECONDS; returns operations per second. */
async function rate(fn: () => Promise<unknown>, concurrency = 1, seconds = SECONDS): Promise<number> {
  const end = performance.now() + seconds * 1000;
  let n = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        await fn();
        n++;
      }
    }),
  );
  return n / seconds;
}

async function checksAt(
  total: number,
): Promise<{ total: number; perSecond: number; deniedPerSecond: number }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'custody-authz-bench-'));
  const storage = await openStorage(path.join(dir, 'authz.db'));
  try {
    const identities = createIdentityService(storage);
    const access = createAccessService(storage, identities);
    await access.seedBuiltinRoles();
    const now = Date.now();
    await storage.db
      .insertInto('environments')
      .values({ name: 'prod', retention_days: 90, purge_protection: 0, created_at: now, updated_at: now })
      .execute();
    // `total` assignments spread over as many identities; the measured one holds three of them.
    const ids: string[] = [];
    for (let start = 0; start < total; start += 500) {
      const batch = Array.from({ length: Math.min(500, total - start) }, (_, i) => ({
        id: randomUUID(),
        env: 'prod',
        kind: 'workload' as const,
        name: `job-${start + i}`,
        auth_method: 'jwt',
        login_role: 'bench',
        metadata: '{}',
        created_at: now,
        last_login_at: now,
      }));
      ids.push(...batch.map((b) => b.id));
      await storage.db.insertInto('identities').values(batch).execute();
      await storage.db
        .insertInto('assignments')
        .values(
          batch.map((b, i) => ({
            id: `asg_bench${String(start + i).padStart(8, '0')}`,
            env: 'prod',
            principal_type: 'identity' as const,
            principal_id: b.id,
            role: 'secrets-user',
            scope_kind: 'secrets' as const,
            scope_path: `team${(start + i) % 100}/db`,
            allow_management: 0,
            reason: 'bench',
            created_by: 'bench',
            created_at: now,
            expires_at: null,
          })),
        )
        .execute();
    }
    const subject = ids[0];
    for (const [i, scope] of ['team0/api', 'team0/cache'].entries()) {
      await storage.db
        .insertInto('assignments')
        .values({
          id: `asg_extra${String(i).padStart(8, '0')}`,
          env: 'prod',
          principal_type: 'identity',
          principal_id: subject,
          role: 'reader',
          scope_kind: 'secrets',
          scope_path: scope,
          allow_management: 0,
          reason: 'bench',
          created_by: 'bench',
          created_at: now,
          expires_at: null,
        })
        .execute();
    }
    const caller: TokenInfo = {
      accessor: 'acc_bench',
      policies: [],
      identityId: subject,
      displayName: 'bench',
      meta: {},
      parentAccessor: null,
      createdAt: now,
      expiresAt: null,
      maxExpiresAt: null,
      ttlSeconds: 0,
      renewable: false,
      env: 'prod',
      actorIdentityId: null,
      authMethod: 'jwt',
    };
    const allowed = await access.authorize(caller, 'secrets/get', 'prod/team0/db/password');
    if (!allowed.allowed) throw new Error('bench setup: expected an allow');
    const perSecond = await rate(() => access.authorize(caller, 'secrets/get', 'prod/team0/db/password'));
    const deniedPerSecond = await rate(() =>
      access.authorize(caller, 'secrets/get', 'prod/team1/db/password'),
    );
    return { total, perSecond, deniedPerSecond };
  } finally {
    await storage.close();
    await rm(dir, { recursive: true, force: true });
  }
}

async function loginRates(): Promise<{ health: number; login1: number; login16: number }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'custody-login-bench-'));
  const broker = await startBroker(
    resolveServerConfig({ dataDir: dir, listen: '127.0.0.1:0', logLevel: 'warn' }, {}),
    pino({ level: 'warn' }),
  );
  const agent = new Agent({ connect: { ca: await readFile(broker.caCertPath!, 'utf8') }, connections: 32 });
  const root = (await readFile(broker.rootTokenPath!, 'utf8')).trim();
  const call = async (method: string, p: string, body?: unknown, token = root) => {
    const res = await request(`${broker.url}${p}`, {
      method: method as 'GET',
      dispatcher: agent,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = (await res.body.json()) as any;
    if (res.statusCode >= 300) throw new Error(`${p}: ${res.statusCode} ${JSON.stringify(json)}`);
    return json;
  };
  try {
    await call('POST', '/v1/envs', { name: 'prod' });
    await call('POST', '/v1/auth/methods/prod', { type: 'approle' });
    await call('PUT', '/v1/auth/methods/prod/approle/roles/ci', { secret_id_num_uses: 0, token_ttl: '10m' });
    const roleId = (await call('GET', '/v1/auth/methods/prod/approle/roles/ci/role-id')).role_id;
    const secretId = (await call('POST', '/v1/auth/methods/prod/approle/roles/ci/secret-id', {})).secret_id;
    const login = () =>
      call('POST', '/v1/auth/login/prod/approle/ci', { role_id: roleId, secret_id: secretId }, '');
    await login();
    const health = await rate(() => call('GET', '/v1/sys/health', undefined, ''), 16);
    const login1 = await rate(login, 1);
    const login16 = await rate(login, 16);
    return { health, login1, login16 };
  } finally {
    await agent.close();
    await broker.close();
    await rm(dir, { recursive: true, force: true });
  }
}

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
const rows = [];
for (const total of [10, 1_000, 100_000]) {
  log(`authz: seeding ${total} assignments…`);
  rows.push(await checksAt(total));
}
console.log(
  '\nAuthorization checks (one identity with 3 assignments; total assignments in the environment varies)',
);
console.log('assignments   allow checks/s   deny checks/s   allow rate vs 10 assignments');
for (const r of rows) {
  console.log(
    `${fmt(r.total).padStart(11)}   ${fmt(r.perSecond).padStart(14)}   ${fmt(r.deniedPerSecond).padStart(13)}   ${(r.perSecond / rows[0].perSecond).toFixed(2).padStart(10)}x`,
  );
}
log('login: starting a broker…');
const l = await loginRates();
console.log(
  '\nAppRole login over HTTPS (each login: secret-id check, identity upsert, token, two audit entries)',
);
console.log(`baseline GET /v1/sys/health, 16 clients: ${fmt(l.health)} req/s`);
console.log(`login, 1 client:   ${fmt(l.login1)} logins/s`);
console.log(
  `login, 16 clients: ${fmt(l.login16)} logins/s  (${(l.login16 / l.health).toFixed(3)}x the health baseline)`,
);
