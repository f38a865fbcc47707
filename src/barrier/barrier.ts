import { randomBytes } from 'node:crypto';
import { combine, split } from 'shamir-secret-sharing';
import { badRequest, CustodyError, conflict, sealed } from '../errors.js';
import type { MetaStore } from '../storage/meta-store.js';
import { open, seal } from './cipher.js';
import { addTerm, decodeKeyring, encodeKeyring, type Keyring, newKeyring } from './keyring.js';

export type UnsealMode = 'file' | 'shamir';

export interface SealConfig {
  mode: UnsealMode;
  shares: number;
  threshold: number;
  initializedAt: number;
}

export interface SealStatus {
  initialized: boolean;
  sealed: boolean;
  mode: UnsealMode | null;
  shares: number;
  threshold: number;
  /** Shares collected so far towards the threshold. */
  progress: number;
  keyTerm: number | null;
}

const KEYRING = 'barrier/keyring';
const CONFIG = 'barrier/config';
const KEYRING_AAD = 'custody:barrier:keyring';
const FORMAT = 'v1';

/**
 * The barrier: everything at rest passes through `encrypt`/`decrypt` here. The root key never
 * touches storage; it only decrypts the keyring, and the keyring's data keys encrypt records.
 * Ciphertext text format: `v1:<term>:<base64 iv|tag|ct>`.
 */
export class Barrier {
  private keyring: Keyring | null = null;
  private rootKey: Buffer | null = null;
  private config: SealConfig | null = null;
  private pendingShares: Buffer[] = [];
  private readonly sealListeners: ((isSealed: boolean) => void)[] = [];

  constructor(private readonly meta: MetaStore) {}

  async load(): Promise<void> {
    const raw = await this.meta.get(CONFIG);
    this.config = raw ? (JSON.parse(raw) as SealConfig) : null;
  }

  onSealChange(fn: (isSealed: boolean) => void): void {
    this.sealListeners.push(fn);
  }

  get isSealed(): boolean {
    return this.keyring === null;
  }

  status(): SealStatus {
    return {
      initialized: this.config !== null,
      sealed: this.isSealed,
      mode: this.config?.mode ?? null,
      shares: this.config?.shares ?? 0,
      threshold: this.config?.threshold ?? 0,
      progress: this.pendingShares.length,
      keyTerm: this.keyring?.activeTerm ?? null,
    };
  }

  /**
   * Creates the root key and the first keyring, and leaves the barrier unsealed. Returns the root
   * key (file mode: the caller writes it to the key file) or its Shamir shares (shown once).
   */
  async initialize(
    mode: UnsealMode,
    shares = 1,
    threshold = 1,
  ): Promise<{ rootKey?: Buffer; shares?: Buffer[] }> {
    if (this.config) throw conflict('AlreadyInitialized', 'The broker is already initialized');
    if (mode === 'shamir') {
      if (!Number.isInteger(shares) || !Number.isInteger(threshold) || shares < 2 || shares > 255) {
        throw badRequest(
          'InvalidKeyShares',
          'key shares must be an integer from 2 to 255',
          'Try --key-shares 5.',
        );
      }
      if (threshold < 2 || threshold > shares) {
        throw badRequest(
          'InvalidKeyThreshold',
          `key threshold must be from 2 to the number of shares (${shares})`,
          'Try --key-threshold 3 with --key-shares 5.',
        );
      }
    }
    const rootKey = randomBytes(32);
    const ring = newKeyring();
    const config: SealConfig =
      mode === 'shamir'
        ? { mode, shares, threshold, initializedAt: Date.now() }
        : { mode, shares: 1, threshold: 1, initializedAt: Date.now() };
    // Keyring first: a config without a keyring would claim an initialized broker that cannot unseal.
    const sealedRing = seal(rootKey, encodeKeyring(ring), KEYRING_AAD).toString('base64');
    if (
      !(await this.meta.insert(KEYRING, sealedRing)) ||
      !(await this.meta.insert(CONFIG, JSON.stringify(config)))
    ) {
      throw conflict('AlreadyInitialized', 'Another broker node initialized this storage first');
    }
    this.config = config;
    this.rootKey = Buffer.from(rootKey);
    this.setKeyring(ring);
    if (mode === 'file') return { rootKey };
    const parts = await split(new Uint8Array(rootKey), shares, threshold);
    rootKey.fill(0);
    return { shares: parts.map((p) => Buffer.from(p)) };
  }

  /** Unseals with the whole root key (file mode, or a combined Shamir secret). */
  async unsealWithRootKey(rootKey: Buffer): Promise<void> {
    if (!this.config) await this.load();
    if (!this.config)
      throw new CustodyError(
        'NotInitialized',
        501,
        'The broker is not initialized',
        'Run `custody operator init`.',
      );
    const blob = await this.meta.get(KEYRING);
    if (!blob)
      throw new CustodyError('NotInitialized', 501, 'No keyring in storage', 'Run `custody operator init`.');
    let ring: Keyring;
    try {
      ring = decodeKeyring(open(rootKey, Buffer.from(blob, 'base64'), KEYRING_AAD));
    } catch {
      throw badRequest(
        'InvalidUnsealKey',
        "The unseal key does not open this broker's keyring",
        'Check that the key or shares belong to this installation.',
      );
    }
    // Kept while unsealed (like Vault) so rotation can re-encrypt the keyring; zeroed on seal.
    this.rootKey = Buffer.from(rootKey);
    this.setKeyring(ring);
  }

