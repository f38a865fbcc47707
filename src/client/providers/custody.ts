import { CustodyClient, type CustodyClientOptions } from '../custody-client.js';
import type { GetOptions, SecretProvider } from './provider.js';

/** Secrets from a Custody broker: `ref` is `ENV/NAME[#field]`. */
export class CustodyProvider implements SecretProvider {
  readonly name = 'custody';
  readonly client: CustodyClient;
  private readonly owned: boolean;

  constructor(opts: CustodyClientOptions | { client: CustodyClient } = {}) {
    if ('client' in opts) {
      this.client = opts.client;
      this.owned = false;
    } else {
      this.client = new CustodyClient(opts);
      this.owned = true;
    }
  }

  get(ref: string, opts: GetOptions = {}): Promise<string> {
    return this.client.getSecret(ref, { version: opts.version });
  }

  async close(): Promise<void> {
    if (this.owned) await this.client.close();
  }
}
