import type { ApiClient } from '../cli/api-client.js';
import { CliError } from '../cli/errors.js';
import type { ExpiryWatch } from './expiry-watch.js';
import { codeOf } from './identity.js';
import type { Reporter } from './reporter.js';
import type { CredsSpec } from './specs.js';
import { Timer } from './timer.js';

/** `POST /v1/creds/ENV/ENGINE/ROLE` → 200. */
export interface IssuedLease {
  lease_id: string;
  username: string;
  password: string;
  expires_at: string;
  max_expires_at: string;
  lease_duration: number;
  renewable: boolean;
  data: Record<string, string>;
}

/** `POST /v1/leases/renew|revoke` → 200 (the fields used here). */
interface LeaseWire {
  lease_id: string;
  expires_at: string;
  max_expires_at: string;
  renewable: boolean;
  state: string;
  last_error: string | null;
  capped?: boolean;
}

interface Held {
  spec: CredsSpec;
  id: string;
  expiresAt: number;
  maxExpiresAt: number;
  renewable: boolean;
  timer: Timer;
  failures: number;
  capWarned: boolean;
  renewing: Promise<void> | null;
  /** The lease's TTL (ms) when issued: rotation starts within max(2 s, TTL/3) of its max TTL. */
  ttlMs: number;
  /** Replaced by a fresh lease: no more renewals, revoked after the rotation grace. */
  draining: boolean;
}

/** `--files`: how leases near their max TTL are replaced by fresh ones. */
export interface Rotation {
  /** How long the old lease is kept after the fresh one was handed over (a pool can drain). */
  graceMs: number;
  /** Hands the fresh lease's credentials to the child (files, masking, signal). */
  deliver(spec: CredsSpec, issued: IssuedLease): void;
}

/** Rotation starts this long (at least) before the max TTL of the lease it replaces. */
const ROTATE_MIN_MARGIN_MS = 2000;

export const credsUrl = (s: CredsSpec) =>
  `/v1/creds/${[s.env, s.engine, s.role].map(encodeURIComponent).join('/')}`;

/** Renewal happens at this fraction of the time a lease has left. */
const RENEW_AT = 2 / 3;
const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 30_000;
/** Statuses that say the lease is gone for good: no point retrying a renewal. */
const FINAL = new Set([400, 403, 404, 409, 410]);

/**
 * The leases `custody run` holds for its child: issued before the child starts, renewed at about two
 * thirds of their remaining time while it runs (never past the role's max TTL: a warning says when
 * the credentials will stop working), revoked as soon as it exits.
 */
export class LeaseKeeper {
  private readonly held: Held[] = [];
  private stopped = false;
  private rotation: Rotation | null = null;

  constructor(
    private readonly client: ApiClient,
    private readonly report: Reporter,
    /** Told when a lease will end while the child runs (warnings on stderr and in the audit trail). */
    private readonly expiry?: ExpiryWatch,
  ) {}

  /**
   * From now on, a lease that cannot be renewed much further (its max TTL within max(2 s, TTL/3))
   * is replaced by a fresh one before it ends; the old one is revoked after `graceMs`.
   */
  enableRotation(rotation: Rotation): void {
    this.rotation = rotation;
  }

  /** Lease ids held now (for messages and tests). */
  get ids(): string[] {
    return this.held.map((h) => h.id);
  }

  /**
   * What each held lease can last at most (for `--expect`); `rotates`: with rotation on, a renewable
   * lease is replaced by a fresh one before that end.
   */
  get lifetimes(): { id: string; prefix: string; endsAt: number; rotates: boolean }[] {
    return this.held.map((h) => ({
      id: h.id,
      prefix: h.spec.prefix,
      endsAt: h.renewable ? h.maxExpiresAt : h.expiresAt,
      rotates: this.rotation !== null && h.renewable,
    }));
  }

  private watch(h: Held, endsAt: number): void {
    this.expiry?.watch(h.id, `lease ${h.id} (${h.spec.prefix}_*)`, endsAt);
  }

