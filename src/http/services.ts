import type { AccessService } from '../access/access-service.js';
import type { IdentityService } from '../auth/identity-service.js';
import type { AuthMethodService } from '../auth/methods/auth-method-service.js';
import type { TokenService } from '../auth/token-service.js';
import type { AzureDoor } from '../compat/azure/door.js';
import type { EngineService } from '../engines/engine-service.js';
import type { KvService } from '../kv/kv-service.js';
import type { LeaseService } from '../leases/lease-service.js';
import type { OperatorService } from '../operator/operator-service.js';
import type { Pipeline } from '../pipeline/pipeline.js';
import type { Storage } from '../storage/storage.js';
import type { Metrics } from '../telemetry/metrics.js';

/** What the HTTP adapters may call. */
export interface Services {
  pipeline: Pipeline;
  kv: KvService;
  tokens: TokenService;
  identities: IdentityService;
  authMethods: AuthMethodService;
  access: AccessService;
  engines: EngineService;
  leases: LeaseService;
  operator: OperatorService;
  storage: Storage;
  metrics: Metrics;
  version: string;
  /** The Azure Key Vault front door's settings and backup sealer (defaults when absent). */
  azure?: AzureDoor;
}
