import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { AuditService } from '../audit/audit-service.js';
import type { TokenService } from '../auth/token-service.js';
import { ROOT_POLICY } from '../auth/token-service.js';
import type { Barrier, SealStatus, UnsealMode } from '../barrier/barrier.js';
import { badRequest, CustodyError, conflict } from '../errors.js';
import type { MetaStore } from '../storage/meta-store.js';
import { writePrivateFile } from './private-file.js';

const AUDIT_KEY = 'audit/hmac-key';
const AUDIT_KEY_AAD = 'custody:audit:hmac-key';

export interface RootGenerationStatus {
  started: boolean;
  nonce: string | null;
  progress: number;
  required: number;
}

export interface InitResult {
  rootToken: string;
  /** Shamir shares, base64; empty in file mode. */
  keys: string[];
  shares: number;
  threshold: number;
}

/** Initialization and the seal lifecycle: what `custody operator …` drives. */
export class OperatorService {
  private rootGen: { nonce: string; parts: Buffer[] } | null = null;

  constructor(
    private readonly deps: {
      barrier: Barrier;
      tokens: TokenService;
      audit: AuditService;
      meta: MetaStore;
      mode: UnsealMode;
      keyFile: string;
    },
  ) {}

  status(): SealStatus {
    return this.deps.barrier.status();
  }

  /** Creates the root key, keyring, audit key and root token. The shares and token are returned once. */
  async init(shares = 1, threshold = 1): Promise<InitResult> {
    const { barrier, tokens, meta, mode, keyFile } = this.deps;
    const created = await barrier.initialize(mode, shares, threshold);
    if (created.rootKey) {
      await writePrivateFile(keyFile, `${created.rootKey.toString('base64')}\n`);
      created.rootKey.fill(0);
    }
    const auditKey = randomBytes(32);
    await meta.put(AUDIT_KEY, barrier.encrypt(auditKey, AUDIT_KEY_AAD));
    this.deps.audit.setHmacKey(auditKey);
    const { token } = await tokens.create({
      policies: [ROOT_POLICY],
      displayName: 'root',
      bootstrapRoot: true,
    });
    return {
      rootToken: token,
      keys: (created.shares ?? []).map((s) => s.toString('base64')),
      shares: barrier.status().shares,
      threshold: barrier.status().threshold,
    };
  }

  /** File mode: unseals from the key file at start. */
  async unsealFromKeyFile(): Promise<void> {
    let text: string;
    try {
      text = (await readFile(this.deps.keyFile, 'utf8')).trim();
    } catch {
      throw new CustodyError(
        'UnsealKeyMissing',
        503,
        `The unseal key file ${this.deps.keyFile} cannot be read`,
        'Restore the key file from backup, or point --data-dir at the right directory.',
      );
    }
    await this.deps.barrier.unsealWithRootKey(Buffer.from(text, 'base64'));
    await this.loadAuditKey();
  }

  async submitShare(keyBase64: string): Promise<SealStatus> {
    if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(keyBase64)) {
      throw badRequest(
        'InvalidUnsealKey',
        'The unseal share is not base64',
        'Paste the share exactly as `operator init` printed it.',
      );
    }
    const status = await this.deps.barrier.submitShare(Buffer.from(keyBase64, 'base64'));
    if (!status.sealed) await this.loadAuditKey();
    return status;
  }

  /** Starts (or restarts) generating a new root token; needs the unseal quorum to complete. */
  startRootGeneration(): RootGenerationStatus {
    // Like Vault: an attempt in progress is not silently replaced (shares already given would be lost).
    if (this.rootGen) {
      throw conflict(
        'RootGenerationInProgress',
        'A root generation is already in progress',
        'Finish it with its nonce, or cancel it first (`custody operator generate-root --cancel`).',
      );
    }
    this.rootGen = { nonce: randomBytes(16).toString('hex'), parts: [] };
    return this.rootGenerationStatus();
  }

  cancelRootGeneration(): void {
    this.rootGen = null;
  }

  rootGenerationStatus(): RootGenerationStatus {
    const required = this.deps.barrier.status().threshold;
    return {
      started: this.rootGen !== null,
      nonce: this.rootGen?.nonce ?? null,
      progress: this.rootGen?.parts.length ?? 0,
      required,
    };
  }

  /**
   * Adds one unseal share (file mode: the key file's content). At the threshold the parts are
   * verified against the keyring and a new root token is created, returned once.
   */
  async submitRootGenerationKey(
    nonce: string,
    keyBase64: string,
  ): Promise<RootGenerationStatus & { rootToken?: string }> {
    const attempt = this.rootGen;
    if (!attempt || attempt.nonce !== nonce) {
      throw badRequest(
        'InvalidNonce',
        'No root generation is in progress with that nonce',
        'Start one with `custody operator generate-root --init`.',
      );
    }
    if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(keyBase64)) {
      throw badRequest(
        'InvalidUnsealKey',
        'The key is not base64',
        'Paste the share exactly as `operator init` printed it.',
      );
    }
    const part = Buffer.from(keyBase64, 'base64');
    if (!attempt.parts.some((p) => p.equals(part))) attempt.parts.push(part);
    const status = this.rootGenerationStatus();
    if (status.progress < status.required) return status;
    this.rootGen = null;
    if (!(await this.deps.barrier.verifyKeyParts(attempt.parts))) {
      throw badRequest(
        'InvalidUnsealKey',
        "The keys do not reconstruct this broker's root key",
        'Start again with shares from this installation.',
      );
    }
    const { token } = await this.deps.tokens.create({
      policies: [ROOT_POLICY],
      displayName: 'root',
      bootstrapRoot: true,
    });
    return {
      started: false,
      nonce: null,
      progress: status.progress,
      required: status.required,
      rootToken: token,
    };
  }

  resetUnsealProgress(): void {
    this.deps.barrier.resetUnsealProgress();
  }

  seal(): void {
    this.deps.barrier.seal();
  }

  rotate(): Promise<number> {
    return this.deps.barrier.rotate();
  }

  private async loadAuditKey(): Promise<void> {
    const blob = await this.deps.meta.get(AUDIT_KEY);
    if (!blob)
      throw new CustodyError('NotInitialized', 501, 'No audit key in storage', 'Initialize the broker.');
    this.deps.audit.setHmacKey(await this.deps.barrier.decrypt(blob, AUDIT_KEY_AAD));
  }
}