  async issue(spec: CredsSpec): Promise<IssuedLease> {
    const { body } = await this.client.post<IssuedLease>(credsUrl(spec), {});
    const h: Held = {
      spec,
      id: body.lease_id,
      expiresAt: Date.parse(body.expires_at),
      maxExpiresAt: Date.parse(body.max_expires_at),
      renewable: body.renewable,
      timer: new Timer(),
      failures: 0,
      capWarned: false,
      renewing: null,
      ttlMs: (body.lease_duration ?? 0) * 1000,
      draining: false,
    };
    this.held.push(h);
    if (this.stopped) return body;
    this.schedule(h);
    return body;
  }

  /** Arms the renewal (or, for a lease that cannot be renewed, the expiry warning). */
  private schedule(h: Held): void {
    if (this.stopped) return;
    const now = Date.now();
    if (this.rotation && h.renewable && !h.draining) {
      const margin = Math.max(ROTATE_MIN_MARGIN_MS, h.ttlMs / 3);
      const nextRenewal = now + (h.expiresAt - now) * RENEW_AT;
      if (h.maxExpiresAt - nextRenewal <= margin || h.expiresAt >= h.maxExpiresAt - 1000) {
        h.timer.set(
          () => {
            h.renewing = this.rotate(h).finally(() => {
              h.renewing = null;
            });
          },
          Math.max(0, h.maxExpiresAt - margin - now),
        );
        return;
      }
    }
    if (h.expiresAt >= h.maxExpiresAt - 1000) {
      this.warnCap(h);
      return;
    }
    if (!h.renewable) {
      this.watch(h, h.expiresAt);
      h.timer.set(
        () =>
          this.report.warn(
            'LeaseNotRenewable',
            `lease ${h.id} (${h.spec.prefix}_*) is not renewable; its credentials stop working at ${iso(h.expiresAt)}`,
          ),
        (h.expiresAt - now) * RENEW_AT,
      );
      return;
    }
    h.timer.set(
      () => {
        h.renewing = this.renew(h).finally(() => {
          h.renewing = null;
        });
      },
      (h.expiresAt - now) * RENEW_AT,
    );
  }

  private warnCap(h: Held): void {
    if (this.stopped) return;
    this.watch(h, h.maxExpiresAt);
    if (h.capWarned) return;
    h.capWarned = true;
    this.report.warn(
      'LeaseMaxTtl',
      `lease ${h.id} (${h.spec.prefix}_*) reaches its role's max TTL at ${iso(h.maxExpiresAt)}: ` +
        'custody run cannot renew it past that, and its credentials stop working then' +
        (this.rotation
          ? ''
          : " (without --files the child's environment cannot change: it keeps the old credentials until then)"),
    );
  }

  /** Issues a fresh lease for `h`'s role, hands it to the child, and revokes `h` after the grace. */
  private async rotate(h: Held): Promise<void> {
    const rotation = this.rotation;
    if (this.stopped || !rotation) return;
    let issued: IssuedLease;
    try {
      issued = await this.issue(h.spec);
    } catch (err) {
      if (this.stopped) return;
      this.report.warn(
        'LeaseRotateFailed',
        `could not issue a fresh lease to replace ${h.id} (${h.spec.prefix}_*) (${codeOf(err)}); ` +
          `its credentials stop working at ${iso(h.maxExpiresAt)}`,
      );
      h.capWarned = true;
      this.watch(h, h.maxExpiresAt);
      return;
    }
    if (this.stopped) return;
    h.draining = true;
    // Revoked after the grace, by us: not an expiry to warn about.
    this.expiry?.unwatch(h.id);
    try {
      rotation.deliver(h.spec, issued);
    } catch (err) {
      this.report.warn(
        'LeaseRotateDeliverFailed',
        `could not hand the fresh lease ${issued.lease_id} to the command (${codeOf(err)})`,
      );
    }
    this.report.note(
      `lease ${h.id} (${h.spec.prefix}_*) rotated before its max TTL: fresh lease ${issued.lease_id}; ` +
        `the old one is revoked in ${Math.round(rotation.graceMs / 1000)}s`,
    );
    h.timer.set(() => {
      h.renewing = this.revokeDrained(h).finally(() => {
        h.renewing = null;
      });
    }, rotation.graceMs);
  }