  /** Adds one Shamir share; unseals when the threshold is reached. Wrong shares reset progress. */
  async submitShare(share: Buffer): Promise<SealStatus> {
    if (!this.config) await this.load();
    if (!this.config)
      throw new CustodyError(
        'NotInitialized',
        501,
        'The broker is not initialized',
        'Run `custody operator init`.',
      );
    if (!this.isSealed) return this.status();
    if (this.config.mode !== 'shamir') {
      throw badRequest(
        'WrongUnsealMode',
        'This broker unseals from its key file, not from shares',
        'Restart it; file mode unseals automatically.',
      );
    }
    if (share.length < 2)
      throw badRequest(
        'InvalidUnsealKey',
        'The unseal share is empty or truncated',
        'Paste the whole base64 share.',
      );
    if (this.pendingShares.some((s) => s.equals(share))) return this.status();
    this.pendingShares.push(share);
    if (this.pendingShares.length < this.config.threshold) return this.status();
    const shares = this.pendingShares;
    this.pendingShares = [];
    let rootKey: Buffer;
    try {
      rootKey = Buffer.from(await combine(shares.map((s) => new Uint8Array(s))));
    } catch {
      throw badRequest(
        'InvalidUnsealKey',
        'The shares could not be combined',
        'Provide shares from the same `operator init`; progress was reset.',
      );
    }
    try {
      await this.unsealWithRootKey(rootKey);
    } finally {
      rootKey.fill(0);
    }
    return this.status();
  }

  /**
   * Whether key parts reconstruct this broker's root key: `threshold` Shamir shares, or the key
   * file's root key in file mode. Used to authorize root-token generation by quorum.
   */
  async verifyKeyParts(parts: Buffer[]): Promise<boolean> {
    if (!this.config) await this.load();
    const meta = this.config;
    const blob = await this.meta.get(KEYRING);
    if (!meta || !blob) return false;
    let rootKey: Buffer;
    try {
      rootKey =
        meta.mode === 'shamir' ? Buffer.from(await combine(parts.map((p) => new Uint8Array(p)))) : parts[0];
    } catch {
      return false;
    }
    try {
      open(rootKey, Buffer.from(blob, 'base64'), KEYRING_AAD);
      return true;
    } catch {
      return false;
    } finally {
      if (meta.mode === 'shamir') rootKey.fill(0);
    }
  }

  resetUnsealProgress(): void {
    this.pendingShares = [];
  }

  /** Drops every key from memory; the broker refuses all but status and unseal afterwards. */
  seal(): void {
    if (this.keyring) for (const k of this.keyring.keys) k.key.fill(0);
    this.keyring = null;
    this.rootKey?.fill(0);
    this.rootKey = null;
    this.pendingShares = [];
    for (const fn of this.sealListeners) fn(true);
  }

  /** Adds a data key: new writes use it, older terms stay readable. */
  async rotate(): Promise<number> {
    const ring = this.requireKeyring();
    // Start from storage's keyring, not ours: another node may have rotated already.
    const next = addTerm(await this.freshKeyring(ring));
    await this.meta.put(
      KEYRING,
      seal(this.requireRootKey(), encodeKeyring(next), KEYRING_AAD).toString('base64'),
    );
    this.keyring = next;
    return next.activeTerm;
  }

  encrypt(plaintext: Buffer | string, aad: string): string {
    const ring = this.requireKeyring();
    const key = ring.keys.find((k) => k.term === ring.activeTerm)!;
    const buf = typeof plaintext === 'string' ? Buffer.from(plaintext, 'utf8') : plaintext;
    return `${FORMAT}:${key.term}:${seal(key.key, buf, aad).toString('base64')}`;
  }

  async decrypt(ciphertext: string, aad: string): Promise<Buffer> {
    const ring = this.requireKeyring();
    const [format, termText, body] = ciphertext.split(':');
    const term = Number(termText);
    if (format !== FORMAT || !Number.isInteger(term) || !body) throw corrupt();
    let key = ring.keys.find((k) => k.term === term);
    if (!key) {
      // Another broker node may have rotated since we unsealed: reload once.
      key = (await this.freshKeyring(ring)).keys.find((k) => k.term === term);
      if (!key) throw corrupt();
    }
    try {
      return open(key.key, Buffer.from(body, 'base64'), aad);
    } catch {
      throw corrupt();
    }
  }

  private setKeyring(ring: Keyring): void {
    this.keyring = ring;
    for (const fn of this.sealListeners) fn(false);
  }

  private requireKeyring(): Keyring {
    if (!this.keyring) throw sealed();
    return this.keyring;
  }

  private requireRootKey(): Buffer {
    if (!this.rootKey) throw sealed();
    return this.rootKey;
  }

  private async freshKeyring(current: Keyring): Promise<Keyring> {
    const blob = await this.meta.get(KEYRING);
    if (!blob || !this.rootKey) return current;
    const ring = decodeKeyring(open(this.rootKey, Buffer.from(blob, 'base64'), KEYRING_AAD));
    this.keyring = ring;
    return ring;
  }
}

function corrupt(): CustodyError {
  return new CustodyError(
    'DecryptionFailed',
    500,
    'A stored value failed authentication and was not returned',
    'The record was altered or moved in storage; restore it from backup.',
  );
}
