import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { type OidcIssuer, startOidcIssuer } from '../support/oidc-issuer.js';

export interface AuthFixture {
  b: TestBroker;
  issuer: OidcIssuer;
  stop(): Promise<void>;
}

/** A broker with the given environments and a local OIDC issuer. */
export async function authFixture(envs: string[] = ['prod'], storageUrl?: string): Promise<AuthFixture> {
  const issuer = await startOidcIssuer();
  const b = await startTestBroker({ storageUrl });
  for (const name of envs) {
    const r = await b.call('POST', '/v1/envs', { body: { name } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
  }
  return {
    b,
    issuer,
    async stop() {
      await b.stop();
      await issuer.stop();
    },
  };
}

export async function ok<T = any>(p: Promise<{ status: number; body: any }>, what = 'request'): Promise<T> {
  const r = await p;
  assert.equal(r.status, 200, `${what}: ${JSON.stringify(r.body)}`);
  return r.body as T;
}

/** Creates a JWT method (default: discovery against the fixture's issuer, trusting its CA). */
export async function jwtMethod(
  f: AuthFixture,
  env: string,
  name: string,
  config: Record<string, unknown> = {},
): Promise<any> {
  return ok(
    f.b.call('POST', `/v1/auth/methods/${env}`, {
      body: { type: 'jwt', name, config: { issuer: f.issuer.url, ca_pem: f.issuer.caPem, ...config } },
    }),
    `create method ${env}/${name}`,
  );
}

export async function putRole(
  f: AuthFixture,
  env: string,
  method: string,
  role: string,
  config: Record<string, unknown>,
): Promise<any> {
  return ok(
    f.b.call('PUT', `/v1/auth/methods/${env}/${method}/roles/${role}`, { body: config }),
    `put role ${role}`,
  );
}

export function login(
  f: AuthFixture,
  env: string,
  method: string,
  role: string,
  body: Record<string, unknown>,
) {
  return f.b.call('POST', `/v1/auth/login/${env}/${method}/${role}`, { body, token: null });
}

export async function auditEntries(b: TestBroker): Promise<any[]> {
  const text = await readFile(path.join(b.dataDir, 'audit.log'), 'utf8');
  return text
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}

export async function auditText(b: TestBroker): Promise<string> {
  return readFile(path.join(b.dataDir, 'audit.log'), 'utf8');
}

/** `alg: none` token with the given claims. */
export function unsignedJwt(claims: Record<string, unknown>, header: Record<string, unknown> = {}): string {
  const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${enc({ alg: 'none', typ: 'JWT', ...header })}.${enc(claims)}.`;
}
