import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { type PostgresCluster, startPostgres } from '../support/postgres.js';

const engines = ['sqlite', 'postgres'] as const;
let pg: PostgresCluster | null = null;

before(async () => {
  pg = await startPostgres();
});
after(async () => {
  await pg?.stop();
});

for (const engine of engines) {
  describe(`secrets API on ${engine}`, () => {
    let b: TestBroker;
    before(async () => {
      const storageUrl =
        engine === 'postgres' ? await pg!.createDatabase(`kv_${randomBytes(4).toString('hex')}`) : undefined;
      b = await startTestBroker({ storageUrl });
      assert.equal((await b.call('POST', '/v1/envs', { body: { name: 'dev' } })).status, 200);
      assert.equal(
        (await b.call('POST', '/v1/envs', { body: { name: 'prod', retention_days: 7 } })).status,
        200,
      );
    });
    after(async () => {
      await b.stop();
    });

    test('health reports the storage engine', async () => {
      const res = await b.call('GET', '/v1/sys/health', { token: null });
      assert.equal(res.status, 200);
      assert.equal(res.body.storage, engine);
      assert.equal(res.body.sealed, false);
    });

    test('every set creates an immutable version; get latest or by number or id', async () => {
      const v1 = await b.call('PUT', '/v1/secrets/dev/db/password', {
        body: { value: 'one', tags: { team: 'ml' } },
      });
      assert.equal(v1.status, 200);
      assert.equal(v1.body.seq, 1);
      assert.match(v1.body.version, /^[0-9a-f]{32}$/);
      assert.equal(v1.body.value, undefined, 'a set reply never echoes the value');
      const v2 = await b.call('PUT', '/v1/secrets/dev/db/password', {
        body: { value: 'two', content_type: 'text/plain' },
      });
      assert.equal(v2.body.seq, 2);
      assert.notEqual(v2.body.version, v1.body.version);

      const latest = await b.call('GET', '/v1/secrets/dev/db/password');
      assert.equal(latest.body.value, 'two');
      assert.equal(latest.body.content_type, 'text/plain');
      assert.equal((await b.call('GET', '/v1/secrets/dev/db/password?version=1')).body.value, 'one');
      const byId = await b.call('GET', `/v1/secrets/dev/db/password?version=${v1.body.version}`);
      assert.equal(byId.body.value, 'one');
      assert.deepEqual(byId.body.tags, { team: 'ml' });

      const versions = await b.call('GET', '/v1/secret-versions/dev/db/password');
      assert.deepEqual(
        versions.body.items.map((v: any) => v.seq),
        [1, 2],
      );
      assert.ok(
        versions.body.items.every((v: any) => !('value' in v)),
        'version listings carry no values',
      );
    });

    test('check-and-set prevents lost updates', async () => {
      assert.equal(
        (await b.call('PUT', '/v1/secrets/dev/cas', { body: { value: 'a', cas: 0 } })).status,
        200,
      );
      const stale = await b.call('PUT', '/v1/secrets/dev/cas', { body: { value: 'b', cas: 0 } });
      assert.equal(stale.status, 409);
      assert.equal(stale.body.error.code, 'CasMismatch');
      assert.ok(stale.body.error.hint);
      assert.equal(
        (await b.call('PUT', '/v1/secrets/dev/cas', { body: { value: 'b', cas: 1 } })).body.seq,
        2,
      );
    });

    test('concurrent writers each get a distinct version', async () => {
      const replies = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          b.call('PUT', '/v1/secrets/dev/race', { body: { value: `v${i}` } }),
        ),
      );
      assert.ok(
        replies.every((r) => r.status === 200),
        JSON.stringify(replies.find((r) => r.status !== 200)?.body),
      );
      assert.deepEqual(
        replies.map((r) => r.body.seq).sort((x, y) => x - y),
        Array.from({ length: 20 }, (_, i) => i + 1),
      );
    });

    test('disabled, expired and not-yet-valid versions are refused; attributes change without a new version', async () => {
      await b.call('PUT', '/v1/secrets/dev/attr', { body: { value: 'x' } });
      const upd = await b.call('PATCH', '/v1/secrets/dev/attr', { body: { enabled: false } });
      assert.equal(upd.status, 200);
      assert.equal(upd.body.seq, 1);
      assert.equal(upd.body.enabled, false);
      const disabled = await b.call('GET', '/v1/secrets/dev/attr');
      assert.equal(disabled.status, 403);
      assert.equal(disabled.body.error.code, 'SecretDisabled');

      await b.call('PATCH', '/v1/secrets/dev/attr', {
        body: { enabled: true, expires: '2001-01-01T00:00:00Z' },
      });
      assert.equal((await b.call('GET', '/v1/secrets/dev/attr')).body.error.code, 'SecretExpired');
      await b.call('PATCH', '/v1/secrets/dev/attr', {
        body: { expires: null, not_before: '2999-01-01T00:00:00Z' },
      });
      assert.equal((await b.call('GET', '/v1/secrets/dev/attr')).body.error.code, 'SecretNotYetValid');
      await b.call('PATCH', '/v1/secrets/dev/attr', { body: { not_before: null } });
      assert.equal((await b.call('GET', '/v1/secrets/dev/attr')).body.value, 'x');
      assert.equal((await b.call('GET', '/v1/secret-versions/dev/attr')).body.items.length, 1);
    });

    test('list returns metadata only and pages with a cursor', async () => {
      for (const n of ['p/a', 'p/b', 'p/c', 'p/d', 'p/e'])
        await b.call('PUT', `/v1/secrets/dev/${n}`, { body: { value: `v-${n}` } });
      const seen: string[] = [];
      let cursor: string | null = null;
      do {
        const q: string = `?prefix=p&limit=2${cursor ? `&cursor=${cursor}` : ''}`;
        const page = await b.call('GET', `/v1/secrets/dev${q}`);
        assert.equal(page.status, 200);
        assert.ok(page.body.items.length <= 2);
        for (const item of page.body.items) {
          assert.equal(item.value, undefined);
          seen.push(item.name);
        }
        cursor = page.body.next_cursor;
      } while (cursor);
      assert.deepEqual(seen, ['p/a', 'p/b', 'p/c', 'p/d', 'p/e']);
    });

    test('environments are a hard boundary', async () => {
      await b.call('PUT', '/v1/secrets/dev/only-dev', { body: { value: 'd' } });
      const other = await b.call('GET', '/v1/secrets/prod/only-dev');
      assert.equal(other.status, 404);
      assert.equal(other.body.error.code, 'SecretNotFound');
      assert.equal((await b.call('GET', '/v1/secrets/nope/x')).body.error.code, 'EnvironmentNotFound');
      assert.equal((await b.call('GET', '/v1/secrets/dev%2F..%2Fprod/only-dev')).status, 400);
    });

    test('soft delete, recover, purge, and purge protection', async () => {
      await b.call('PUT', '/v1/secrets/prod/tmp', { body: { value: 'keep' } });
      const del = await b.call('DELETE', '/v1/secrets/prod/tmp');
      assert.equal(del.status, 200);
      const purgeAt = Date.parse(del.body.scheduled_purge_at) - Date.parse(del.body.deleted_at);
      assert.equal(purgeAt, 7 * 86_400_000, 'retention follows the environment');
      assert.equal((await b.call('GET', '/v1/secrets/prod/tmp')).body.error.code, 'SecretDeleted');
      assert.equal((await b.call('PUT', '/v1/secrets/prod/tmp', { body: { value: 'new' } })).status, 409);
      const listed = await b.call('GET', '/v1/deleted-secrets/prod');
      assert.deepEqual(
        listed.body.items.map((i: any) => i.name),
        ['tmp'],
      );
      assert.equal((await b.call('POST', '/v1/deleted-secrets/prod/tmp')).status, 200);
      assert.equal((await b.call('GET', '/v1/secrets/prod/tmp')).body.value, 'keep');

      await b.call('DELETE', '/v1/secrets/prod/tmp');
      assert.equal((await b.call('DELETE', '/v1/deleted-secrets/prod/tmp')).status, 204);
      assert.equal((await b.call('GET', '/v1/deleted-secrets/prod/tmp')).status, 404);
      assert.equal((await b.call('PUT', '/v1/secrets/prod/tmp', { body: { value: 'fresh' } })).body.seq, 1);

      await b.call('POST', '/v1/envs', { body: { name: 'locked', purge_protection: true } });
      await b.call('PUT', '/v1/secrets/locked/s', { body: { value: 'v' } });
      await b.call('DELETE', '/v1/secrets/locked/s');
      const refused = await b.call('DELETE', '/v1/deleted-secrets/locked/s');
      assert.equal(refused.status, 403);
      assert.equal(refused.body.error.code, 'PurgeProtected');
      const off = await b.call('PATCH', '/v1/envs/locked', { body: { purge_protection: false } });
      assert.equal(off.body.error.code, 'PurgeProtectionLocked');
    });

    test('rotation: new writes use the new key, old values stay readable', async () => {
      await b.call('PUT', '/v1/secrets/dev/rot', { body: { value: 'before' } });
      const rot = await b.call('POST', '/v1/sys/rotate');
      assert.equal(rot.status, 200);
      assert.ok(rot.body.key_term >= 2);
      await b.call('PUT', '/v1/secrets/dev/rot', { body: { value: 'after' } });
      assert.equal((await b.call('GET', '/v1/secrets/dev/rot?version=1')).body.value, 'before');
      assert.equal((await b.call('GET', '/v1/secrets/dev/rot?version=2')).body.value, 'after');
    });

    test('tokens: create, lookup, renew, default deny, revoke cascades to children', async () => {
      const child = await b.call('POST', '/v1/auth/token/create', {
        body: { policies: ['root'], ttl: '1h', display_name: 'ci' },
      });
      assert.equal(child.status, 200);
      assert.match(child.body.token, /^cst_/);
      const grandchild = await b.call('POST', '/v1/auth/token/create', {
        token: child.body.token,
        body: { ttl: 600 },
      });
      assert.equal(grandchild.status, 200);
      const self = await b.call('GET', '/v1/auth/token/lookup-self', { token: grandchild.body.token });
      assert.equal(self.body.accessor, grandchild.body.accessor);
      assert.ok(self.body.ttl > 590 && self.body.ttl <= 600);
      const denied = await b.call('GET', '/v1/secrets/dev/rot', { token: grandchild.body.token });
      assert.equal(denied.status, 403);
      assert.equal(denied.body.error.code, 'PermissionDenied');
      const escalate = await b.call('POST', '/v1/auth/token/create', {
        token: grandchild.body.token,
        body: { policies: ['root'] },
      });
      assert.equal(escalate.status, 403);
      const renewed = await b.call('POST', '/v1/auth/token/renew', {
        body: { accessor: child.body.accessor, increment: '2h' },
      });
      assert.equal(renewed.status, 200);
      assert.ok(renewed.body.ttl > 3600);
      const revoked = await b.call('POST', '/v1/auth/token/revoke', {
        body: { accessor: child.body.accessor },
      });
      assert.deepEqual(revoked.body, { revoked: 2 });
      const gone = await b.call('GET', '/v1/auth/token/lookup-self', { token: grandchild.body.token });
      assert.equal(gone.status, 401);
      assert.equal(gone.body.error.code, 'InvalidToken');
    });

    test('bad input gets a clear 4xx with a stable code, never a 500', async () => {
      const cases: [
        string,
        string,
        { body?: unknown; rawBody?: string; token?: string | null; headers?: Record<string, string> },
        number,
        string,
      ][] = [
        ['PUT', '/v1/secrets/dev/x', { rawBody: '{"value": ' }, 400, 'MalformedJson'],
        [
          'PUT',
          '/v1/secrets/dev/x',
          { rawBody: JSON.stringify({ value: 'a'.repeat(1_100_000) }) },
          413,
          'PayloadTooLarge',
        ],
        ['PUT', '/v1/secrets/dev/x', { body: { value: 'a'.repeat(300_000) } }, 400, 'ValueTooLarge'],
        ['PUT', '/v1/secrets/dev/x', { body: { value: 42 } }, 400, 'InvalidRequest'],
        ['PUT', '/v1/secrets/dev/x', { body: { value: 'v', surprise: 1 } }, 400, 'InvalidRequest'],
        ['PUT', '/v1/secrets/dev/x', { body: { value: 'v', expires: 'tomorrow' } }, 400, 'InvalidRequest'],
        [
          'PUT',
          '/v1/secrets/dev/x',
          { rawBody: 'value=1', headers: { 'content-type': 'text/plain' } },
          415,
          'UnsupportedMediaType',
        ],
        ['PUT', '/v1/secrets/dev/a//b', { body: { value: 'v' } }, 400, 'InvalidSecretName'],
        ['PUT', '/v1/secrets/dev/a%2F..%2Fb', { body: { value: 'v' } }, 400, 'InvalidSecretName'],
        ['PUT', '/v1/secrets/dev/bad%20name', { body: { value: 'v' } }, 400, 'InvalidSecretName'],
        ['PUT', '/v1/secrets/dev/', { body: { value: 'v' } }, 400, 'InvalidSecretName'],
        ['PUT', `/v1/secrets/dev/${'n'.repeat(300)}`, { body: { value: 'v' } }, 400, 'InvalidSecretName'],
        ['PUT', '/v1/secrets/DEV/x', { body: { value: 'v' } }, 400, 'InvalidEnvironmentName'],
        ['GET', '/v1/secrets/dev/db/password?version=99', {}, 404, 'VersionNotFound'],
        ['GET', '/v1/secrets/dev/db/password?version=zz', {}, 400, 'InvalidVersion'],
        ['GET', '/v1/secrets/dev/missing', {}, 404, 'SecretNotFound'],
        ['GET', '/v1/secrets/dev?cursor=%20', {}, 400, 'InvalidCursor'],
        ['GET', '/v1/secrets/dev/db/password', { token: null }, 401, 'MissingToken'],
        ['GET', '/v1/secrets/dev/db/password', { token: 'cst_forged-token-value' }, 401, 'InvalidToken'],
        ['POST', '/v1/envs', { body: { name: 'dev' } }, 409, 'EnvironmentExists'],
        ['POST', '/v1/envs', { body: { name: 'x', retention_days: 3 } }, 400, 'InvalidRequest'],
        ['POST', '/v1/auth/token/create', { body: { ttl: 'forever' } }, 400, 'InvalidDuration'],
        [
          'POST',
          '/v1/auth/token/lookup',
          { body: { accessor: 'acc_doesnotexist000' } },
          404,
          'TokenNotFound',
        ],
        ['GET', '/v1/nothing-here', {}, 404, 'RouteNotFound'],
      ];
      for (const [method, url, opts, status, code] of cases) {
        const res = await b.call(method, url, opts);
        assert.equal(
          res.status,
          status,
          `${method} ${url.slice(0, 60)} → ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`,
        );
        assert.equal(res.body?.error?.code, code, `${method} ${url.slice(0, 60)}`);
        assert.ok(res.body.error.message && res.body.error.hint, `${code} has a message and a hint`);
        assert.doesNotMatch(JSON.stringify(res.body), /at .*\.(ts|js):\d+/, 'no stack trace');
      }
    });

    test('path tricks never reach another name or environment', async () => {
      for (const p of [
        '/v1/secrets/dev/a/../b',
        '/v1/secrets/dev/./b',
        '/v1/secrets/dev/a/%2E%2E/b',
        '/v1/secrets/dev/..%2Fprod%2Fonly-dev',
      ]) {
        const res = await b.callRaw('PUT', p, { value: 'v' });
        assert.equal(res.status, 400, p);
        assert.equal(res.body.error.code, 'InvalidSecretName', p);
      }
      const cross = await b.callRaw('GET', '/v1/secrets/dev/../prod/only-dev');
      assert.equal(cross.status, 400);
    });

    test('OpenAPI document and metrics are served', async () => {
      const doc = await b.call('GET', '/v1/openapi.json', { token: null });
      assert.equal(doc.status, 200);
      assert.equal(doc.body.openapi, '3.0.3');
      assert.ok(
        doc.body.paths['/v1/secrets/{env}/{*}'] ||
          Object.keys(doc.body.paths).some((p) => p.startsWith('/v1/secrets/')),
      );
      const metrics = await b.call('GET', '/metrics', { token: null });
      assert.match(
        metrics.body,
        /custody_requests_total\{operation="secrets\/get",door="native",outcome="ok"\} \d+/,
      );
      assert.match(metrics.body, /custody_sealed 0/);
      assert.match(metrics.body, /custody_request_duration_seconds_bucket/);
    });

    test('canary: a secret value never appears in logs, the audit file, or any file in the data dir', async () => {
      const canary = `canary-${randomBytes(12).toString('hex')}`;
      assert.equal((await b.call('PUT', '/v1/secrets/dev/canary', { body: { value: canary } })).status, 200);
      assert.equal((await b.call('GET', '/v1/secrets/dev/canary')).body.value, canary);
      await b.call('PUT', '/v1/secrets/dev/canary', { body: { value: canary, cas: 0 } }); // a failing write too
      assert.ok(!b.logs.join('\n').includes(canary), 'server log');
      const files = await walk(b.dataDir);
      assert.ok(files.some((f) => f.endsWith('audit.log')));
      for (const f of files) {
        const bytes = await readFile(f);
        assert.ok(!bytes.includes(Buffer.from(canary)), `plaintext canary in ${path.relative(b.dataDir, f)}`);
        assert.ok(
          !bytes.includes(Buffer.from(b.rootToken)) || f.endsWith('root-token'),
          `root token in ${f}`,
        );
      }
      const audit = await readFile(path.join(b.dataDir, 'audit.log'), 'utf8');
      assert.match(audit, /hmac-sha256:[0-9a-f]{64}/);
    });
  });
}

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await walk(p)));
    else out.push(p);
  }
  return out;
}
