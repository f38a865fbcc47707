import type { ClientConfig } from '../../client/config.js';
import { statusOf } from '../../client/errors.js';
import type { Lease } from '../../client/lease.js';
import { describeError } from '../../client/redact.js';
import * as A from '../args.js';
import { usageError } from '../errors.js';
import { type CheckStatus, type Doctor, fmtDuration } from './checks.js';
import { type CustodySession, openSession, tokenEnd, tokenLifetime } from './custody.js';
import { checkStorageUse } from './storage.js';

/*
 * `--creds ENV/ENGINE/ROLE`: can this identity get the dynamic credentials the job needs, and do
 * they last as long as the job (--expect)? Reading an engine role needs `engines/manage`, which a
 * workload identity never holds; so doctor does what the job will do: it issues a lease as the job's
 * identity and revokes it at once, and takes the TTL and max TTL from the lease itself. The
 * credentials are never printed (their values are added to the redaction list as they arrive).
 * Then one `lifetimes` line says which of the token and the leases ends first.
 */

export interface CredsRef {
  env: string;
  engine: string;
  role: string;
}

const NAME_RE = /^[a-z0-9][a-z0-9_-]{0,63}$/;
const EXAMPLE = 'prod/warehouse/reader';

/** `ENV/ENGINE/ROLE`, or `PREFIX=ENV/ENGINE/ROLE` as `custody run --creds` takes it (prefix ignored). */
export function parseCredsOption(text: string): CredsRef {
  const eq = text.indexOf('=');
  const ref = /^[A-Za-z_][A-Za-z0-9_]*=/.test(text) ? text.slice(eq + 1) : text;
  const hint = `Example: --creds ${EXAMPLE} (or PG=${EXAMPLE}, as custody run takes it).`;
  const parts = ref.split('/');
  if (parts.length !== 3 || parts.some((p) => p === ''))
    throw usageError(
      `--creds ${text}${ref === text ? '' : `: ${ref || '(empty)'}`} is not ENV/ENGINE/ROLE`,
      hint,
      'InvalidReference',
    );
  A.envName(parts[0]);
  for (const [what, v] of [
    ['engine', parts[1]],
    ['role', parts[2]],
  ] as const)
    if (!NAME_RE.test(v))
      throw usageError(
        `--creds ${text}: ${JSON.stringify(v)} is not an ${what} name`,
        hint,
        'InvalidReference',
      );
  return { env: parts[0], engine: parts[1], role: parts[2] };
}

interface End {
  what: string;
  at: number;
  /** The status if this ends before the job. */
  short: CheckStatus;
}

const refOf = (c: CredsRef) => `${c.env}/${c.engine}/${c.role}`;

function issueFailure(d: Doctor, name: string, c: CredsRef, err: unknown): void {
  const status = statusOf(err);
  const msg = describeError(err);
  const ref = refOf(c);
  if (status === 403)
    d.add(
      'FAIL',
      name,
      `may not issue credentials: ${msg}`,
      `the identity needs "leases/issue" on ${ref}: \`custody access assign <ENV/IDENTITY> credential-user ${c.env}/engines/${c.engine}/${c.role} --reason '…'\` (credential-user also allows renewals)`,
    );
  else if (status === 404)
    d.add(
      'FAIL',
      name,
      `no such engine role: ${msg}`,
      `check the reference ENV/ENGINE/ROLE; the roles of the engine: \`custody engine role list ${c.env}/${c.engine}\``,
    );
  else if (status === 400 && /static/i.test(msg))
    d.add('FAIL', name, msg, `a static role has no lease: read it with \`custody creds static ${ref}\``);
  else if (status === 401)
    d.add('FAIL', name, msg, 'the token was refused: see the custody: authentication line');
  else if (status !== undefined && status >= 500)
    d.add(
      'FAIL',
      name,
      `the engine could not create the credentials: ${msg}`,
      `the broker could not use the database behind ${c.env}/${c.engine}: check that it is up and that the engine's connection works (\`custody engine show ${c.env}/${c.engine}\`)`,
    );
  else d.add('FAIL', name, msg, (err as { hint?: string }).hint ?? 'check the reference and the broker logs');
}

