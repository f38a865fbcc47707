import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { pickField, splitField } from '../refs.js';
import { type GetOptions, ProviderError, type SecretProvider } from './provider.js';

/**
 * Secrets from files (local development, mounted Kubernetes secrets): `ref` is `PATH[#field]`,
 * relative to `dir` when given (and then confined to it). One trailing newline is removed.
 */
export class FileProvider implements SecretProvider {
  readonly name = 'file';
  private readonly dir: string | undefined;

  constructor(opts: { dir?: string } = {}) {
    this.dir = opts.dir === undefined ? undefined : path.resolve(opts.dir);
  }

  async get(ref: string, _opts?: GetOptions): Promise<string> {
    const { path: p, field } = splitField(ref);
    const file = this.dir ? path.resolve(this.dir, p) : path.resolve(p);
    if (this.dir && !file.startsWith(this.dir + path.sep)) {
      throw new ProviderError(this.name, `${p} is outside ${this.dir}`, 400);
    }
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new ProviderError(
        this.name,
        `cannot read ${file}: ${code ?? 'error'}`,
        code === 'ENOENT' ? 404 : 403,
      );
    }
    const value = text.replace(/\r?\n$/, '');
    try {
      return pickField(value, field, `file ${file}`);
    } catch (err) {
      throw new ProviderError(this.name, (err as Error).message, 404);
    }
  }

  async close(): Promise<void> {}
}
