import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type BrokerProcess, startBrokerProcess } from '../support/broker-process.js';
import { type OidcIssuer, startOidcIssuer } from '../support/oidc-issuer.js';
import { apiOf, cliOf, workloadToken } from './helpers.js';

/**
 * `custody run` logging in as a workload: explicit flags, CUSTODY_JWT_FILE, a Kubernetes
 * service-account token, AppRole env vars; a short max TTL is answered by a re-login; --expect.
 */
describe('custody run: workload logins and --expect', () => {
  let broker: BrokerProcess;
  let issuer: OidcIssuer;
  let api: Awaited<ReturnType<typeof apiOf>>;
  let cli: ReturnType<typeof cliOf>;
  let work: string;
  let jwtFile: string;
  let roleId: string;
  let secretId: string;
  const noToken = { CUSTODY_TOKEN: undefined };
  const printKey = [process.execPath, '-e', 'console.log("KEY=" + process.env.KEY)'];

  const ok = async (args: string[], input?: string) => {
    const r = await cli(args, { input });
    assert.equal(r.code, 0, `custody ${args.join(' ')}: ${r.stderr}`);
    return r.stdout.trim();
  };

  before(async () => {
    broker = await startBrokerProcess();
    issuer = await startOidcIssuer();
    api = await apiOf(broker);
    cli = cliOf(broker);
    work = await mkdtemp(path.join(tmpdir(), 'custody-run-login-'));
    await api.ok('POST', '/v1/envs', { name: 'prod' });
    await api.ok('PUT', '/v1/secrets/prod/api/key', { value: 'key-login-123' });
    const ca = path.join(work, 'issuer-ca.pem');
    await writeFile(ca, issuer.caPem);
    await ok([
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
    ]);
    await ok(['auth', 'role', 'write', 'prod/jwt/job', '--token-ttl', '1h', '--token-max-ttl', '8h']);
    await ok(['auth', 'role', 'write', 'prod/jwt/short', '--token-ttl', '2s', '--token-max-ttl', '3s']);
    await ok(['auth', 'role', 'write', 'prod/jwt/warn', '--token-ttl', '4s', '--token-max-ttl', '6s']);
    jwtFile = path.join(work, 'job.jwt');
    await writeFile(jwtFile, `${await issuer.sign({ sub: 'jobber', aud: 'custody' })}\n`);
    // First login creates the identity; then grant it the secret.
    await ok(['login', 'prod/jwt/job', '--jwt-file', jwtFile]);
    await ok(['access', 'assign', 'prod/jobber', 'secrets-user', 'prod/secrets/api', '--reason', 'test']);
    await workloadToken(broker, 'prod', 'etl', [['secrets-user', 'prod/secrets/api']]);
    roleId = await ok(['auth', 'role-id', 'prod/approle/etl']);
    secretId = await ok(['auth', 'secret-id', 'prod/approle/etl']);
  });

  after(async () => {
    await api?.close();
    await broker?.cleanup();
    await issuer?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  const runWith = (flags: string[], env: Record<string, string | undefined>) =>
    cli(['run', '--no-mask', ...flags, '--secret', 'KEY=prod/api/key', '--', ...printKey], {
      env: { ...noToken, ...env },
    });

  it('--login with --jwt-file', async () => {
    const r = await runWith(['--login', 'prod/jwt/job', '--jwt-file', jwtFile], {});
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /KEY=key-login-123/);
  });

  it('CUSTODY_JWT_FILE + CUSTODY_LOGIN, and the Kubernetes token file', async () => {
    const a = await runWith([], { CUSTODY_JWT_FILE: jwtFile, CUSTODY_LOGIN: 'prod/jwt/job' });
    assert.equal(a.code, 0, a.stderr);
    assert.match(a.stdout, /KEY=key-login-123/);
    const b = await runWith([], { CUSTODY_K8S_TOKEN_FILE: jwtFile, CUSTODY_LOGIN: 'prod/jwt/job' });
    assert.equal(b.code, 0, b.stderr);
    assert.match(b.stdout, /KEY=key-login-123/);
  });

  it('AppRole: env vars, and --role-id with --secret-id-file', async () => {
    const a = await runWith([], {
      CUSTODY_ROLE_ID: roleId,
      CUSTODY_SECRET_ID: secretId,
      CUSTODY_LOGIN: 'prod/approle/etl',
    });
    assert.equal(a.code, 0, a.stderr);
    assert.match(a.stdout, /KEY=key-login-123/);
    const f = path.join(work, 'secret-id');
    await writeFile(f, `${secretId}\n`);
    const b = await runWith(['--login', 'prod/approle/etl', '--role-id', roleId, '--secret-id-file', f], {});
    assert.equal(b.code, 0, b.stderr);
    assert.match(b.stdout, /KEY=key-login-123/);
  });

  it('a bad --login is a usage error; a refused login exits 1', async () => {
    assert.equal((await runWith(['--login', 'prod/jwt'], {})).code, 2);
    assert.equal((await runWith(['--jwt-file', jwtFile], {})).code, 2);
    const bad = path.join(work, 'bad.jwt');
    await writeFile(bad, await issuer.sign({ sub: 'x', aud: 'other' }));
    assert.equal((await runWith(['--login', 'prod/jwt/job', '--jwt-file', bad], {})).code, 1);
  });

  it("logs in again before the token's max TTL, reading the rotated JWT file", async () => {
    const f = path.join(work, 'short.jwt');
    await writeFile(f, await issuer.sign({ sub: 'jobber', aud: 'custody' }));
    const child = `setTimeout(() => console.log('done'), 5000)`;
    const pending = cli(
      ['run', '--login', 'prod/jwt/short', '--jwt-file', f, '--', process.execPath, '-e', child],
      {
        env: noToken,
      },
    );
    // Rotate the file on disk: the next login must read the new one.
    await new Promise((r) => setTimeout(r, 500));
    await writeFile(f, await issuer.sign({ sub: 'jobber', aud: 'custody', rotated: true }));
    const r = await pending;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /done/);
    assert.match(r.stderr, /logged in again to prod\/jwt\/short/);
    assert.doesNotMatch(r.stderr, /ReloginFailed|TokenRenewFailed/);
  });

  it('--vault: the child keeps reading through the loopback proxy after custody run logged in again', async () => {
    const f = path.join(work, 'vault.jwt');
    await writeFile(f, await issuer.sign({ sub: 'jobber', aud: 'custody' }));
    // Reads the secret through VAULT_ADDR / VAULT_TOKEN at once and again past the first token's
    // 3 s max TTL: without the proxy, the second read would carry an expired token.
    const child = `
      const read = () => fetch(process.env.VAULT_ADDR + '/v1/prod/data/api/key', {
        headers: { 'X-Vault-Token': process.env.VAULT_TOKEN } }).then(async (r) => r.status + ':' + JSON.stringify((await r.json()).data?.data));
      read().then((a) => setTimeout(() => read().then((b) => console.log(JSON.stringify({ a, b, t: process.env.VAULT_TOKEN }))), 4500));`;
    const r = await cli(
      ['run', '--vault', '--login', 'prod/jwt/short', '--jwt-file', f, '--', process.execPath, '-e', child],
      { env: noToken },
    );
    assert.equal(r.code, 0, r.stderr);
    const got = JSON.parse(r.stdout);
    assert.match(got.a, /^200:.*key-login-123/);
    assert.match(got.b, /^200:.*key-login-123/, 'the second read used the token of the new login');
    assert.equal(got.t, '<redacted:VAULT_TOKEN>', "the child's VAULT_TOKEN is masked in its output");
    assert.match(r.stderr, /logged in again to prod\/jwt\/short/);
  });

  it('warns on stderr and in the audit trail before the token ends, and when it has', async () => {
    const f = path.join(work, 'warn.jwt');
    await writeFile(f, await issuer.sign({ sub: 'jobber', aud: 'custody' }));
    // A token that cannot be replaced (no --login): TTL 4 s, max TTL 6 s; the command outlives it
    // (room for a slow CLI start on a loaded machine: the token must still work when the run begins).
    const token = await ok(['login', 'prod/jwt/warn', '--jwt-file', f]);
    const self = await api.ok('GET', '/v1/auth/token/lookup-self', undefined, token);
    const r = await cli(
      ['run', '--', process.execPath, '-e', 'setTimeout(() => console.log("done"), 7500)'],
      {
        env: { CUSTODY_TOKEN: token },
      },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /done/);
    assert.match(
      r.stderr,
      /warning: the job's Custody token .* stops working at \S+ \(in \d+s\) while the command is still running \(CredentialExpiresSoon\)/,
    );
    assert.match(r.stderr, /warning: the job's Custody token .* has stopped working.*\(CredentialExpired\)/);
    assert.ok(!r.stderr.includes(token));
    const notices = (await readFile(path.join(broker.dataDir, 'audit.log'), 'utf8'))
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l))
      .filter((e) => e.action === 'audit/notice-self' && e.type === 'request');
    const soon = notices.find((e) => e.data?.code === 'CredentialExpiresSoon' && e.data?.subject === 'token');
    assert.ok(soon, 'the warning is in the audit trail');
    assert.equal(soon.outcome, 'allowed');
    assert.equal(soon.auth.identity, self.identity_id, "recorded as the job's identity");
  });

  it('--expect says what ends first; --strict-expect refuses to start', async () => {
    const token = await workloadToken(broker, 'prod', 'etl', []);
    const warn = await cli(['run', '--expect', '36h', '--', process.execPath, '-e', 'console.log("ran")'], {
      env: { CUSTODY_TOKEN: token },
    });
    assert.equal(warn.code, 0, warn.stderr);
    assert.match(warn.stdout, /ran/);
    assert.match(warn.stderr, /token \(max TTL\) ends first/);
    assert.match(warn.stderr, /ExpectExceeded/);
    const strict = await cli(
      ['run', '--expect', '36h', '--strict-expect', '--', process.execPath, '-e', 'console.log("ran")'],
      { env: { CUSTODY_TOKEN: token } },
    );
    assert.equal(strict.code, 1, strict.stderr);
    assert.doesNotMatch(strict.stdout, /ran/);
    const fine = await cli(['run', '--expect', '1h', '--', process.execPath, '-e', 'console.log("ran")'], {
      env: { CUSTODY_TOKEN: token },
    });
    assert.equal(fine.code, 0, fine.stderr);
    assert.doesNotMatch(fine.stderr, /ExpectExceeded/);
  });
});
