import type { EngineFactory } from './engine.js';

/** Every engine type the broker can mount, by `--type` name. */
export function engineFactories(): Record<string, EngineFactory<any, any>> {
  return {};
}
