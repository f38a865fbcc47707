import { EventEmitter } from 'node:events';
import type { Dispatcher } from 'undici';
import { CustodyClientError, errorFromReply } from './errors.js';
import { sendJson } from './http.js';
import type { LogFn } from './redact.js';
import type { RetryOptions } from './retry.js';

/** What a lease needs from its client: where to send renew/revoke, with which token. */
export interface LeaseTransport {
  addr: string;
  dispatcher: Dispatcher;
  retry: Partial<RetryOptions>;
  token(): Promise<string>;
  log: LogFn;
  forget(lease: Lease): void;
}

/** The broker's reply to `POST /v1/creds/:env/:engine/:role`. */
export interface IssuedCredentials {
  lease_id: string;
  username: string;
  password: string;
  expires_at: string;
  max_expires_at: string;
  lease_duration: number;
  renewable: boolean;
  /** False when revoking cannot end the credential before its expiry (STS sessions, plain SAS). */
  revocable?: boolean;
  data: Record<string, string>;
}

/**
 * One dynamic credential. Renews itself at about 2/3 of its TTL until its max TTL (then emits
 * `warning` and stops), and is revoked by `close()`. Events: `renewed` (expiresAt), `warning`
 * (message), `expired`.
 */
export class Lease extends EventEmitter {
  readonly id: string;
  readonly username: string;
  readonly password: string;
  readonly data: Readonly<Record<string, string>>;
  readonly renewable: boolean;
  /** False when `close()` ends the lease but the credential keeps working until its expiry. */
  readonly revocable: boolean;
  expiresAt: Date;
  maxExpiresAt: Date;
  private timer: NodeJS.Timeout | undefined;
  private closed: Promise<void> | undefined;

  constructor(
    issued: IssuedCredentials,
    private readonly t: LeaseTransport,
    private readonly autoRenew = true,
  ) {
    super();
    this.id = issued.lease_id;
    this.username = issued.username;
    this.password = issued.password;
    this.data = Object.freeze({ ...issued.data });
    this.renewable = issued.renewable;
    this.revocable = issued.revocable !== false;
    this.expiresAt = new Date(issued.expires_at);
    this.maxExpiresAt = new Date(issued.max_expires_at);
    this.schedule();
  }

  get isClosed(): boolean {
    return this.closed !== undefined;
  }

  private async call(path: string, body: Record<string, unknown>, what: string): Promise<any> {
    const r = await sendJson(`${this.t.addr}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await this.t.token()}` },
      body,
      dispatcher: this.t.dispatcher,
      retry: this.t.retry,
    });
    if (r.status !== 200) throw errorFromReply(r.status, r.body, what);
    return r.body;
  }

  /** Extends the lease (capped at its max TTL by the broker). */
  async renew(increment?: string | number): Promise<Date> {
    if (this.closed) throw new CustodyClientError('LeaseClosed', `lease ${this.id} is closed`);
    const body = await this.call(
      '/v1/leases/renew',
      { lease_id: this.id, ...(increment === undefined ? {} : { increment }) },
      `renew lease ${this.id}`,
    );
    this.expiresAt = new Date(body.expires_at);
    this.maxExpiresAt = new Date(body.max_expires_at);
    this.t.log('debug', `lease ${this.id} renewed until ${body.expires_at}${body.capped ? ' (capped)' : ''}`);
    this.emit('renewed', this.expiresAt);
    if (body.capped) this.warnMax();
    this.schedule();
    return this.expiresAt;
  }

  private warnMax() {
    const msg = `lease ${this.id} reaches its max TTL at ${this.maxExpiresAt.toISOString()}; it is not renewed further`;
    this.t.log('warn', msg);
    this.emit('warning', msg);
  }

  private schedule() {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.autoRenew || this.closed || !this.renewable) return;
    const now = Date.now();
    const left = this.expiresAt.getTime() - now;
    if (left <= 0) return;
    if (this.expiresAt.getTime() >= this.maxExpiresAt.getTime() - 1000) {
      this.warnMax();
      return;
    }
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        this.renew().catch((err) => {
          const msg = `lease ${this.id} could not be renewed: ${(err as Error).message}`;
          this.t.log('warn', msg);
          this.emit('warning', msg);
        });
      },
      Math.max(50, (left * 2) / 3),
    );
    this.timer.unref();
  }

  /** Revokes the lease (idempotent) and stops its timer. */
  close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.closed ??= (async () => {
      try {
        await this.call('/v1/leases/revoke', { lease_id: this.id }, `revoke lease ${this.id}`);
        this.t.log('debug', `lease ${this.id} revoked`);
      } finally {
        this.t.forget(this);
      }
    })();
    return this.closed;
  }
}
