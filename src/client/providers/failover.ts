import { describeError, type LogFn, redactingLogger } from '../redact.js';
import { type GetOptions, ProviderError, type SecretProvider } from './provider.js';

export interface FailoverAttempt {
  provider: string;
  ok: boolean;
  /** Redacted reason of a failure. */
  error?: string;
}

/**
 * Tries providers in order; the first that serves wins, and a provider failing at runtime fails over
 * to the next. `lastReport` says which one served and why the others failed (redacted).
 * A reference can differ per provider: pass a map `{ vault: 'secret/x', 'aws-secrets-manager': 'x' }`.
 */
export class FailoverProvider implements SecretProvider {
  readonly name = 'failover';
  lastReport: { served?: string; attempts: FailoverAttempt[] } = { attempts: [] };
  private readonly log: LogFn;

  constructor(
    readonly providers: SecretProvider[],
    opts: { log?: LogFn } = {},
  ) {
    if (providers.length === 0) throw new ProviderError('failover', 'no provider is enabled');
    this.log = redactingLogger(opts.log);
  }

  async get(ref: string | Record<string, string>, opts?: GetOptions): Promise<string> {
    const attempts: FailoverAttempt[] = [];
    for (const p of this.providers) {
      const r = typeof ref === 'string' ? ref : ref[p.name];
      if (r === undefined) {
        attempts.push({ provider: p.name, ok: false, error: 'no reference for this provider' });
        continue;
      }
      try {
        const value = await p.get(r, opts);
        attempts.push({ provider: p.name, ok: true });
        this.lastReport = { served: p.name, attempts };
        if (attempts.length > 1) {
          this.log('warn', `secret served by ${p.name} after failover: ${summary(attempts)}`);
        }
        return value;
      } catch (err) {
        const error = describeError(err);
        attempts.push({ provider: p.name, ok: false, error });
        this.log('warn', `provider ${p.name} failed: ${error}`);
      }
    }
    this.lastReport = { attempts };
    throw new ProviderError('failover', `every provider failed: ${summary(attempts)}`);
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.providers.map((p) => p.close()));
  }
}

const summary = (a: FailoverAttempt[]) =>
  a
    .filter((x) => !x.ok)
    .map((x) => `${x.provider}: ${x.error}`)
    .join('; ');
