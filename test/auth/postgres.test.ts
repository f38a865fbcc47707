import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type PostgresCluster, startPostgres } from '../support/postgres.js';
import { type AuthFixture, authFixture, jwtMethod, login, ok, putRole } from './helpers.js';

let pg: PostgresCluster;
let f: AuthFixture;
before(async () => {
  pg = await startPostgres();
  f = await authFixture(['prod'], await pg.createDatabase('auth_methods'));
});
after(async () => {
  await f?.stop();
  await pg?.stop();
});

test('on PostgreSQL: JWT login, AppRole use counts under concurrency, method deletion', async () => {
  await jwtMethod(f, 'prod', 'oidc', { audiences: ['custody'] });
  await putRole(f, 'prod', 'oidc', 'job', { bound_claims: { 'kubernetes.io/namespace': 'ml-*' } });
  const jwt = await f.issuer.sign({ sub: 'pg-job', aud: 'custody', 'kubernetes.io': { namespace: 'ml-a' } });
  const a = await ok(login(f, 'prod', 'oidc', 'job', { jwt }));
  const b = await ok(login(f, 'prod', 'oidc', 'job', { jwt }));
  assert.equal(a.identity.id, b.identity.id);

  await ok(f.b.call('POST', '/v1/auth/methods/prod', { body: { type: 'approle' } }));
  await putRole(f, 'prod', 'approle', 'etl', { secret_id_num_uses: 4 });
  const base = '/v1/auth/methods/prod/approle/roles/etl';
  const rid = (await ok(f.b.call('GET', `${base}/role-id`))).role_id;
  const s = await ok(f.b.call('POST', `${base}/secret-id`, { body: {} }));
  const replies = await Promise.all(
    Array.from({ length: 10 }, () =>
      login(f, 'prod', 'approle', 'etl', { role_id: rid, secret_id: s.secret_id }),
    ),
  );
  assert.equal(replies.filter((r) => r.status === 200).length, 4);

  const dup = await f.b.call('POST', '/v1/auth/methods/prod', { body: { type: 'approle' } });
  assert.equal(dup.status, 409);
  assert.equal(dup.body.error.code, 'AuthMethodExists');
  await ok(f.b.call('DELETE', '/v1/auth/methods/prod/approle'));
  const gone = await login(f, 'prod', 'approle', 'etl', { role_id: rid, secret_id: s.secret_id });
  assert.equal(gone.status, 404);
});