/** Issues one lease, revokes it at once, reports its lifetime; returns when it would end. */
async function checkLease(
  d: Doctor,
  s: CustodySession,
  c: CredsRef,
  expectSec: number | undefined,
): Promise<End | undefined> {
  const ref = refOf(c);
  const name = `lease ${ref}`;
  let lease: Lease;
  try {
    lease = await s.client.issueCredentials(ref, { autoRenew: false });
  } catch (err) {
    issueFailure(d, name, c, err);
    return undefined;
  }
  // The password, and any field named like a credential (not the database or host names).
  d.remember(
    lease.password,
    ...Object.entries(lease.data)
      .filter(([k]) => /pass|secret|token|key|credential/i.test(k))
      .map(([, v]) => v),
  );
  const now = Date.now();
  const ttl = (lease.expiresAt.getTime() - now) / 1000;
  const max = (lease.maxExpiresAt.getTime() - now) / 1000;
  const storage = await checkStorageUse(d, ref, lease);
  try {
    await lease.close();
  } catch (err) {
    d.add(
      'FAIL',
      name,
      `lease ${lease.id} was issued but could not be revoked: ${describeError(err)}; it ends by itself at ${lease.expiresAt.toISOString()}`,
      `revoke it: \`custody lease revoke ${lease.id}\` (the identity may lack "leases/revoke" on ${ref})`,
    );
    return undefined;
  }
  if (storage) await storage.afterRevoke();
  const life = `ttl ${fmtDuration(ttl)}${lease.renewable ? `, renewable up to ${fmtDuration(max)} (max TTL)` : ', not renewable'}`;
  const endsAt = lease.renewable ? lease.maxExpiresAt.getTime() : lease.expiresAt.getTime();
  if (expectSec === undefined) {
    d.add('PASS', name, `may issue (a lease was issued and revoked at once); ${life}`);
    return { what: name, at: endsAt, short: 'WARN' };
  }
  const want = fmtDuration(expectSec);
  const gap = fmtDuration(Math.max(0, (now + expectSec * 1000 - endsAt) / 1000));
  if (endsAt >= now + expectSec * 1000)
    d.add('PASS', name, `${life} ≥ ${want} (a lease was issued and revoked at once)`);
  else if (lease.renewable)
    d.add(
      'WARN',
      name,
      `${life}: it ends at its max TTL, ${gap} before the expected end of the job (${want})`,
      `raise the role's max TTL to at least ${want} (\`custody engine role write ${ref} --max-ttl ${want}\`), or run with \`custody run --files --on-rotate SIGHUP\` so a fresh lease replaces it before it ends and the job re-reads its credentials`,
    );
  else
    d.add(
      'FAIL',
      name,
      `${life}: it ends ${gap} before the expected end of the job (${want}) and cannot be renewed or rotated`,
      `raise the role's TTL to at least ${want} (\`custody engine role write ${ref} --ttl ${want}\`)`,
    );
  return { what: name, at: endsAt, short: lease.renewable ? 'WARN' : 'FAIL' };
}

/** The `lifetimes` line: which of the token and the leases ends first, against --expect. */
function lifetimes(d: Doctor, s: CustodySession, ends: End[], expectSec: number): void {
  const all = [...ends];
  const t = tokenEnd(s.self);
  if (t !== undefined && !s.login) all.push({ what: 'the custody token (max TTL)', at: t, short: 'FAIL' });
  const now = Date.now();
  const target = now + expectSec * 1000;
  const want = fmtDuration(expectSec);
  if (all.length === 0) {
    d.add(
      'PASS',
      'lifetimes',
      `nothing the job holds expires${s.login ? ' (the token is renewed by logging in again)' : ''}`,
    );
    return;
  }
  all.sort((a, b) => a.at - b.at);
  const [first, ...rest] = all;
  const short = all.filter((e) => e.at < target);
  const order = `${first.what} ends first, in ${fmtDuration((first.at - now) / 1000)}${rest.length ? `; then ${rest.map((e) => `${e.what} in ${fmtDuration((e.at - now) / 1000)}`).join(', ')}` : ''}`;
  if (short.length === 0) d.add('PASS', 'lifetimes', `${order}: all after the expected ${want}`);
  else
    d.add(
      short.some((e) => e.short === 'FAIL') ? 'FAIL' : 'WARN',
      'lifetimes',
      `${order}; ${short.length} of them before the expected end of the job (${want})`,
      'see the lines above for each one',
    );
}

/**
 * Every `--creds` role: issue + revoke as the job's identity, and its lifetime against --expect.
 * `session` is the Custody provider's, when it ran; otherwise one is opened (and closed) here.
 */
export async function checkLeases(
  d: Doctor,
  config: ClientConfig,
  refs: CredsRef[],
  expectSec: number | undefined,
  session: CustodySession | undefined,
  custodyChecked: boolean,
): Promise<void> {
  if (refs.length === 0) return;
  let s = session;
  if (!s && custodyChecked) {
    // The Custody provider's own checks failed before authentication: the lines above say why.
    for (const c of refs) d.add('FAIL', `lease ${refOf(c)}`, 'skipped: no authenticated Custody session');
    return;
  }
  if (!s) {
    const missing = [
      ...(config.custody.addr ? [] : ['CUSTODY_ADDR']),
      ...(config.custody.token || config.custody.login ? [] : ['CUSTODY_TOKEN (or CUSTODY_LOGIN)']),
    ];
    if (missing.length) {
      d.add(
        'FAIL',
        'leases',
        `--creds needs the Custody broker: ${missing.join(' and ')} not set`,
        'set CUSTODY_ADDR and CUSTODY_TOKEN (or --addr/--token), or CUSTODY_LOGIN for a workload login',
      );
      return;
    }
    s = await openSession(d, config);
    if (!s) return;
    if (expectSec !== undefined) tokenLifetime(d, s, expectSec);
  }
  try {
    const ends: End[] = [];
    for (const c of refs) {
      const e = await checkLease(d, s, c, expectSec);
      if (e) ends.push(e);
    }
    if (expectSec !== undefined) lifetimes(d, s, ends, expectSec);
  } finally {
    if (s !== session) await s.client.close().catch(() => {});
  }
}
