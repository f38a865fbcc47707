import { pickField, splitField } from '../refs.js';
import { type GetOptions, ProviderError, type SecretProvider } from './provider.js';

/** Secrets from environment variables (local development): `ref` is `VAR[#field]`. */
export class EnvProvider implements SecretProvider {
  readonly name = 'env';
  private readonly env: NodeJS.ProcessEnv;
  private readonly prefix: string;

  constructor(opts: { env?: NodeJS.ProcessEnv; prefix?: string } = {}) {
    this.env = opts.env ?? process.env;
    this.prefix = opts.prefix ?? '';
  }

  async get(ref: string, _opts?: GetOptions): Promise<string> {
    const { path, field } = splitField(ref);
    const name = this.prefix + path;
    const value = this.env[name];
    if (value === undefined) throw new ProviderError(this.name, `the variable ${name} is not set`, 404);
    try {
      return pickField(value, field, `variable ${name}`);
    } catch (err) {
      throw new ProviderError(this.name, (err as Error).message, 404);
    }
  }

  async close(): Promise<void> {}
}
