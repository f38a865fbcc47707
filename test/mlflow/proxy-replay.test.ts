import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, beforeEach, describe, it } from 'node:test';
import { request } from 'undici';
import { HostPolicy } from '../../src/client/mlflow/allowlist.js';
import { type MlflowProxy, startMlflowProxy } from '../../src/client/mlflow/proxy.js';
import { providerSource } from '../../src/client/mlflow/source.js';
import { type MlflowServer, mlflowRequest, startMlflow } from '../support/mlflow.js';
import { ensureVenv } from '../support/python-venv.js';

/**
 * A 401 from MLflow makes the proxy fetch a fresh credential and resend the request — also a
 * streamed body (an artifact upload), which the proxy keeps a copy of up to `maxReplayBody`. A body
 * over that limit streams with flat memory and its 401 goes to the client; the next request uses the
 * fresh credential. A 403 is never retried.
 */

const OLD = 'tok-old-0123456789';
const NEW = 'tok-new-0123456789';

/** A source that fetches OLD the first time and NEW every time after; counts fetches. */
function rotatingSource() {
  let fetches = 0;
  const source = providerSource(
    {
      name: 'test',
      get: async () => (fetches++ === 0 ? OLD : NEW),
      close: async () => {},
    },
    'mlflow',
    { ttlSec: 3600 },
  );
  return { source, fetches: () => fetches };
}

interface Seen {
  auth: string | undefined;
  method: string;
  url: string;
  body: Buffer;
}

