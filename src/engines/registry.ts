import { awsS3Engine } from './aws-s3/index.js';
import { azureBlobEngine } from './azure-blob/index.js';
import type { EngineFactory } from './engine.js';
import { mlflowEngine } from './mlflow/index.js';
import { mysqlEngine } from './mysql/index.js';
import { postgresqlEngine } from './postgresql/index.js';

/** Every engine type the broker can mount, by `--type` name. */
export function engineFactories(): Record<string, EngineFactory<any, any>> {
  return {
    postgresql: postgresqlEngine,
    mysql: mysqlEngine,
    mlflow: mlflowEngine,
    'azure-blob': azureBlobEngine,
    'aws-s3': awsS3Engine,
  };
}
