import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { pathOf } from '../api-client.js';
import * as A from '../args.js';
import { clientOf, collect, examples, outputOf } from '../context.js';
import { CliError, usageError } from '../errors.js';
import { dropTrailingNewline, promptHidden, readStdin, stdinIsTty } from '../input.js';
import type { Column } from '../output.js';

/** Wire shapes of the native API (snake_case, as returned). */
interface VersionMeta {
  env: string;
  name: string;
  version: string;
  seq: number;
  enabled: boolean;
  not_before: string | null;
  expires: string | null;
  content_type: string | null;
  tags: Record<string, string>;
  created_at: string;
  updated_at: string;
}
interface SecretValue extends VersionMeta {
  value: string;
}
interface SecretSummary extends VersionMeta {
  versions: number;
}
interface DeletedSecret extends SecretSummary {
  deleted_at: string;
  scheduled_purge_at: string;
}

const META_FIELDS = [
  'env',
  'name',
  'seq',
  'version',
  'enabled',
  'content_type',
  'tags',
  'not_before',
  'expires',
  'created_at',
  'updated_at',
];
const secretUrl = (ref: { env: string; name: string }) =>
  `/v1/secrets/${encodeURIComponent(ref.env)}/${pathOf(ref.name)}`;
const deletedUrl = (ref: { env: string; name: string }) =>
  `/v1/deleted-secrets/${encodeURIComponent(ref.env)}/${pathOf(ref.name)}`;