describe('proxy: a 401 is replayed with a fresh credential (local upstream)', () => {
  let upstream: http.Server;
  let upstreamUrl: string;
  const seen: Seen[] = [];
  /** Answer with this status (after reading the body, unless `early`) instead of checking the token. */
  let forced: number | undefined;
  let early = false;
  /** Resolves when the upstream got the first bytes of a request body. */
  let firstBytes: (() => void) | undefined;

  before(async () => {
    upstream = http.createServer((req, res) => {
      const auth = req.headers.authorization;
      const ok = auth === `Bearer ${NEW}`;
      const status = forced ?? (ok ? 200 : 401);
      if (early && status === 401) {
        // Answer before reading the body (as an auth layer in front of the app may).
        seen.push({ auth, method: req.method!, url: req.url!, body: Buffer.alloc(0) });
        res.writeHead(401, { 'content-type': 'text/plain', connection: 'close' }).end('unauthorized');
        req.resume();
        return;
      }
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => {
        chunks.push(c);
        firstBytes?.();
        firstBytes = undefined;
      });
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        seen.push({ auth, method: req.method!, url: req.url!, body });
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ status, bytes: body.length, sha: sha(body) }));
      });
    });
    upstream.listen(0, '127.0.0.1');
    await once(upstream, 'listening');
    upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  });
  beforeEach(() => {
    seen.length = 0;
    forced = undefined;
    early = false;
    firstBytes = undefined;
  });
  after(async () => {
    upstream.closeAllConnections();
    await new Promise((r) => upstream.close(r));
  });

  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

  async function withProxy(
    fn: (p: MlflowProxy, s: ReturnType<typeof rotatingSource> & { logs: string[] }) => Promise<void>,
  ): Promise<void> {
    const s = rotatingSource();
    const logs: string[] = [];
    const proxy = await startMlflowProxy({
      upstream: upstreamUrl,
      source: s.source,
      policy: new HostPolicy({ allowedHosts: ['127.0.0.1'] }),
      port: 0,
      maxReplayBody: 1024,
      log: (level, msg) => logs.push(`${level}: ${msg}`),
    });
    try {
      await fn(proxy, { ...s, logs });
    } finally {
      await proxy.close();
    }
  }

  /** PUTs `body` to the proxy as a chunked stream, in pieces; `between` runs after the first piece. */
  async function put(proxy: MlflowProxy, body: Buffer, between?: () => Promise<void>) {
    const stream = new PassThrough();
    const pending = request(`${proxy.url}/api/2.0/mlflow-artifacts/artifacts/0/run/artifacts/model.bin`, {
      method: 'PUT',
      headers: { 'content-type': 'application/octet-stream' },
      body: stream,
    });
    const piece = 256;
    stream.write(body.subarray(0, piece));
    if (between) await between();
    for (let i = piece; i < body.length; i += piece) {
      if (!stream.write(body.subarray(i, i + piece))) await once(stream, 'drain');
      if (i % (piece * 4) === 0) await new Promise((r) => setImmediate(r));
    }
    stream.end();
    const res = await pending;
    return { status: res.statusCode, json: (await res.body.json()) as any };
  }

  it('a streamed body within the limit streams upstream and is resent whole with the fresh credential', async () => {
    await withProxy(async (proxy, s) => {
      const body = randomBytes(900);
      const r = await put(proxy, body, async () => {
        // Streaming: the upstream sees the first bytes before the client has sent the rest.
        await new Promise<void>((resolve) => {
          firstBytes = resolve;
        });
      });
      assert.equal(r.status, 200, JSON.stringify(r.json));
      assert.equal(r.json.sha, sha(body), 'the upstream got the whole body on the retry');
      assert.deepEqual(
        seen.map((x) => [x.method, x.auth, x.body.length]),
        [
          ['PUT', `Bearer ${OLD}`, body.length],
          ['PUT', `Bearer ${NEW}`, body.length],
        ],
      );
      assert.deepEqual(seen[1].body, body);
      assert.equal(s.fetches(), 2, 'one fetch, then one refetch after the 401');
      assert.ok(
        s.logs.some((l) => /401 from MLflow: fetched a fresh credential, retrying PUT/.test(l)),
        s.logs.join('\n'),
      );
    });
  });

  it('a 401 answered before the body was read: the body is resent whole', async () => {
    early = true;
    await withProxy(async (proxy, s) => {
      const body = randomBytes(1000);
      const r = await put(proxy, body);
      assert.equal(r.status, 200, JSON.stringify(r.json));
      assert.equal(r.json.sha, sha(body));
      assert.deepEqual(
        seen.map((x) => x.auth),
        [`Bearer ${OLD}`, `Bearer ${NEW}`],
      );
      assert.equal(s.fetches(), 2);
    });
  });

  it('a body over the limit streams upstream as it arrives, not kept; the client gets the 401 and the next request uses the fresh credential', async () => {
    await withProxy(async (proxy, s) => {
      const body = randomBytes(256 * 1024);
      const r = await put(proxy, body, async () => {
        await new Promise<void>((resolve) => {
          firstBytes = resolve;
        });
      });
      assert.equal(r.status, 401, 'not resent: the body was larger than maxReplayBody');
      assert.equal(seen.length, 1, 'one attempt only');
      assert.equal(seen[0].body.length, body.length, 'the body streamed upstream in full');
      assert.equal(s.fetches(), 1, 'the refetch waits for the next request');
      assert.ok(
        s.logs.some((l) => /cannot be resent/.test(l)),
        s.logs.join('\n'),
      );
      const next = await request(`${proxy.url}/api/2.0/mlflow/experiments/search`);
      assert.equal(next.statusCode, 200);
      await next.body.dump();
      assert.equal(seen.at(-1)!.auth, `Bearer ${NEW}`);
      assert.equal(s.fetches(), 2);
    });
  });

  it('a guarded JSON body (held for the leak guard) is resent too', async () => {
    await withProxy(async (proxy, s) => {
      const body = JSON.stringify({ run_id: 'r1', key: 'lr', value: '0.01' });
      const res = await request(`${proxy.url}/api/2.0/mlflow/runs/log-parameter`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
      });
      assert.equal(res.statusCode, 200);
      await res.body.dump();
      assert.deepEqual(
        seen.map((x) => [x.auth, x.body.toString()]),
        [
          [`Bearer ${OLD}`, body],
          [`Bearer ${NEW}`, body],
        ],
      );
      assert.equal(s.fetches(), 2);
    });
  });

  it('a 403 is never retried and keeps the credential', async () => {
    forced = 403;
    await withProxy(async (proxy, s) => {
      const r1 = await put(proxy, randomBytes(500));
      assert.equal(r1.status, 403);
      const r2 = await request(`${proxy.url}/api/2.0/mlflow/experiments/search`);
      assert.equal(r2.statusCode, 403);
      await r2.body.dump();
      assert.equal(seen.length, 2, 'each request went upstream exactly once');
      assert.equal(s.fetches(), 1, 'no refetch after a 403');
    });
  });
});

const SCRIPT = `
import os, sys, mlflow
assert "MLFLOW_TRACKING_USERNAME" not in os.environ and "MLFLOW_TRACKING_PASSWORD" not in os.environ
mlflow.set_experiment("replay-test")
with mlflow.start_run() as run:
    mlflow.log_param("phase", "before-rotation")
    small = os.path.join(sys.argv[1], "small.txt")
    with open(small, "w") as f:
        f.write("warm-up")
    mlflow.log_artifact(small)  # the artifact repository is resolved (and cached) here
    print("EXPERIMENT_ID=" + run.info.experiment_id, flush=True)
    print("RUN_ID=" + run.info.run_id, flush=True)
    print("READY", flush=True)
    sys.stdin.readline()
    # The password was changed: the first request now is this upload, refused with 401 by MLflow.
    mlflow.log_artifact(os.path.join(sys.argv[1], "big.bin"))
    print("UPLOADED", flush=True)
`;

