import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type BrokerProcess, runCli, startBrokerProcess } from '../support/broker-process.js';
import { type OidcIssuer, startOidcIssuer } from '../support/oidc-issuer.js';

/** End to end: auth methods, logins, assignments, identities, groups and root generation via `custody …`. */
describe('custody CLI: identities, logins and access', () => {
  let broker: BrokerProcess;
  let issuer: OidcIssuer;
  let work: string;
  let trainerToken: string;
  let trainerId: string;
  let assignmentId: string;
  const cli = (
    args: string[],
    opts: { env?: Record<string, string | undefined>; input?: string; cwd?: string } = {},
  ) => runCli(args, { ...opts, env: { ...broker.env(), ...opts.env } });
  const ok = async (
    args: string[],
    opts: { env?: Record<string, string | undefined>; input?: string } = {},
  ) => {
    const r = await cli(args, opts);
    assert.equal(r.code, 0, `custody ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
    return r;
  };
  const json = async (
    args: string[],
    opts: { env?: Record<string, string | undefined>; input?: string } = {},
  ) => JSON.parse((await ok([...args, '--format', 'json'], opts)).stdout);
  const as = (token: string) => ({ env: { CUSTODY_TOKEN: token } });

  before(async () => {
    broker = await startBrokerProcess();
    issuer = await startOidcIssuer();
    work = await mkdtemp(path.join(tmpdir(), 'custody-cli-rbac-'));
    await ok(['env', 'create', 'prod']);
    await ok(['kv', 'put', 'prod/db/x', 'user=app', 'password=s3cret']);
    await ok(['kv', 'put', 'prod/other', 'k=v']);
  });

  after(async () => {
    await broker?.cleanup();
    await issuer?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('AppRole: enable, role write, role-id, secret-id, login → a token', async () => {
    const m = await json(['auth', 'enable', 'prod', 'approle']);
    assert.equal(m.name, 'approle');
    assert.equal(m.type, 'approle');
    const listed = await ok(['auth', 'list', 'prod']);
    assert.match(listed.stdout, /^NAME\s+TYPE\s+ISSUER/);
    assert.match(listed.stdout, /^approle\s+approle/m);

    const role = await json([
      'auth',
      'role',
      'write',
      'prod/approle/trainer',
      '--token-ttl',
      '1h',
      '--token-max-ttl',
      '8h',
      '--secret-id-ttl',
      '24h',
      '--secret-id-num-uses',
      '5',
    ]);
    assert.equal(role.config.token_ttl, 3600);
    assert.equal(role.config.token_max_ttl, 28_800);
    assert.equal(role.config.secret_id_num_uses, 5);
    const read = await ok(['auth', 'role', 'read', 'prod/approle/trainer']);
    assert.match(read.stdout, /^secret_id_ttl:\s+86400$/m);
    const roles = await json(['auth', 'role', 'list', 'prod/approle']);
    assert.deepEqual(
      roles.items.map((r: { name: string }) => r.name),
      ['trainer'],
    );

    const roleId = (await ok(['auth', 'role-id', 'prod/approle/trainer'])).stdout;
    assert.match(roleId, /^rid_\S+\n$/);
    const sid = await ok(['auth', 'secret-id', 'prod/approle/trainer', '--meta', 'job=nightly']);
    assert.match(sid.stdout, /^sid_\S+\n$/, 'only the secret id on stdout');
    assert.match(sid.stderr, /accessor sida_/);
    const sidJson = await json(['auth', 'secret-id', 'prod/approle/trainer', '--cidr', '127.0.0.0/8']);
    assert.match(sidJson.secret_id, /^sid_/);
    assert.match(sidJson.secret_id_accessor, /^sida_/);
    assert.ok(Date.parse(sidJson.expires_at) > Date.now() + 23 * 3600_000);

    const login = await cli(
      ['login', 'prod/approle/trainer', '--role-id', roleId.trim(), '--secret-id', '-'],
      {
        input: sid.stdout,
        env: { CUSTODY_TOKEN: undefined },
      },
    );
    assert.equal(login.code, 0, login.stderr);
    assert.match(login.stdout, /^cst_\S+\n$/, 'just the token, for $(…)');
    assert.match(login.stderr, /Logged in as trainer \(workload /);
    trainerToken = login.stdout.trim();

    const file = path.join(work, 'secret-id');
    await writeFile(file, `${sidJson.secret_id}\n`);
    const lj = await json([
      'login',
      'prod/approle/trainer',
      '--role-id',
      roleId.trim(),
      '--secret-id-file',
      file,
    ]);
    assert.match(lj.token, /^cst_/);
    assert.match(lj.accessor, /^acc_/);
    assert.equal(lj.identity.name, 'trainer');
    assert.equal(lj.identity.kind, 'workload');
    assert.ok(Date.parse(lj.expires_at) > Date.now() + 3500_000);
    trainerId = lj.identity.id;

    const self = await json(['token', 'lookup'], as(trainerToken));
    assert.equal(self.identity_id, trainerId);

    const wrong = await cli(
      ['login', 'prod/approle/trainer', '--role-id', roleId.trim(), '--secret-id', '-'],
      {
        input: 'sid_wrong\n',
      },
    );
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /\(InvalidSecretId\)/);
  });

  it('access assign: the logged-in token reads prod/db/x but not prod/other', async () => {
    const a = await json([
      'access',
      'assign',
      'prod/trainer',
      'secrets-user',
      'prod/secrets/db',
      '--reason',
      'reads the DB password',
    ]);
    assert.match(a.id, /\S/);
    assert.equal(a.role, 'secrets-user');
    assert.equal(a.scope, 'prod/secrets/db');
    assert.equal(a.principal_id, trainerId);
    assert.equal(a.expires_at, null);
    assignmentId = a.id;

    const got = await ok(['kv', 'get', 'prod/db/x', '--field', 'password'], as(trainerToken));
    assert.equal(got.stdout, 's3cret\n');
    const denied = await cli(['kv', 'get', 'prod/other'], as(trainerToken));
    assert.equal(denied.code, 1);
    assert.equal(denied.stdout, '');
    assert.match(denied.stderr, /\(PermissionDenied\)/);
  });

  it('access check prints allow/deny (exit 0 for both) and list shows effective permissions', async () => {
    const allow = await ok(['access', 'check', 'prod/trainer', 'secrets/get', 'prod/db/x']);
    assert.equal(allow.stdout, `allow (assignment ${assignmentId})\n`);
    const deny = await ok(['access', 'check', 'prod/trainer', 'secrets/get', 'prod/other']);
    assert.match(deny.stdout, /^deny \(.+\)\n$/);
    const dj = await json(['access', 'check', trainerId, 'secrets/set', 'prod/db/x']);
    assert.equal(dj.allowed, false);
    assert.equal(dj.identity, trainerId);
    assert.equal(typeof dj.reason, 'string');
    const aj = await json(['access', 'check', trainerId, 'secrets/get', 'prod/db/x']);
    assert.deepEqual(
      { allowed: aj.allowed, assignment: aj.assignment },
      { allowed: true, assignment: assignmentId },
    );
    const unknown = await cli(['access', 'check', 'prod/nobody', 'secrets/get', 'prod/db/x']);
    assert.equal(unknown.code, 1, 'a failed query is exit 1');

    const eff = await json(['access', 'list', 'prod/trainer']);
    assert.equal(eff.identity, trainerId);
    const get = eff.items.find((p: { action: string }) => p.action === 'secrets/get');
    assert.equal(get.scope, 'prod/secrets/db');
    assert.equal(get.assignment, assignmentId);
    const table = await ok(['access', 'list', 'prod/trainer']);
    assert.match(table.stdout, /^ACTION\s+SCOPE\s+ASSIGNMENT\s+VIA\s+EXPIRES\n/);
    assert.match(table.stdout, /^secrets\/get\s+prod\/secrets\/db\s+/m);

    const raw = await json(['access', 'list', '--assignments', 'prod']);
    assert.ok(raw.items.some((x: { id: string }) => x.id === assignmentId));
    const mine = await json(['access', 'list', 'prod/trainer', '--assignments', 'prod']);
    assert.deepEqual(
      mine.items.map((x: { id: string }) => x.id),
      [assignmentId],
    );

    const timed = await json([
      'access',
      'assign',
      'prod/trainer',
      'reader',
      'prod',
      '--reason',
      'incident 123',
      '--expires',
      '2h',
    ]);
    assert.ok(Math.abs(Date.parse(timed.expires_at) - Date.now() - 7200_000) < 60_000);
    const revoked = await ok(['access', 'revoke', timed.id]);
    assert.match(revoked.stdout, new RegExp(`^Revoked ${timed.id}`));
    assert.equal((await cli(['access', 'revoke', timed.id])).code, 1, 'revoked twice');
  });

  it('identity list/show', async () => {
    const list = await json(['identity', 'list', 'prod']);
    assert.deepEqual(
      list.items.map((i: { name: string }) => i.name),
      ['trainer'],
    );
    const table = await ok(['identity', 'list', 'prod']);
    assert.match(table.stdout, /^ID\s+NAME\s+KIND\s+METHOD\s+ROLE\s+LAST LOGIN\n/);
    const byName = await json(['identity', 'show', 'prod/trainer']);
    assert.equal(byName.id, trainerId);
    assert.equal(byName.auth_method, 'approle');
    const byId = await json(['identity', 'show', trainerId]);
    assert.equal(byId.name, 'trainer');
    const shown = await ok(['identity', 'show', 'prod/approle/trainer']);
    assert.match(shown.stdout, /^kind:\s+workload$/m);
    const none = await cli(['identity', 'show', 'prod/ghost']);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /\(IdentityNotFound\)/);
  });

  it('groups: create, add, assign to the group, remove, delete', async () => {
    const g = await json(['group', 'create', 'prod/ml-team']);
    assert.equal(g.name, 'ml-team');
    const added = await json(['group', 'add', 'prod/ml-team', 'prod/trainer']);
    assert.deepEqual(added.members, ['trainer']);
    const list = await ok(['group', 'list', 'prod']);
    assert.match(list.stdout, /^ml-team\s+/m);
    const show = await ok(['group', 'show', 'prod/ml-team']);
    assert.match(show.stdout, /^members:\s+trainer$/m);
    const who = await json(['identity', 'show', 'prod/trainer']);
    assert.deepEqual(who.groups, ['ml-team']);

    await ok([
      'access',
      'assign',
      'group:prod/ml-team',
      'secrets-user',
      'prod/secrets/other',
      '--reason',
      'team',
    ]);
    assert.equal((await ok(['kv', 'get', 'prod/other', '--field', 'k'], as(trainerToken))).stdout, 'v\n');
    const removed = await json(['group', 'remove', 'prod/ml-team', 'prod/trainer']);
    assert.deepEqual(removed.members, []);
    assert.equal((await cli(['kv', 'get', 'prod/other'], as(trainerToken))).code, 1);
    await ok(['group', 'add', 'prod/ml-team', trainerId]);
    const del = await ok(['group', 'delete', 'prod/ml-team']);
    assert.match(del.stdout, /Deleted the group prod\/ml-team/);
    assert.equal(
      (await cli(['kv', 'get', 'prod/other'], as(trainerToken))).code,
      1,
      'its assignment went too',
    );
    assert.equal((await cli(['group', 'show', 'prod/ml-team'])).code, 1);
  });

  it('roles: list, show, create', async () => {
    const list = await json(['role', 'list']);
    assert.ok(
      list.items.some((r: { name: string; builtin: boolean }) => r.name === 'secrets-user' && r.builtin),
    );
    const show = await json(['role', 'show', 'secrets-user']);
    assert.deepEqual(show.actions.sort(), ['secrets/get', 'secrets/list']);
    const created = await json([
      'role',
      'create',
      'model-reader',
      '--action',
      'secrets/get',
      '--description',
      'reads model keys',
    ]);
    assert.deepEqual(created, {
      name: 'model-reader',
      description: 'reads model keys',
      actions: ['secrets/get'],
      builtin: false,
    });
    const table = await ok(['role', 'list']);
    assert.match(table.stdout, /^NAME\s+BUILTIN\s+DESCRIPTION\s+ACTIONS\n/);
    assert.match(table.stdout, /^model-reader\s+false\s+reads model keys\s+secrets\/get$/m);
    assert.equal((await cli(['role', 'create', 'bad', '--action', 'secrets/fly'])).code, 1);
    assert.equal((await cli(['role', 'create', 'none'])).code, 2);
  });

  it('JWT: discovery with a CA file, bound claims, login from a file and stdin, on-behalf-of', async () => {
    const ca = path.join(work, 'issuer-ca.pem');
    await writeFile(ca, issuer.caPem);
    const m = await json([
      'auth',
      'enable',
      'prod',
      'jwt',
      '--issuer',
      issuer.url,
      '--ca-cert-file',
      ca,
      '--audience',
      'custody',
      '--leeway',
      '30s',
      '--name',
      'oidc',
    ]);
    assert.equal(m.name, 'oidc');
    assert.equal(m.config.discovery, true);
    assert.equal(m.config.leeway_seconds, 30);
    assert.equal(m.config.ca_pem, issuer.caPem);
    const shown = await ok(['auth', 'show', 'prod/oidc']);
    assert.match(shown.stdout, /^ca_pem:\s+PEM \(\d+ bytes\)$/m, 'the CA is summarized in a table');

    const role = await json([
      'auth',
      'role',
      'write',
      'prod/oidc/ci',
      '--bound-claim',
      'repository=my-org/*',
      '--bound-claim',
      'ref=refs/heads/main',
      '--bound-claim',
      'ref=refs/heads/release',
      '--claim-mapping',
      'repository=repo',
      '--token-ttl',
      '10m',
    ]);
    assert.deepEqual(role.config.bound_claims, {
      repository: ['my-org/*'],
      ref: ['refs/heads/main', 'refs/heads/release'],
    });
    assert.deepEqual(role.config.claim_mappings, { repository: 'repo' });
    await ok(['auth', 'role', 'write', 'prod/oidc/people', '--kind', 'user', '--groups-claim', 'groups']);

    const jwtFile = path.join(work, 'ci.jwt');
    await writeFile(
      jwtFile,
      `${await issuer.sign({ sub: 'repo:my-org/app', aud: 'custody', repository: 'my-org/app', ref: 'refs/heads/release' })}\n`,
    );
    const ci = await json(['login', 'prod/oidc/ci', '--jwt-file', jwtFile]);
    assert.equal(ci.identity.name, 'repo:my-org/app');
    assert.equal(ci.identity.kind, 'workload');
    const meta = await json(['identity', 'show', ci.identity.id]);
    assert.deepEqual(meta.metadata, { repo: 'my-org/app' });

    const refused = await cli(['login', 'prod/oidc/ci', '--jwt', '-'], {
      input: await issuer.sign({ sub: 'x', aud: 'custody', repository: 'other/app', ref: 'refs/heads/main' }),
    });
    assert.equal(refused.code, 1);
    assert.equal(refused.stdout, '');

    const userJwt = path.join(work, 'alice.jwt');
    await writeFile(userJwt, await issuer.sign({ sub: 'alice', aud: 'custody', groups: ['ml'] }));
    const alice = await json(['login', 'prod/oidc/people', '--jwt-file', userJwt]);
    assert.equal(alice.identity.kind, 'user');
    const obo = await cli(['login', '--on-behalf-of', 'prod/oidc/people', '--user-jwt', '-'], {
      input: await readFile(userJwt, 'utf8'),
      env: { CUSTODY_TOKEN: ci.token },
    });
    assert.equal(obo.code, 0, obo.stderr);
    assert.match(obo.stdout, /^cst_\S+\n$/);
    assert.match(obo.stderr, /Acting for alice \(user .+\) as repo:my-org\/app/);
    const oboJson = await json(['login', '--on-behalf-of', 'prod/oidc/people', '--user-jwt-file', userJwt], {
      env: { CUSTODY_TOKEN: ci.token },
    });
    assert.equal(oboJson.identity.id, alice.identity.id);
    assert.equal(oboJson.actor.id, ci.identity.id);

    assert.equal((await ok(['auth', 'role', 'delete', 'prod/oidc/people'])).code, 0);
    const gone = await ok(['auth', 'disable', 'prod/oidc']);
    assert.match(gone.stdout, /Disabled prod\/oidc/);
    assert.equal((await cli(['auth', 'show', 'prod/oidc'])).code, 1);
  });

  it('operator generate-root: the unseal key on stdin makes a working root token', async () => {
    const key = await readFile(path.join(broker.dataDir, 'unseal.key'), 'utf8');
    const r = await cli(['operator', 'generate-root'], { input: key, env: { CUSTODY_TOKEN: undefined } });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^cst_\S+\n$/);
    assert.match(r.stderr, /shown only this once/);
    const root = r.stdout.trim();
    assert.notEqual(root, broker.rootToken);
    const self = await json(['token', 'lookup'], as(root));
    assert.deepEqual(self.policies, ['root']);
    await ok(['env', 'create', 'made-by-new-root'], as(root));

    // Step by step: --init prints the nonce, --status shows progress, --nonce submits.
    const nonce = (await ok(['operator', 'generate-root', '--init'])).stdout.trim();
    assert.match(nonce, /^[0-9a-f]{32}$/);
    const status = await json(['operator', 'generate-root', '--status']);
    assert.deepEqual(status, { started: true, nonce, progress: 0, required: 1 });
    const done = await json(['operator', 'generate-root', '--nonce', nonce, '-'], { input: key });
    assert.match(done.root_token, /^cst_/);
    assert.equal((await json(['token', 'lookup'], as(done.root_token))).policies[0], 'root');

    await ok(['operator', 'generate-root', '--init']);
    const cancelled = await json(['operator', 'generate-root', '--cancel']);
    assert.equal(cancelled.started, false);
    const wrongNonce = await cli(['operator', 'generate-root', '--nonce', 'feed'], { input: key });
    assert.equal(wrongNonce.code, 1);
    assert.match(wrongNonce.stderr, /\(InvalidNonce\)/);
    const wrongKey = await cli(['operator', 'generate-root'], {
      input: `${Buffer.alloc(32, 7).toString('base64')}\n`,
    });
    assert.equal(wrongKey.code, 1);
    assert.equal(wrongKey.stdout, '');
    assert.match(wrongKey.stderr, /\(InvalidUnsealKey\)/);
    assert.equal(
      (await json(['operator', 'generate-root', '--status'])).started,
      false,
      'nothing left behind',
    );
  });

  it('usage errors exit 2 and print nothing on stdout', async () => {
    const cases: string[][] = [
      ['auth', 'enable', 'prod', 'jwt'],
      ['auth', 'enable', 'prod', 'ldap'],
      ['auth', 'enable', 'prod', 'approle', '--issuer', 'https://x'],
      ['auth', 'enable', 'prod', 'jwt', '--issuer', 'https://x', '--discovery', '--jwks-url', 'https://x/k'],
      ['auth', 'show', 'prod'],
      ['auth', 'role', 'write', 'prod/approle'],
      ['auth', 'role', 'write', 'prod/jwt/x', '--user-claim', 'sub', '--secret-id-ttl', '1h'],
      ['auth', 'role', 'write', 'prod/jwt/x', '--kind', 'robot'],
      ['auth', 'role', 'write', 'prod/jwt/x', '--bound-claim', 'novalue'],
      ['login'],
      ['login', 'prod/approle/trainer'],
      ['login', 'prod/approle/trainer', '--role-id', 'rid_x'],
      ['login', 'prod/approle/trainer', '--role-id', 'rid_x', '--secret-id', 'sid_literal'],
      ['login', 'prod/jwt/ci', '--jwt', 'eyJ.literal.jwt'],
      ['login', '--on-behalf-of', 'prod/oidc/people'],
      ['access', 'assign', 'prod/trainer', 'secrets-user', 'prod/secrets/db'],
      ['access', 'assign', 'prod/trainer', 'secrets-user', 'prod', '--reason', 'x', '--expires', 'soon'],
      ['access', 'list'],
      ['access', 'check', 'prod/trainer', 'secrets/get'],
      ['group', 'create', 'ml-team'],
      ['identity', 'list', 'Prod'],
      ['operator', 'generate-root', '--init', '--cancel'],
    ];
    const results = await Promise.all(cases.map((args) => cli(args)));
    results.forEach((r, i) => {
      assert.equal(r.code, 2, `custody ${cases[i].join(' ')} → ${r.code}\n${r.stderr}`);
      assert.equal(r.stdout, '', `custody ${cases[i].join(' ')} printed to stdout`);
      assert.match(r.stderr, /^error: .+\(\w+\)\n/, `custody ${cases[i].join(' ')}: ${r.stderr}`);
    });
  });

  it('no credential reaches the server output', async () => {
    const out = broker.stdout() + broker.stderr();
    assert.ok(!out.includes(trainerToken), 'login token in server output');
    assert.ok(!out.includes('s3cret'), 'secret value in server output');
  });
});