async function readValueFile(file: string, what: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new CliError(
      'FileUnreadable',
      `Cannot read ${what} ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
      'Check the path.',
    );
  }
}

/** The value to store and its default content type, from pairs, a file or stdin. */
async function valueToStore(
  items: string[],
  valueFile: string | undefined,
): Promise<{ value: string; contentType?: string }> {
  const fromStdin = items.includes('-');
  if (fromStdin && items.length > 1)
    throw usageError('`-` (value from stdin) cannot be combined with key=value pairs');
  if (valueFile && items.length > 0)
    throw usageError('--value-file cannot be combined with key=value pairs or `-`');
  if (valueFile) return { value: await readValueFile(valueFile, '--value-file') };
  if (fromStdin) {
    const text = stdinIsTty()
      ? await promptHidden('Value (input hidden): ')
      : dropTrailingNewline(await readStdin());
    return { value: text };
  }
  if (items.length === 0) {
    throw usageError(
      'No value given',
      'Give key=value pairs, key=@file, --value-file FILE, or - to read the value from stdin.',
    );
  }
  const obj: Record<string, string> = {};
  for (const item of items) {
    const [k, v] = A.pair(item, 'Each value');
    if (Object.hasOwn(obj, k)) throw usageError(`The key ${k} is given twice`, undefined, 'InvalidKeyValue');
    obj[k] = v.startsWith('@') ? await readValueFile(v.slice(1), `the file for ${k}`) : v;
  }
  return { value: JSON.stringify(obj), contentType: 'application/json' };
}

/** One field of a JSON object value. Never echoes the value in an error. */
function fieldOf(secret: SecretValue, field: string): string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(secret.value);
  } catch {
    parsed = undefined;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new CliError(
      'NotJsonObject',
      `${secret.env}/${secret.name} is not a JSON object, so it has no fields`,
      'Drop --field to print the whole value.',
    );
  }
  if (!Object.hasOwn(parsed, field)) {
    const keys = Object.keys(parsed).join(', ');
    throw new CliError(
      'FieldNotFound',
      `${secret.env}/${secret.name} has no field ${field}`,
      keys ? `Its fields: ${keys}.` : 'The object is empty.',
    );
  }
  const v = (parsed as Record<string, unknown>)[field];
  return typeof v === 'string' ? v : JSON.stringify(v);
}

const summaryColumns: Column<SecretSummary>[] = [
  { header: 'NAME', get: (s) => s.name },
  { header: 'LATEST', get: (s) => s.seq },
  { header: 'VERSIONS', get: (s) => s.versions },
  { header: 'ENABLED', get: (s) => s.enabled },
  { header: 'CONTENT TYPE', get: (s) => s.content_type },
  { header: 'EXPIRES', get: (s) => s.expires },
  { header: 'UPDATED', get: (s) => s.updated_at },
];

export function registerKv(program: Command): void {
  const kv = program
    .command('kv')
    .description('Versioned secrets: put, get, list, update, delete, recover, purge');
  examples(kv, [
    '$ custody kv put prod/db/credentials user=app password=@./password.txt',
    '$ custody kv get prod/db/credentials --field user',
    '$ custody kv list prod',
  ]);

  const put = kv
    .command('put')
    .description('Store a new version of a secret')
    .argument('<ENV/NAME>', 'the secret, e.g. prod/db/password')
    .argument(
      '[value...]',
      'key=value pairs (stored as a JSON object), key=@file (a field read from a file), or - (the raw value from stdin)',
    )
    .option('--value-file <file>', 'store the raw content of a file')
    .option('--content-type <type>', 'content type (default: application/json for key=value pairs)')
    .option('--tag <key=value>', 'tag the version (repeatable)', collect)
    .option(
      '--expires <time>',
      'RFC 3339 time or duration from now (30d) after which the version is unusable',
    )
    .option('--not-before <time>', 'RFC 3339 time or duration from now before which the version is unusable')
    .option('--disabled', 'store the version disabled')
    .option('--cas <n>', 'check-and-set: the version number you expect to be current (0 = must not exist)')
    .action(async (ref: string, items: string[], o, cmd: Command) => {
      const r = A.secretRef(ref);
      const tags = A.pairs(o.tag, '--tag');
      const body: Record<string, unknown> = {
        ...(tags ? { tags } : {}),
        ...(o.expires ? { expires: A.time(o.expires, '--expires') } : {}),
        ...(o.notBefore ? { not_before: A.time(o.notBefore, '--not-before') } : {}),
        ...(o.disabled ? { enabled: false } : {}),
        ...(o.cas !== undefined ? { cas: A.integer(o.cas, '--cas') } : {}),
      };
      const { value, contentType } = await valueToStore(items, o.valueFile);
      const ct = o.contentType ?? contentType;
      const client = await clientOf(cmd);
      const { body: meta } = await client.call<VersionMeta>('PUT', secretUrl(r), {
        body: { value, ...(ct ? { content_type: ct } : {}), ...body },
      });
      outputOf(cmd).object({ ...meta }, META_FIELDS);
    });
  examples(put, [
    '$ custody kv put prod/db/credentials user=app password=@./password.txt   # JSON object, a field from a file',
    '$ printf %s "$PASSWORD" | custody kv put prod/db/password -            # raw value from stdin',
    '$ custody kv put prod/tls/key --value-file key.pem --content-type application/x-pem-file',
    '$ custody kv put prod/api/key - --expires 90d --tag owner=ml-team < key.txt',
    '',
    'Values typed as key=value end up in your shell history: prefer `-` (stdin, one trailing',
    'newline is dropped; on a terminal you are prompted without echo) or key=@file / --value-file',
    '(stored byte for byte).',
  ]);

  const get = kv
    .command('get')
    .description('Print a secret value (latest version unless --version)')
    .argument('<ENV/NAME>', 'the secret')
    .option('--version <v>', 'a version number (1, 2, …) or version id')
    .option('--field <key>', 'print one field of a JSON object value')
    .action(async (ref: string, o, cmd: Command) => {
      const r = A.secretRef(ref);
      const client = await clientOf(cmd);
      const { body: secret } = await client.get<SecretValue>(secretUrl(r), { query: { version: o.version } });
      const out = outputOf(cmd);
      if (out.json) return out.printJson(secret);
      out.raw(`${o.field !== undefined ? fieldOf(secret, o.field) : secret.value}\n`);
    });
  examples(get, [
    '$ custody kv get prod/db/password',
    '$ custody kv get prod/db/credentials --field user',
    '$ custody kv get prod/db/password --version 1',
    '$ custody kv get prod/db/password --format json    # value and metadata',
  ]);

  const list = kv
    .command('list')
    .description('List the secrets of an environment (metadata only, never values)')
    .argument('<ENV>', 'the environment')
    .option('--prefix <prefix>', 'only names starting with this')
    .action(async (env: string, o, cmd: Command) => {
      A.envName(env);
      const client = await clientOf(cmd);
      const items: SecretSummary[] = [];
      let cursor: string | undefined;
      do {
        const { body } = await client.get<{ items: SecretSummary[]; next_cursor: string | null }>(
          `/v1/secrets/${encodeURIComponent(env)}`,
          { query: { prefix: o.prefix, cursor, limit: 1000 } },
        );
        items.push(...body.items);
        cursor = body.next_cursor ?? undefined;
      } while (cursor);
      outputOf(cmd).list({ items, next_cursor: null }, items, summaryColumns, `No secrets in ${env}.`);
    });
  examples(list, [
    '$ custody kv list prod',
    '$ custody kv list prod --prefix db/',
    '$ custody kv list prod --format json',
  ]);

  const versions = kv
    .command('versions')
    .description('List the versions of a secret (metadata only)')
    .argument('<ENV/NAME>', 'the secret')
    .action(async (ref: string, _o, cmd: Command) => {
      const r = A.secretRef(ref);
      const client = await clientOf(cmd);
      const { body } = await client.get<{ items: VersionMeta[] }>(
        `/v1/secret-versions/${encodeURIComponent(r.env)}/${pathOf(r.name)}`,
      );
      outputOf(cmd).list(body, body.items, [
        { header: 'SEQ', get: (v) => v.seq },
        { header: 'VERSION', get: (v) => v.version },
        { header: 'ENABLED', get: (v) => v.enabled },
        { header: 'NOT BEFORE', get: (v) => v.not_before },
        { header: 'EXPIRES', get: (v) => v.expires },
        { header: 'CONTENT TYPE', get: (v) => v.content_type },
        { header: 'TAGS', get: (v) => v.tags },
        { header: 'CREATED', get: (v) => v.created_at },
      ]);
    });
  examples(versions, ['$ custody kv versions prod/db/password']);

  const update = kv
    .command('update')
    .description("Change a version's attributes (no new version; latest unless --version)")
    .argument('<ENV/NAME>', 'the secret')
    .option('--version <v>', 'a version number or id')
    .option('--enabled <true|false>', 'enable or disable the version')
    .option('--expires <time|none>', 'RFC 3339 time, duration from now (30d), or none')
    .option('--not-before <time|none>', 'RFC 3339 time, duration from now, or none')
    .option('--content-type <type|none>', 'content type, or none')
    .option('--tag <key=value>', 'replace the tags (repeatable)', collect)
    .action(async (ref: string, o, cmd: Command) => {
      const r = A.secretRef(ref);
      const body: Record<string, unknown> = {};
      if (o.enabled !== undefined) body.enabled = A.boolean(o.enabled, '--enabled');
      if (o.expires !== undefined) body.expires = A.time(o.expires, '--expires', true);
      if (o.notBefore !== undefined) body.not_before = A.time(o.notBefore, '--not-before', true);
      if (o.contentType !== undefined) body.content_type = o.contentType === 'none' ? null : o.contentType;
      const tags = A.pairs(o.tag, '--tag');
      if (tags) body.tags = tags;
      if (Object.keys(body).length === 0) {
        throw usageError(
          'Nothing to update',
          'Give --enabled, --expires, --not-before, --content-type or --tag.',
        );
      }
      const client = await clientOf(cmd);
      const { body: meta } = await client.call<VersionMeta>('PATCH', secretUrl(r), {
        body,
        query: { version: o.version },
      });
      outputOf(cmd).object({ ...meta }, META_FIELDS);
    });
  examples(update, [
    '$ custody kv update prod/db/password --enabled false',
    '$ custody kv update prod/db/password --version 1 --expires 7d',
    '$ custody kv update prod/db/password --not-before none --tag owner=ml-team',
  ]);

  const del = kv
    .command('delete')
    .description('Soft-delete a secret (recoverable until its environment retention ends)')
    .argument('<ENV/NAME>', 'the secret')
    .action(async (ref: string, _o, cmd: Command) => {
      const r = A.secretRef(ref);
      const client = await clientOf(cmd);
      const { body } = await client.call<DeletedSecret>('DELETE', secretUrl(r));
      outputOf(cmd).result(
        body,
        `Deleted ${r.env}/${r.name}; recoverable until ${body.scheduled_purge_at} with \`custody kv recover ${r.env}/${r.name}\`.`,
      );
    });
  examples(del, ['$ custody kv delete prod/db/password', '$ custody kv list-deleted prod']);

  const recover = kv
    .command('recover')
    .description('Recover a soft-deleted secret with all its versions')
    .argument('<ENV/NAME>', 'the secret')
    .action(async (ref: string, _o, cmd: Command) => {
      const r = A.secretRef(ref);
      const client = await clientOf(cmd);
      const { body } = await client.post<SecretSummary>(deletedUrl(r));
      outputOf(cmd).result(
        body,
        `Recovered ${r.env}/${r.name} (${body.versions} version${body.versions === 1 ? '' : 's'}).`,
      );
    });
  examples(recover, ['$ custody kv recover prod/db/password']);

  const purge = kv
    .command('purge')
    .description('Purge a soft-deleted secret for good (refused under purge protection)')
    .argument('<ENV/NAME>', 'the secret (delete it first)')
    .action(async (ref: string, _o, cmd: Command) => {
      const r = A.secretRef(ref);
      const client = await clientOf(cmd);
      await client.call('DELETE', deletedUrl(r));
      outputOf(cmd).result({ env: r.env, name: r.name, purged: true }, `Purged ${r.env}/${r.name}.`);
    });
  examples(purge, ['$ custody kv delete prod/old/key && custody kv purge prod/old/key']);

  const listDeleted = kv
    .command('list-deleted')
    .description('List soft-deleted secrets awaiting purge')
    .argument('<ENV>', 'the environment')
    .action(async (env: string, _o, cmd: Command) => {
      A.envName(env);
      const client = await clientOf(cmd);
      const { body } = await client.get<{ items: DeletedSecret[] }>(
        `/v1/deleted-secrets/${encodeURIComponent(env)}`,
      );
      outputOf(cmd).list(
        body,
        body.items,
        [
          { header: 'NAME', get: (s) => s.name },
          { header: 'VERSIONS', get: (s) => s.versions },
          { header: 'DELETED', get: (s) => s.deleted_at },
          { header: 'PURGE AT', get: (s) => s.scheduled_purge_at },
        ],
        `No deleted secrets in ${env}.`,
      );
    });
  examples(listDeleted, ['$ custody kv list-deleted prod']);
}
