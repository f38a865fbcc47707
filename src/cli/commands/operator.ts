import type { Command } from 'commander';
import type { ApiClient } from '../api-client.js';
import * as A from '../args.js';
import { clientOf, examples, outputOf } from '../context.js';
import { CliError, usageError } from '../errors.js';
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

interface RootGenStatus {
  started: boolean;
  nonce: string | null;
  progress: number;
  required: number;
  root_token?: string;
}

/** Shares from the argument, stdin (one per line), or hidden prompts on a terminal (`count` of them). */
async function readShares(share: string | undefined, count: number, hint: string): Promise<string[]> {
  let shares: string[];
  if (share !== undefined && share !== '-') shares = [share];
  else if (share === '-' || !stdinIsTty()) {
    shares = (await readStdin())
      .split(/\r?\n/)
      .map((l) => l.trim())
      .filter(Boolean);
  } else {
    shares = [];
    for (let i = 0; i < Math.max(1, count); i++) {
      shares.push((await promptHidden(`Unseal share ${i + 1} of ${count} (input hidden): `)).trim());
    }
  }
  if (shares.length === 0 || shares.some((s) => s === '')) throw usageError('No unseal share given', hint);
  return shares;
}

/** Submits shares until the root token comes back or they run out. */
async function submitRootShares(client: ApiClient, nonce: string, shares: string[]): Promise<RootGenStatus> {
  let status: RootGenStatus | undefined;
  for (const key of shares) {
    ({ body: status } = await client.post<RootGenStatus>(
      '/v1/sys/generate-root/update',
      { nonce, key },
      { auth: false },
    ));
    if (status.root_token) break;
  }
  return status!;
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

  const generateRoot = operator
    .command('generate-root')
    .description('Make a new root token with the unseal quorum (when the old one is lost or revoked)')
    .argument(
      '[share]',
      '- reads shares from stdin, one per line (passing a share here puts it in shell history)',
    )
    .option('--init', 'start an attempt and print its nonce')
    .option('--nonce <nonce>', 'submit shares (stdin, one per line) to the attempt with this nonce')
    .option('--status', "show the attempt's progress")
    .option('--cancel', 'cancel the attempt')
    .action(async (share: string | undefined, o, cmd: Command) => {
      const modes = [o.init, o.nonce !== undefined, o.status, o.cancel].filter(Boolean).length;
      if (modes > 1) throw usageError('Give one of --init, --nonce, --status and --cancel');
      if ((o.init || o.status || o.cancel) && share !== undefined) {
        throw usageError('Shares go with --nonce N, or with no flag at all (start, submit, finish)');
      }
      const client = await clientOf(cmd);
      const out = outputOf(cmd);
      const url = '/v1/sys/generate-root/attempt';
      const progress = (s: RootGenStatus) =>
        s.started
          ? `Root generation in progress (nonce ${s.nonce}): ${s.progress} of ${s.required} shares submitted.`
          : 'No root generation in progress.';
      const printToken = (s: RootGenStatus) => {
        if (out.json) out.printJson(s);
        else out.raw(`${s.root_token}\n`);
        out.note(
          'WARNING: the new root token is shown only this once. Store it safely, and revoke it ' +
            '(`custody token revoke --self`) once you have made narrower tokens.',
        );
      };
      if (o.status) {
        const { body } = await client.get<RootGenStatus>(url, { auth: false });
        return out.result(body, progress(body));
      }
      if (o.cancel) {
        const { body } = await client.call<RootGenStatus>('DELETE', url, { auth: false });
        return out.result(body, 'Root generation cancelled.');
      }
      if (o.init) {
        const { body } = await client.post<RootGenStatus>(url, undefined, { auth: false });
        if (out.json) return out.printJson(body);
        out.raw(`${body.nonce}\n`);
        out.note(
          `Root generation started: ${body.required} share(s) needed. Submit them with ` +
            `\`custody operator generate-root --nonce ${body.nonce} - < share.txt\`.`,
        );
        return;
      }
      const hint = 'Pipe the unseal shares (file mode: <data-dir>/unseal.key) on stdin, one per line.';
      if (o.nonce !== undefined) {
        const { body: current } = await client.get<RootGenStatus>(url, { auth: false });
        const shares = await readShares(share, current.required - current.progress, hint);
        const status = await submitRootShares(client, o.nonce, shares);
        if (status.root_token) return printToken(status);
        return out.result(status, progress(status));
      }
      // One shot: start, submit every share, print the token; on failure leave no attempt behind.
      const { body: started } = await client.post<RootGenStatus>(url, undefined, { auth: false });
      let status: RootGenStatus;
      try {
        const shares = await readShares(share, started.required, hint);
        status = await submitRootShares(client, started.nonce!, shares);
      } catch (err) {
        await client.call('DELETE', url, { auth: false }).catch(() => {});
        throw err;
      }
      if (status.root_token) return printToken(status);
      await client.call('DELETE', url, { auth: false }).catch(() => {});
      throw new CliError(
        'NotEnoughShares',
        `${status.progress} of ${status.required} shares given: no root token was made`,
        `Pipe ${status.required} shares on stdin, one per line, or run the attempt step by step with --init and --nonce.`,
      );
    });
  examples(generateRoot, [
    '$ custody operator generate-root < <data-dir>/unseal.key               # file mode, one shot',
    '$ cat share-1.txt share-2.txt share-3.txt | custody operator generate-root  # shamir, one shot',
    '$ NONCE=$(custody operator generate-root --init)',
    '$ custody operator generate-root --nonce "$NONCE" - < share-1.txt      # each holder, in turn',
    '$ custody operator generate-root --status',
    '$ custody operator generate-root --cancel',
    '',
    'No token is needed: the unseal quorum authorizes it. The new root token goes to stdout once.',
  ]);
}
