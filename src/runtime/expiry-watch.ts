import type { Reporter } from './reporter.js';
import { Timer } from './timer.js';

/** How long before an end the warning comes by default (`--warn-before`). */
export const DEFAULT_WARN_BEFORE_MS = 15 * 60_000;

/** A notice for the audit trail (`POST /v1/audit/notices`); failures are the caller's to swallow. */
export type AuditNotice = (notice: { code: string; message: string; subject: string }) => Promise<void>;

interface Watched {
  what: string;
  endsAt: number;
  auditEnd: boolean;
  timer: Timer;
}

/**
 * Warns — on stderr and in the audit trail — before a credential the child holds stops working
 * (`CredentialExpiresSoon`), and again when it has (`CredentialExpired`) while the child still runs.
 * The keepers say what will end and when (a lease at its max TTL, a token that cannot be renewed or
 * replaced); rotation, a fresh login or revocation takes the entry back.
 *
 * The warning comes `warnBeforeMs` ahead, but never earlier than 4/5 of the way to the end, so a
 * short-lived credential is not announced the moment it is issued.
 */
export class ExpiryWatch {
  private readonly watched = new Map<string, Watched>();
  private stopped = false;
  private readonly pending = new Set<Promise<void>>();

  constructor(
    private readonly report: Reporter,
    private readonly audit: AuditNotice | undefined,
    private readonly warnBeforeMs = DEFAULT_WARN_BEFORE_MS,
  ) {}

  /**
   * `key` (a lease id, `token`) ends at `endsAt` (epoch ms): warn ahead of it. `auditEnd: false` when
   * the end itself cannot be recorded (the job's own token: once it has ended, the broker refuses it).
   */
  watch(key: string, what: string, endsAt: number, opts: { auditEnd?: boolean } = {}): void {
    if (this.stopped) return;
    const prev = this.watched.get(key);
    if (prev && prev.endsAt === endsAt) return;
    prev?.timer.clear();
    const w: Watched = { what, endsAt, auditEnd: opts.auditEnd !== false, timer: new Timer() };
    this.watched.set(key, w);
    const now = Date.now();
    const lead = Math.min(this.warnBeforeMs, (endsAt - now) / 5);
    w.timer.set(() => this.soon(key, w), endsAt - lead - now);
  }

  /** `key` no longer ends (renewed past it, rotated, logged in again, revoked). */
  unwatch(key: string): void {
    this.watched.get(key)?.timer.clear();
    this.watched.delete(key);
  }

  /** Keys watched now (tests). */
  get keys(): string[] {
    return [...this.watched.keys()];
  }

  /** Stops every timer and waits for the audit notices already on their way. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const w of this.watched.values()) w.timer.clear();
    this.watched.clear();
    await Promise.allSettled([...this.pending]);
  }

  private soon(key: string, w: Watched): void {
    if (this.stopped || this.watched.get(key) !== w) return;
    const left = Math.max(0, Math.round((w.endsAt - Date.now()) / 1000));
    this.say(
      'CredentialExpiresSoon',
      `${w.what} stops working at ${new Date(w.endsAt).toISOString()} (in ${left}s) while the command is still running`,
      key,
    );
    w.timer.set(() => {
      if (this.stopped || this.watched.get(key) !== w) return;
      this.watched.delete(key);
      this.say(
        'CredentialExpired',
        `${w.what} has stopped working; the command is still running`,
        key,
        w.auditEnd,
      );
    }, w.endsAt - Date.now());
  }

  private say(code: string, message: string, subject: string, audit = true): void {
    this.report.warn(code, message);
    if (!this.audit || !audit) return;
    const p = this.audit({ code, message, subject })
      .catch((err: unknown) => {
        const c = (err as { code?: unknown })?.code;
        this.report.note(
          `could not record ${code} in the audit trail (${typeof c === 'string' ? c : 'error'})`,
        );
      })
      .finally(() => this.pending.delete(p));
    this.pending.add(p);
  }
}
