// A small client for the broker API (undici, trusting the generated CA) and a bounded-concurrency loop.
import { type Dispatcher, Pool } from 'undici';

export class Api {
  private readonly pool: Pool;

  constructor(
    url: string,
    ca: string,
    private readonly token: string,
    connections = 64,
  ) {
    this.pool = new Pool(url, { connections, connect: { ca } });
  }

  async call(method: Dispatcher.HttpMethod, path: string, body?: unknown): Promise<any> {
    const res = await this.pool.request({
      method,
      path,
      headers: { authorization: `Bearer ${this.token}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.body.text();
    if (res.statusCode >= 300)
      throw new Error(`${method} ${path} -> ${res.statusCode}: ${text.slice(0, 300)}`);
    return text ? JSON.parse(text) : null;
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}

/** Calls fn(0..count-1) with at most `concurrency` in flight; onProgress after each completion. */
export async function forEachConcurrent(
  count: number,
  concurrency: number,
  fn: (i: number) => Promise<void>,
  onProgress?: (done: number) => void,
): Promise<void> {
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < count) {
      await fn(next++);
      onProgress?.(++done);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}
