import type { EngineFactory } from '../engine.js';
import {
  type MlflowConfig,
  type MlflowRole,
  parseMlflowConfig,
  parseMlflowRole,
  redactMlflowConfig,
} from './config.js';
import { MlflowEngine } from './engine.js';

export type { MlflowConfig, MlflowPermission, MlflowRole } from './config.js';
export { MlflowEngine, type MlflowRevocation } from './engine.js';

/** `mlflow`: dynamic users on an MLflow tracking server running the basic-auth app. */
export const mlflowEngine: EngineFactory<MlflowConfig, MlflowRole> = {
  type: 'mlflow',
  parseConfig: parseMlflowConfig,
  parseRole: parseMlflowRole,
  open: (config) => new MlflowEngine(config),
  redactConfig: redactMlflowConfig,
};
