/** setTimeout's longest delay (about 24.8 days); longer waits are chained. */
const MAX_DELAY = 2_147_483_647;

/**
 * One pending callback at a time, unref'd (a timer alone never keeps `custody run` alive: the child
 * does), safe for delays beyond setTimeout's limit. `set` replaces what was pending.
 */
export class Timer {
  private handle: NodeJS.Timeout | null = null;

  set(fn: () => void, delayMs: number): void {
    this.clear();
    const due = Date.now() + Math.max(0, delayMs);
    const arm = () => {
      const left = due - Date.now();
      this.handle = setTimeout(
        () => {
          this.handle = null;
          if (left > MAX_DELAY) arm();
          else fn();
        },
        Math.min(Math.max(0, left), MAX_DELAY),
      );
      this.handle.unref();
    };
    arm();
  }

  clear(): void {
    if (this.handle) clearTimeout(this.handle);
    this.handle = null;
  }
}
