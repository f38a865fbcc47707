import assert from 'node:assert/strict';
import { type CliResult, runCli } from '../support/broker-process.js';

/** Shared pieces of the `custody doctor` tests. */

/** Asserts a 2xx reply and returns its body. */
export async function ok(p: Promise<{ status: number; body: any }>, what: string): Promise<any> {
  const r = await p;
  assert.ok(r.status >= 200 && r.status < 300, `${what}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

/** The `STATUS name — detail` line of one check (the first with that name). */
export function line(stdout: string, name: string): string {
  const l = stdout.split('\n').find((x) => x.includes(` ${name} — `));
  assert.ok(l, `no "${name}" line in:\n${stdout}`);
  return l;
}

/**
 * Asserts the check `name` has `status` (and a detail matching `detail`); returns the detail.
 */
export function check(
  stdout: string,
  name: string,
  status: 'PASS' | 'WARN' | 'FAIL',
  detail?: RegExp,
): string {
  const l = line(stdout, name);
  const prefix = `${status} ${name} — `;
  assert.ok(l.startsWith(prefix), `expected ${status} for "${name}", got:\n${l}\n\nin:\n${stdout}`);
  const text = l.slice(prefix.length);
  if (detail) assert.match(text, detail, `detail of "${name}" does not match ${detail}:\n${text}`);
  return text;
}

/** The hint printed under the check `name`. */
export function hintOf(stdout: string, name: string): string {
  const lines = stdout.split('\n');
  const i = lines.findIndex((x) => x.includes(` ${name} — `));
  assert.ok(i >= 0, `no "${name}" line in:\n${stdout}`);
  const h = lines[i + 1] ?? '';
  assert.match(h, /^ {5}hint: /, `no hint under "${name}" in:\n${stdout}`);
  return h;
}

/** Fails when any of `values` shows up in stdout or stderr. */
export function noLeak(r: CliResult, values: (string | undefined)[]): void {
  for (const v of values)
    if (v)
      assert.ok(
        !(r.stdout + r.stderr).includes(v),
        `output leaks a secret (${v.slice(0, 4)}…):\n${r.stdout}${r.stderr}`,
      );
}

/** `custody doctor ARGS` with exactly `env` (plus PATH & co.; no CUSTODY_* from this process). */
export async function doctor(
  args: string[],
  env: Record<string, string | undefined>,
  timeoutMs = 60_000,
): Promise<CliResult & { ms: number }> {
  const t = performance.now();
  const r = await runCli(['doctor', ...args], { env, timeoutMs });
  return { ...r, ms: performance.now() - t };
}

/** The JSON output (`--format json`): every check has a status, name and detail. */
export function jsonChecks(r: CliResult): {
  ok: boolean;
  checks: { status: string; name: string; detail: string; hint?: string }[];
} {
  const body = JSON.parse(r.stdout);
  assert.equal(typeof body.ok, 'boolean');
  assert.ok(Array.isArray(body.checks) && body.checks.length > 0);
  for (const c of body.checks) {
    assert.ok(['PASS', 'WARN', 'FAIL'].includes(c.status), JSON.stringify(c));
    assert.equal(typeof c.name, 'string');
    assert.equal(typeof c.detail, 'string');
    if (c.status === 'PASS') assert.equal(c.hint, undefined, 'a PASS line has no hint');
  }
  assert.equal(body.ok, !body.checks.some((c: { status: string }) => c.status === 'FAIL'));
  return body;
}