describe('proxy: an artifact upload refused mid-run (password changed) is resent (real MLflow)', () => {
  let ml: MlflowServer;
  let proxy: MlflowProxy;
  let dir: string;
  const user = 'rotating';
  let password = `pw1-${randomBytes(10).toString('hex')}`;
  const logs: string[] = [];
  let fetches = 0;

  before(async () => {
    ml = await startMlflow({ defaultPermission: 'EDIT' });
    dir = await mkdtemp(path.join(tmpdir(), 'custody-replay-'));
    const created = await mlflowRequest(ml, '2.0/mlflow/users/create', {
      body: { username: user, password },
      auth: { username: ml.adminUser, password: ml.adminPassword },
    });
    assert.equal(created.status, 200, created.text);
    // The proxy's source reads the current password (as a provider would after a rotation).
    const source = providerSource(
      {
        name: 'test',
        get: async () => {
          fetches++;
          return JSON.stringify({ username: user, password });
        },
        close: async () => {},
      },
      'mlflow',
      { ttlSec: 3600 },
    );
    proxy = await startMlflowProxy({
      upstream: ml.url,
      source,
      policy: new HostPolicy({ allowedHosts: ['127.0.0.1'], strict: true }),
      port: 0,
      log: (level, msg) => logs.push(`${level}: ${msg}`),
    });
  });
  after(async () => {
    await proxy?.close();
    await ml?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('a Python mlflow.log_artifact of 1 MiB succeeds through the proxy after the 401', async () => {
    const venv = await ensureVenv();
    const script = path.join(dir, 'train.py');
    await writeFile(script, SCRIPT);
    const big = randomBytes(1024 * 1024);
    await writeFile(path.join(dir, 'big.bin'), big);
    const oldPassword = password;
    const child = spawn(venv.python, [script, dir], {
      env: {
        PATH: process.env.PATH,
        HOME: dir,
        MLFLOW_TRACKING_URI: proxy.url,
        MLFLOW_HTTP_REQUEST_MAX_RETRIES: '0',
        MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD: 'false',
      },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d) => {
        out += d;
        if (out.includes('READY\n')) resolve();
      });
      exited.then((code) => reject(new Error(`the script exited ${code} early:\n${out}\n${err}`)));
    });
    assert.equal(fetches, 1);

    // Rotate: MLflow now refuses the password the proxy holds; its source returns the new one.
    password = `pw2-${randomBytes(10).toString('hex')}`;
    const updated = await mlflowRequest(ml, '2.0/mlflow/users/update-password', {
      method: 'PATCH',
      body: { username: user, password },
      auth: { username: ml.adminUser, password: ml.adminPassword },
    });
    assert.equal(updated.status, 200, updated.text);
    const stale = await mlflowRequest(ml, '2.0/mlflow/experiments/search', {
      query: { max_results: '1' },
      auth: { username: user, password: oldPassword },
    });
    assert.equal(stale.status, 401, 'the old password is refused now');

    child.stdin.end('go\n');
    const code = await exited;
    assert.equal(code, 0, `${out}\n${err}\n--- proxy:\n${logs.join('\n')}`);
    assert.match(out, /UPLOADED/);
    assert.equal(fetches, 2, 'one refetch after the 401');
    assert.ok(
      logs.some((l) => /retrying PUT \/api\/2\.0\/mlflow-artifacts\/artifacts\/.*big\.bin/.test(l)),
      `the upload itself was the request that got the 401 and was resent:\n${logs.join('\n')}`,
    );
    const text = `${out}${err}${logs.join('\n')}`;
    assert.ok(!text.includes(oldPassword) && !text.includes(password), 'no password in any output');

    const experimentId = /EXPERIMENT_ID=(\S+)/.exec(out)![1];
    const runId = /RUN_ID=(\S+)/.exec(out)![1];
    const admin = { username: ml.adminUser, password: ml.adminPassword };
    const arts = await mlflowRequest(ml, '2.0/mlflow/artifacts/list', {
      query: { run_id: runId },
      auth: admin,
    });
    assert.equal(arts.status, 200, arts.text);
    const files = Object.fromEntries(
      arts.json.files.map((f: { path: string; file_size?: number }) => [f.path, Number(f.file_size)]),
    );
    assert.equal(files['big.bin'], big.length);
    const stored = await readFile(
      path.join(ml.dataDir, 'artifacts', experimentId, runId, 'artifacts', 'big.bin'),
    );
    assert.ok(stored.equals(big), 'the stored artifact is byte for byte the uploaded file');
  });
});
