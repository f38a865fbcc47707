import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { Agent, request } from 'undici';
import {
  type BrokerProcess,
  type CliResult,
  CUSTODY_BIN,
  REPO_ROOT,
  runCli,
} from '../support/broker-process.js';

/** Shared pieces of the `custody run` end-to-end tests (test/run/*.test.ts). */

/** The native API of a broker process, as root unless `token` says otherwise. */
export async function apiOf(broker: BrokerProcess) {
  const ca = await readFile(broker.caCertPath!, 'utf8');
  const dispatcher = new Agent({ connect: { ca } });
  return {
    async call(
      method: 'GET' | 'POST' | 'PUT' | 'DELETE',
      path: string,
      body?: unknown,
      token = broker.rootToken,
    ): Promise<{ status: number; body: any }> {
      const res = await request(`${broker.url}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        dispatcher,
      });
      const text = await res.body.text();
      return { status: res.statusCode, body: text ? JSON.parse(text) : null };
    },
    async ok(method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown, token?: string) {
      const r = await this.call(method, path, body, token);
      assert.ok(r.status < 300, `${method} ${path} → ${r.status} ${JSON.stringify(r.body)}`);
      return r.body;
    },
    close: () => dispatcher.close(),
  };
}

/** `custody …` against the broker with its root token unless `env` overrides CUSTODY_TOKEN. */
export function cliOf(broker: BrokerProcess) {
  return (
    args: string[],
    opts: { env?: Record<string, string | undefined>; input?: string; timeoutMs?: number } = {},
  ): Promise<CliResult> => runCli(args, { ...opts, env: { ...broker.env(), ...opts.env } });
}

/**
 * A workload identity `ENV/NAME` logged in through AppRole (as a job would be), holding `grants`
 * (`[role, scope]` pairs); returns its token.
 */
export async function workloadToken(
  broker: BrokerProcess,
  env: string,
  name: string,
  grants: [string, string][],
): Promise<string> {
  const cli = cliOf(broker);
  const ok = async (args: string[], input?: string, extraEnv: Record<string, string | undefined> = {}) => {
    const r = await cli(args, { input, env: extraEnv });
    assert.equal(r.code, 0, `custody ${args.join(' ')}: ${r.stderr}`);
    return r.stdout.trim();
  };
  const methods = await ok(['auth', 'list', env, '--format', 'json']);
  if (!JSON.parse(methods).items?.some((m: { name: string }) => m.name === 'approle'))
    await ok(['auth', 'enable', env, 'approle']);
  await ok(['auth', 'role', 'write', `${env}/approle/${name}`, '--token-ttl', '1h', '--token-max-ttl', '8h']);
  const roleId = await ok(['auth', 'role-id', `${env}/approle/${name}`]);
  const secretId = await ok(['auth', 'secret-id', `${env}/approle/${name}`]);
  const token = await ok(
    ['login', `${env}/approle/${name}`, '--role-id', roleId, '--secret-id', '-'],
    `${secretId}\n`,
    { CUSTODY_TOKEN: undefined },
  );
  for (const [role, scope] of grants)
    await ok(['access', 'assign', `${env}/${name}`, role, scope, '--reason', 'custody run test']);
  return token;
}

export interface RunningCli {
  proc: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (or the signal name) and the output. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
  /** Resolves once stdout holds a line matching `re` (rejects after `ms`). */
  waitFor(re: RegExp, ms?: number): Promise<RegExpMatchArray>;
}

/** `custody ARGS…` as a child process the test can signal (runCli waits for the end). */
export function spawnCli(args: string[], env: Record<string, string | undefined>): RunningCli {
  const childEnv: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('CUSTODY_')) childEnv[k] = v;
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete childEnv[k];
    else childEnv[k] = v;
  }
  const proc = spawn(process.execPath, [CUSTODY_BIN, ...args], {
    cwd: REPO_ROOT,
    env: childEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
    out += d;
  });
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => {
    err += d;
  });
  const exited = new Promise<{
    code: number | null;
    signal: NodeJS.Signals | null;
    stdout: string;
    stderr: string;
  }>((resolve) => proc.once('close', (code, signal) => resolve({ code, signal, stdout: out, stderr: err })));
  return {
    proc,
    stdout: () => out,
    stderr: () => err,
    exited,
    waitFor(re, ms = 20_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          proc.stdout!.off('data', check);
          reject(new Error(`timed out waiting for ${re}\nstdout:\n${out}\nstderr:\n${err}`));
        }, ms);
        const check = () => {
          const m = out.match(re);
          if (!m) return;
          clearTimeout(timer);
          proc.stdout!.off('data', check);
          resolve(m);
        };
        proc.stdout!.on('data', check);
        check();
      });
    },
  };
}

/** True while a process with this pid exists. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function waitUntil(what: string, check: () => boolean | Promise<boolean>, ms = 15_000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`timed out waiting for ${what}`);
}

/** The last JSON object printed on a line of `text` that has key `key`. */
export function jsonLine(text: string, key: string): any {
  const lines = text.split('\n').filter((l) => l.startsWith('{') && l.includes(`"${key}"`));
  assert.ok(lines.length > 0, `no JSON line with ${key} in:\n${text}`);
  return JSON.parse(lines[lines.length - 1]);
}
