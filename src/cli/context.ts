import type { Command } from 'commander';
import { ApiClient } from './api-client.js';
import { type GlobalOptions, resolveClientConfig } from './config.js';
import { type Format, Output } from './output.js';

const clients: ApiClient[] = [];

export function globalsOf(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals() as GlobalOptions;
}

export function outputOf(cmd: Command): Output {
  return new Output((globalsOf(cmd).format ?? 'table') as Format);
}

/** An API client configured from flags and CUSTODY_* variables; closed by main when the command ends. */
export async function clientOf(cmd: Command): Promise<ApiClient> {
  const client = await ApiClient.create(resolveClientConfig(globalsOf(cmd)));
  clients.push(client);
  return client;
}

export async function closeClients(): Promise<void> {
  await Promise.allSettled(clients.splice(0).map((c) => c.close()));
}

/** Adds the Examples section every command's --help ends with. */
export function examples(cmd: Command, lines: string[]): Command {
  return cmd.addHelpText('after', `\nExamples:\n${lines.map((l) => `  ${l}`).join('\n')}\n`);
}

/** Collects a repeatable option into an array. */
export const collect = (value: string, previous: string[] | undefined): string[] => [
  ...(previous ?? []),
  value,
];
