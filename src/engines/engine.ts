/**
 * The one interface every dynamic-secret engine implements. An engine knows how to make and
 * remove credentials on its backend; it knows nothing about lease timing, retries, RBAC or audit
 * (the lease service owns those). A new engine is one folder under src/engines/ with its tests.
 */

/** What the lease service tells an engine about the credential it is about to mint. */
export interface IssueContext {
  env: string;
  engine: string;
  role: string;
  /** The requesting identity's name (untrusted text: claim values may carry quotes, `;`, unicode). */
  identityName: string;
  expiresAt: Date;
}

/**
 * A credential chosen but not yet created. The lease service stores `revocation` (encrypted)
 * BEFORE calling `create`, so a crash between the two still leaves enough to clean up.
 */
export interface PreparedCredential {
  username: string;
  password: string;
  /** Everything `revoke` needs later, JSON-serializable (never the admin password). */
  revocation: Record<string, unknown>;
}

export interface IssuedCredential {
  username: string;
  password: string;
  /** Extra fields returned to the caller (e.g. `connection_url` WITHOUT the password). */
  data: Record<string, string>;
}

/**
 * How a lease of this role can end. Engines whose credentials cannot be withdrawn (cloud tokens
 * such as STS sessions or a plain SAS) say so: the lease records it and shows it.
 */
export interface LeaseTerms {
  /** Revoking the lease ends the credential before its expiry. */
  revocable: boolean;
  /** `renew` can extend the credential (otherwise the lease ends at its first expiry). */
  renewable: boolean;
}

export interface Engine<Role = unknown> {
  readonly type: string;
  /**
   * Optional: the lease's terms for a credential of `role` lasting `ttlSeconds`; may refuse a TTL
   * the backend cannot honour (CustodyError 400). Engines without it: revocable and renewable.
   */
  leaseTerms?(role: Role, ttlSeconds: number): LeaseTerms;
  /** Checks the connection and credentials work (called on configure). */
  verify(): Promise<void>;
  /** Chooses a safe, unique username and a strong password. No side effects. */
  prepare(role: Role, ctx: IssueContext): PreparedCredential;
  /** Creates the credential on the backend. */
  create(role: Role, prepared: PreparedCredential, ctx: IssueContext): Promise<IssuedCredential>;
  /** Extends the credential's validity on the backend (e.g. VALID UNTIL), when it has one. */
  renew(role: Role, revocation: Record<string, unknown>, expiresAt: Date): Promise<void>;
  /**
   * Removes the credential. MUST be idempotent: revoking something already gone (or never
   * created, after a crash between prepare and create) succeeds.
   */
  revoke(role: Role | null, revocation: Record<string, unknown>): Promise<void>;
  /** Static roles: sets an existing user's password (Custody owns it from now on). */
  setPassword(username: string, password: string): Promise<void>;
  /**
   * Sets the engine's own admin password to `newPassword` (chosen and stored as pending by the
   * service first, so a crash half-way cannot lose it); returns the new connection config to store.
   * Every engine config keeps the admin password under `password`.
   */
  rotateRoot(newPassword: string): Promise<Record<string, unknown>>;
  close(): Promise<void>;
}

export interface EngineFactory<Config = Record<string, unknown>, Role = unknown> {
  readonly type: string;
  /** Validates engine connection config from the API (throws CustodyError 400 with a hint). */
  parseConfig(raw: Record<string, unknown>): Config;
  /** Validates a dynamic role definition from the API (throws CustodyError 400 with a hint). */
  parseRole(raw: Record<string, unknown>): Role;
  open(config: Config): Engine<Role>;
  /** Config safe to show (no passwords). */
  redactConfig(config: Config): Record<string, unknown>;
  /** Optional: refuses a role TTL / max TTL the backend cannot honour (CustodyError 400). */
  checkRoleTtl?(role: Role, ttlSeconds: number, maxTtlSeconds: number): void;
}