  /** Revokes a lease replaced by rotation once its grace is over (revokeAll does it otherwise). */
  private async revokeDrained(h: Held): Promise<void> {
    if (this.stopped) return;
    try {
      await this.client.post<LeaseWire>('/v1/leases/revoke', { lease_id: h.id });
      const i = this.held.indexOf(h);
      if (i !== -1 && !this.stopped) this.held.splice(i, 1);
    } catch (err) {
      if (this.stopped) return;
      const status = err instanceof CliError ? err.status : undefined;
      if (status !== undefined && FINAL.has(status)) {
        // Already gone (expired and reaped): nothing left to revoke.
        const i = this.held.indexOf(h);
        if (i !== -1) this.held.splice(i, 1);
        return;
      }
      this.report.warn(
        'LeaseRevokeFailed',
        `could not revoke the replaced lease ${h.id} (${codeOf(err)}); it is retried when the command exits`,
      );
    }
  }

  private async renew(h: Held): Promise<void> {
    if (this.stopped) return;
    try {
      const { body } = await this.client.post<LeaseWire>('/v1/leases/renew', { lease_id: h.id });
      h.expiresAt = Date.parse(body.expires_at);
      h.maxExpiresAt = Date.parse(body.max_expires_at);
      h.renewable = body.renewable;
      h.failures = 0;
      this.expiry?.unwatch(h.id);
      if (body.capped && !this.rotation) this.warnCap(h);
      this.schedule(h);
    } catch (err) {
      if (this.stopped) return;
      h.failures += 1;
      const left = h.expiresAt - Date.now();
      const status = err instanceof CliError ? err.status : undefined;
      if ((status !== undefined && FINAL.has(status)) || left <= RETRY_MIN_MS) {
        this.report.warn(
          'LeaseRenewFailed',
          `renewing lease ${h.id} (${h.spec.prefix}_*) failed (${codeOf(err)}); ` +
            `its credentials stop working at ${iso(h.expiresAt)}`,
        );
        this.watch(h, h.expiresAt);
        return;
      }
      if (h.failures === 1)
        this.report.warn('LeaseRenewRetry', `renewing lease ${h.id} failed (${codeOf(err)}); retrying`);
      const backoff = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** (h.failures - 1), left / 2);
      h.timer.set(() => {
        h.renewing = this.renew(h).finally(() => {
          h.renewing = null;
        });
      }, backoff);
    }
  }

  /**
   * Stops renewing and revokes every lease (in parallel, a few attempts each). Failures are reported
   * with the command that finishes the job; the broker still revokes each lease at its expiry.
   */
  async revokeAll(): Promise<{ revoked: string[]; failed: string[] }> {
    this.stopped = true;
    for (const h of this.held) h.timer.clear();
    await Promise.allSettled(this.held.map((h) => h.renewing));
    const results = await Promise.all(
      this.held.map(async (h) => {
        for (let attempt = 1; ; attempt++) {
          try {
            const { body } = await this.client.post<LeaseWire>('/v1/leases/revoke', { lease_id: h.id });
            if (body.state !== 'revoked') {
              this.report.warn(
                'LeaseRevokePending',
                `revocation of lease ${h.id} is ${body.state}${body.last_error ? ` (${body.last_error})` : ''}; the broker keeps retrying`,
              );
            }
            return { id: h.id, ok: true };
          } catch (err) {
            const status = err instanceof CliError ? err.status : undefined;
            const retry = attempt < 3 && (status === undefined || status >= 500 || status === 429);
            if (retry) {
              await new Promise((r) => setTimeout(r, 300 * attempt));
              continue;
            }
            this.report.warn(
              'LeaseRevokeFailed',
              `could not revoke lease ${h.id} (${codeOf(err)}); it ends at ${iso(h.expiresAt)} anyway. ` +
                `Revoke it now with: custody lease revoke ${h.id}`,
            );
            return { id: h.id, ok: false };
          }
        }
      }),
    );
    this.held.splice(0);
    return {
      revoked: results.filter((r) => r.ok).map((r) => r.id),
      failed: results.filter((r) => !r.ok).map((r) => r.id),
    };
  }
}

const iso = (ms: number) => new Date(ms).toISOString();
