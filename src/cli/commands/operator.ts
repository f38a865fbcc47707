import type { Command } from 'commander';
import * as A from '../args.js';
import { clientOf, examples, outputOf } from '../context.js';
import { usageError } from '../errors.js';
import { promptHidden, readStdin, stdinIsTty } from '../input.js';

interface SealStatus {
  initialized: boolean;
  sealed: boolean;
  mode: string | null;
  shares: number;
  threshold: number;
  progress: number;
  key_term: number | null;
}

interface Health {
  initialized: boolean;
  sealed: boolean;
  version: string;
  storage: string;
  unseal_mode: string | null;
  server_time: string;
}

function sealSentence(s: SealStatus): string {
  if (!s.initialized) return 'Not initialized: run `custody operator init`.';
  if (!s.sealed) return 'Unsealed.';
  return `Sealed: ${s.progress} of ${s.threshold} shares submitted.`;
}

export function registerOperator(program: Command): void {
  const operator = program.command('operator').description('Initialize, seal, unseal, rotate keys, status');
  examples(operator, ['$ custody operator status', '$ custody operator unseal - < share-1.txt']);

  const init = operator
    .command('init')
    .description(
      'Initialize a broker started with --unseal shamir: prints the unseal shares and root token once',
    )
    .option('--key-shares <n>', 'number of unseal shares to split the root key into', '5')
    .option('--key-threshold <n>', 'shares needed to unseal', '3')
    .action(async (o, cmd: Command) => {
      const body = {
        key_shares: A.integer(o.keyShares, '--key-shares', 2),
        key_threshold: A.integer(o.keyThreshold, '--key-threshold', 2),
      };
      const client = await clientOf(cmd);
      const { body: res } = await client.post<{
        root_token: string;
        keys: string[];
        key_shares: number;
        key_threshold: number;
      }>('/v1/sys/init', body, { auth: false });
      const out = outputOf(cmd);
      if (out.json) out.printJson(res);
      else {
        out.raw(
          `${res.keys.map((k, i) => `Unseal share ${i + 1}: ${k}`).join('\n')}\n\nRoot token: ${res.root_token}\n`,
        );
      }
      out.note(
        `WARNING: the ${res.key_shares} unseal shares and the root token are shown only this once. Store each share ` +
          `separately (different people or vaults); any ${res.key_threshold} of them unseal the broker. ` +
          'Revoke the root token once you have created narrower tokens. The broker is unsealed now.',
      );
    });
  examples(init, [
    '$ custody operator init --key-shares 5 --key-threshold 3',
    '$ custody operator init --key-shares 3 --key-threshold 2 --format json > init.json   # then split it up',
  ]);

  const unseal = operator
    .command('unseal')
    .description('Submit unseal shares (shamir mode): from stdin, or a hidden prompt on a terminal')
    .argument(
      '[share]',
      '- reads shares from stdin, one per line (passing a share here puts it in shell history)',
    )
    .option('--reset', 'discard the shares submitted so far')
    .action(async (share: string | undefined, o, cmd: Command) => {
      const client = await clientOf(cmd);
      const out = outputOf(cmd);
      if (o.reset) {
        const { body } = await client.post<SealStatus>('/v1/sys/unseal', { reset: true }, { auth: false });
        return out.result(body, `Unseal progress reset. ${sealSentence(body)}`);
      }
      let shares: string[];
      if (share !== undefined && share !== '-') shares = [share];
      else if (share === '-' || !stdinIsTty()) {
        shares = (await readStdin())
          .split(/\r?\n/)
          .map((l) => l.trim())
          .filter(Boolean);
      } else shares = [(await promptHidden('Unseal share (input hidden): ')).trim()];
      if (shares.length === 0 || shares.some((s) => s === '')) {
        throw usageError(
          'No unseal share given',
          'Pipe shares on stdin, one per line: custody operator unseal - < share.txt',
        );
      }
      let status: SealStatus | undefined;
      for (const s of shares) {
        ({ body: status } = await client.post<SealStatus>('/v1/sys/unseal', { key: s }, { auth: false }));
        if (!status.sealed) break;
      }
      out.result(status, sealSentence(status!));
    });
  examples(unseal, [
    '$ custody operator unseal                 # prompts for a share without echo',
    '$ custody operator unseal - < share-1.txt',
    '$ cat share-1.txt share-2.txt | custody operator unseal -',
  ]);

  const seal = operator
    .command('seal')
    .description('Seal the broker: drop every key from memory until unsealed again')
    .action(async (_o, cmd: Command) => {
      const client = await clientOf(cmd);
      const { body } = await client.post<SealStatus>('/v1/sys/seal');
      outputOf(cmd).result(
        body,
        body.mode === 'file'
          ? 'Sealed. Restart the broker to unseal it from its key file.'
          : 'Sealed. Unseal with `custody operator unseal`.',
      );
    });
  examples(seal, ['$ custody operator seal']);

  const status = operator
    .command('status')
    .description('Seal status and health of the broker')
    .action(async (_o, cmd: Command) => {
      const client = await clientOf(cmd);
      const [{ body: seal }, { body: health }] = await Promise.all([
        client.get<SealStatus>('/v1/sys/seal-status', { auth: false }),
        client.get<Health>('/v1/sys/health', { auth: false, accept: [501, 503] }),
      ]);
      outputOf(cmd).object({
        addr: client.config.addr,
        ...seal,
        version: health.version,
        storage: health.storage,
        server_time: health.server_time,
      });
    });
  examples(status, ['$ custody operator status', '$ custody operator status --format json | jq .sealed']);

  const rotate = operator
    .command('rotate')
    .description('Add a new data key; new writes use it, older data stays readable')
    .action(async (_o, cmd: Command) => {
      const client = await clientOf(cmd);
      const { body } = await client.post<{ key_term: number }>('/v1/sys/rotate');
      outputOf(cmd).result(
        body,
        `Rotated: new writes use key term ${body.key_term}; older data stays readable.`,
      );
    });
  examples(rotate, ['$ custody operator rotate']);
}
