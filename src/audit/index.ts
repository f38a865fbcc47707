export {
  type AuditMetrics,
  type Auditor,
  AuditService,
  type AuditServiceOptions,
  auditUnavailable,
} from './audit-service.js';
export {
  type ChainState,
  ChainVerifier,
  canonicalJson,
  chainStateFromLine,
  entryHash,
  GENESIS_HASH,
  SinkChain,
  type TamperReason,
  type VerifyOptions,
  type VerifyResult,
  verifyChain,
} from './chain.js';
export {
  type AuditAuth,
  type AuditEntry,
  type AuditEntryType,
  type AuditInput,
  type AuditOutcome,
  type AuditRecord,
  buildRecord,
  HMAC_PREFIX,
  hmacValue,
  isSensitiveKey,
  OMITTED_SEALED,
} from './entry.js';
export { FileSink, type FileSinkStats } from './file-sink.js';
export { MemorySink } from './memory-sink.js';
export type { AuditSink } from './sink.js';
export { StdoutSink } from './stdout-sink.js';
export { verifyAuditFile } from './verify.js';
