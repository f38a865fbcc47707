import { Agent, type Dispatcher, request } from 'undici';

const MAX_BODY_BYTES = 512 * 1024;
export const FETCH_TIMEOUT_MS = 5_000;

/** Why an identity provider's discovery document or key set could not be used; never holds a key. */
export class KeySourceError extends Error {
  override readonly name = 'KeySourceError';
}

/**
 * Outbound GETs to an identity provider: bounded time and size, no redirects, and trust limited
 * to `caPem` when given (otherwise the system's roots).
 */
export class ProviderClient {
  private readonly dispatcher: Dispatcher | undefined;

  constructor(caPem: string | null) {
    this.dispatcher = caPem
      ? new Agent({
          connect: { ca: caPem, timeout: FETCH_TIMEOUT_MS },
          headersTimeout: FETCH_TIMEOUT_MS,
          bodyTimeout: FETCH_TIMEOUT_MS,
        })
      : undefined;
  }

  /** The fetch jose's remote key set calls (its `customFetch` hook). */
  readonly fetch = async (
    url: string,
    options: { headers: Headers; signal: AbortSignal },
  ): Promise<Response> => {
    const { status, body } = await this.get(
      url,
      Object.fromEntries(options.headers.entries()),
      options.signal,
    );
    return new Response(new Uint8Array(body), { status, headers: { 'content-type': 'application/json' } });
  };

  async getJson(url: string): Promise<unknown> {
    const { status, body } = await this.get(
      url,
      { accept: 'application/json' },
      AbortSignal.timeout(FETCH_TIMEOUT_MS),
    );
    if (status !== 200) throw new KeySourceError(`${url} answered HTTP ${status}`);
    try {
      return JSON.parse(body.toString('utf8'));
    } catch {
      throw new KeySourceError(`${url} did not return JSON`);
    }
  }

  async close(): Promise<void> {
    await this.dispatcher?.close();
  }

  private async get(
    url: string,
    headers: Record<string, string>,
    signal: AbortSignal,
  ): Promise<{ status: number; body: Buffer }> {
    let res: Dispatcher.ResponseData;
    try {
      res = await request(url, { method: 'GET', headers, signal, dispatcher: this.dispatcher });
    } catch (err) {
      const e = err as Error & { code?: string };
      throw new KeySourceError(`${url} is unreachable (${e.code ?? e.name})`);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res.body) {
      size += (chunk as Buffer).length;
      if (size > MAX_BODY_BYTES) {
        res.body.destroy();
        throw new KeySourceError(`${url} returned more than ${MAX_BODY_BYTES} bytes`);
      }
      chunks.push(chunk as Buffer);
    }
    return { status: res.statusCode, body: Buffer.concat(chunks) };
  }
}
