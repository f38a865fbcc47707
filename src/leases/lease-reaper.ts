import type { Logger } from 'pino';
import type { LeaseService } from './lease-service.js';

/**
 * Runs reaper passes back to back while there is work, then every `intervalMs`. Leases live in
 * storage, not memory, so a restart simply resumes: nothing is loaded at start.
 */
export class LeaseReaper {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;

  constructor(
    private readonly leases: LeaseService,
    private readonly opts: {
      intervalMs: number;
      logger: Logger;
      isSealed: () => boolean;
      afterPass?: () => Promise<void>;
    },
  ) {}

  start(): void {
    this.stopped = false;
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }

  private schedule(ms: number) {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.pass().finally(() => {
        this.running = null;
      });
    }, ms);
    this.timer.unref();
  }

  private async pass(): Promise<void> {
    let busy = false;
    try {
      if (!this.opts.isSealed()) {
        const r = await this.leases.reapOnce();
        busy = r.claimed > 0;
        if (r.claimed > 0)
          this.opts.logger.info(
            { claimed: r.claimed, revoked: r.revoked, failed: r.failed },
            'lease reaper pass',
          );
        await this.opts.afterPass?.();
      }
    } catch (err) {
      this.opts.logger.warn({ err: (err as Error).message }, 'lease reaper pass failed');
    }
    this.schedule(busy ? 0 : this.opts.intervalMs);
  }
}
