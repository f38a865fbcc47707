import { type Command, Option } from 'commander';
import * as A from '../args.js';
import { shellQuote } from '../config.js';
import { clientOf, examples, outputOf } from '../context.js';
import { usageError } from '../errors.js';
import { Output } from '../output.js';

/** Wire shapes of the native API (snake_case, as returned). */
interface Issued {
  lease_id: string;
  username: string;
  password: string;
  expires_at: string;
  max_expires_at: string;
  lease_duration: number;
  renewable: boolean;
  data: Record<string, string>;
}
interface StaticCreds {
  username: string;
  password: string;
  last_rotated_at: string | null;
  rotation_period: number | null;
}
interface Lease {
  lease_id: string;
  env: string;
  engine: string;
  role: string;
  identity_id: string | null;
  username: string;
  issued_at: string;
  expires_at: string;
  max_expires_at: string;
  last_renewed_at: string | null;
  renewable: boolean;
  ttl: number;
  state: string;
  attempts: number;
  last_error: string | null;
  next_attempt_at: string | null;
  revoked_at: string | null;
}

const STATES = ['creating', 'active', 'revoking', 'revoked', 'revoke-failed'] as const;
const CREDS_FORMATS = ['table', 'json', 'env'] as const;
const credsUrl = (kind: 'creds' | 'static-creds', parts: string[]) =>
  `/v1/${kind}/${parts.map(encodeURIComponent).join('/')}`;

/** The env-variable prefix for an engine's credentials, from what the engine handed back. */
export function envPrefixOf(data: Record<string, string>, engine: string): string {
  const url = data.connection_url ?? '';
  if (/^postgres(ql)?:/i.test(url)) return 'PG';
  if (/^(mysql|mariadb):/i.test(url)) return 'MYSQL';
  if ('MLFLOW_TRACKING_URI' in data) return 'MLFLOW';
  return engine.toUpperCase().replace(/[^A-Z0-9]+/g, '_');
}

/**
 * `PREFIX_USERNAME=…` lines, quoted for a POSIX shell when needed (`eval "$(…)"`, `set -a; . file`).
 * Data fields already named like variables (MLFLOW_TRACKING_URI) are kept as they are.
 */
export function envLines(issued: Issued | StaticCreds, prefix: string): string {
  const vars: [string, string][] = [];
  const p = prefix ? `${prefix}_` : '';
  vars.push([`${p}USERNAME`, issued.username], [`${p}PASSWORD`, issued.password]);
  if ('lease_id' in issued)
    vars.push([`${p}LEASE_ID`, issued.lease_id], [`${p}EXPIRES_AT`, issued.expires_at]);
  const data = 'data' in issued ? issued.data : {};
  for (const [k, v] of Object.entries(data)) {
    vars.push([/^[A-Z][A-Z0-9_]*$/.test(k) ? k : `${p}${k.toUpperCase().replace(/[^A-Z0-9]+/g, '_')}`, v]);
  }
  if ('MLFLOW_TRACKING_URI' in data) vars.push(['MLFLOW_TRACKING_PASSWORD', issued.password]);
  const seen = new Set<string>();
  return vars
    .filter(([k]) => !seen.has(k) && seen.add(k))
    .map(([k, v]) => `${k}=${shellQuote(v)}\n`)
    .join('');
}

/** `--format table|json|env` on the creds commands (the other commands take table|json). */
function credsFormat(cmd: Command): 'table' | 'json' | 'env' {
  return (cmd.optsWithGlobals().format ?? 'table') as 'table' | 'json' | 'env';
}

export function registerCreds(program: Command): void {
  const creds = program.command('creds').description('Credentials from engines: dynamic (leased) and static');
  examples(creds, [
    '$ custody creds issue prod/warehouse/reader',
    '$ eval "$(custody creds issue prod/warehouse/reader --format env)"',
    '$ custody creds static prod/warehouse/etl',
  ]);
  const formatOption = () =>
    new Option(
      '--format <format>',
      'output: table (key: value), json (the API response) or env (VAR=value lines)',
    ).choices(CREDS_FORMATS);

  const issue = creds
    .command('issue')
    .description('Issue new credentials under a lease; they stop working when it ends or is revoked')
    .argument('<ENV/ENGINE/ROLE>', 'the role, e.g. prod/warehouse/reader')
    .option('--ttl <duration>', "lease lifetime (default: the role's ttl; capped at its max ttl)")
    .option('--env-prefix <prefix>', 'with --format env: the variable prefix (default PG, MYSQL or MLFLOW)')
    .addOption(formatOption())
    .action(async (ref: string, o, cmd: Command) => {
      const parts = A.ref(ref, 'ENV/ENGINE/ROLE', 'prod/warehouse/reader');
      const format = credsFormat(cmd);
      if (o.envPrefix !== undefined && format !== 'env')
        throw usageError('--env-prefix goes with --format env');
      if (o.envPrefix !== undefined && !/^[A-Za-z_][A-Za-z0-9_]*$|^$/.test(o.envPrefix)) {
        throw usageError('--env-prefix must be a variable name prefix', 'Example: --env-prefix DB.');
      }
      const body = o.ttl !== undefined ? { ttl: A.duration(o.ttl, '--ttl') } : {};
      const client = await clientOf(cmd);
      const { body: issued } = await client.post<Issued>(credsUrl('creds', parts), body);
      const out = new Output(format === 'json' ? 'json' : 'table');
      if (format === 'json') return out.printJson(issued);
      if (format === 'env')
        return out.raw(envLines(issued, o.envPrefix ?? envPrefixOf(issued.data, parts[1])));
      out.object({
        lease_id: issued.lease_id,
        username: issued.username,
        password: issued.password,
        expires_at: issued.expires_at,
        max_expires_at: issued.max_expires_at,
        renewable: issued.renewable,
        ...issued.data,
      });
      out.note(
        `Renew with \`custody lease renew ${issued.lease_id}\`; revoke with \`custody lease revoke ${issued.lease_id}\`.`,
      );
    });
  examples(issue, [
    '$ custody creds issue prod/warehouse/reader --ttl 30m',
    '$ custody creds issue prod/warehouse/reader --format json | jq -r .data.connection_url',
    '$ eval "$(custody creds issue prod/warehouse/reader --format env)"; psql "$PG_CONNECTION_URL"   # PGPASSWORD=$PG_PASSWORD',
    '$ custody creds issue prod/warehouse/reader --format env --env-prefix DB > .env',
    '$ eval "$(custody creds issue prod/mlflow/trainer --format env)"   # MLFLOW_TRACKING_URI/_USERNAME/_PASSWORD',
    '',
    'The password is printed once. env lines: PREFIX_USERNAME, PREFIX_PASSWORD, PREFIX_LEASE_ID,',
    'PREFIX_EXPIRES_AT and the engine data (PREFIX_CONNECTION_URL, …; for MLflow also MLFLOW_TRACKING_*).',
  ]);

  const staticCreds = creds
    .command('static')
    .description("Print a static role's current user name and password")
    .argument('<ENV/ENGINE/ROLE>', 'the static role')
    .option('--env-prefix <prefix>', 'with --format env: the variable prefix (default: the engine name)')
    .addOption(formatOption())
    .action(async (ref: string, o, cmd: Command) => {
      const parts = A.ref(ref, 'ENV/ENGINE/ROLE', 'prod/warehouse/etl');
      const format = credsFormat(cmd);
      if (o.envPrefix !== undefined && format !== 'env')
        throw usageError('--env-prefix goes with --format env');
      const client = await clientOf(cmd);
      const { body } = await client.get<StaticCreds>(credsUrl('static-creds', parts));
      const out = new Output(format === 'json' ? 'json' : 'table');
      if (format === 'json') return out.printJson(body);
      if (format === 'env') return out.raw(envLines(body, o.envPrefix ?? envPrefixOf({}, parts[1])));
      out.object({ ...body });
    });
  examples(staticCreds, [
    '$ custody creds static prod/warehouse/etl',
    '$ custody creds static prod/warehouse/etl --format json | jq -r .password',
    '$ eval "$(custody creds static prod/warehouse/etl --format env --env-prefix PG)"',
  ]);
}

const LEASE_FIELDS = [
  'lease_id',
  'state',
  'env',
  'engine',
  'role',
  'username',
  'identity_id',
  'issued_at',
  'expires_at',
  'max_expires_at',
  'ttl',
  'renewable',
  'last_renewed_at',
  'revoked_at',
  'attempts',
  'last_error',
  'next_attempt_at',
];

export function registerLease(program: Command): void {
  const lease = program
    .command('lease')
    .description('Leases of issued credentials: look up, renew, revoke, list');
  examples(lease, [
    '$ custody lease list --prefix prod/warehouse/',
    '$ custody lease renew prod/warehouse/reader/AbC… --increment 1h',
    '$ custody lease revoke prod/warehouse/reader/AbC…',
  ]);

  const lookup = lease
    .command('lookup')
    .description('Show a lease')
    .argument('<LEASE_ID>', 'the lease id (ENV/ENGINE/ROLE/…)')
    .action(async (id: string, _o, cmd: Command) => {
      const client = await clientOf(cmd);
      const { body } = await client.post<Lease>('/v1/leases/lookup', { lease_id: id });
      outputOf(cmd).object({ ...body }, LEASE_FIELDS);
    });
  examples(lookup, ['$ custody lease lookup prod/warehouse/reader/AbC…']);

  const renew = lease
    .command('renew')
    .description("Extend a lease (never past the role's max TTL)")
    .argument('<LEASE_ID>', 'the lease id')
    .option('--increment <duration>', "new lifetime from now (default: the role's ttl)")
    .action(async (id: string, o, cmd: Command) => {
      const increment = o.increment !== undefined ? A.duration(o.increment, '--increment') : undefined;
      const client = await clientOf(cmd);
      const { body } = await client.post<Lease & { capped: boolean }>('/v1/leases/renew', {
        lease_id: id,
        ...(increment !== undefined ? { increment } : {}),
      });
      const out = outputOf(cmd);
      out.object({ ...body }, ['capped', ...LEASE_FIELDS]);
      if (body.capped && !out.json) {
        out.note(
          `warning: capped by the role's max TTL: the lease ends at ${body.max_expires_at} and cannot be renewed ` +
            'past it. Issue new credentials before then.',
        );
      }
    });
  examples(renew, [
    '$ custody lease renew prod/warehouse/reader/AbC…',
    '$ custody lease renew prod/warehouse/reader/AbC… --increment 1h',
    '',
    'When the max TTL cut the renewal short, `capped` is true and a warning says until when the lease lasts.',
  ]);

  const revoke = lease
    .command('revoke')
    .description('Revoke a lease now, or every lease under a prefix or of an identity')
    .argument('[LEASE_ID]', 'the lease id')
    .option('--prefix <prefix>', 'every unfinished lease under ENV/ENGINE[/ROLE]/')
    .option('--identity <ref>', 'every unfinished lease of an identity (id or ENV/NAME)')
    .option('--force', 'mark revoked even when the backend cannot be reached (the user may be left behind)')
    .action(async (id: string | undefined, o, cmd: Command) => {
      const many = o.prefix !== undefined || o.identity !== undefined;
      if (id !== undefined && many) throw usageError('Give a lease id, or --prefix / --identity, not both');
      if (id === undefined && !many) {
        throw usageError(
          'Give a lease id, --prefix or --identity',
          'Example: custody lease revoke --prefix prod/warehouse/',
        );
      }
      const client = await clientOf(cmd);
      const out = outputOf(cmd);
      const force = o.force ? { force: true } : {};
      const leftBehindNote = (items: string[]) => {
        if (!items.length || out.json) return;
        out.note(
          `warning: --force skipped the backend; these may still exist there and must be removed by hand:\n${items
            .map((l) => `  ${l}`)
            .join('\n')}`,
        );
      };
      if (id !== undefined) {
        const { body } = await client.post<Lease & { left_behind: string | null }>('/v1/leases/revoke', {
          lease_id: id,
          ...force,
        });
        const sentence =
          body.state === 'revoked'
            ? `Revoked ${body.lease_id}.`
            : `Revocation of ${body.lease_id} is ${body.state}${body.last_error ? ` (${body.last_error})` : ''}; ` +
              'the broker keeps retrying. Use --force to give up on the backend.';
        out.result(body, sentence);
        leftBehindNote(body.left_behind ? [body.left_behind] : []);
        return;
      }
      const { body } = await client.post<{
        leases: string[];
        states: Record<string, number>;
        left_behind: string[];
      }>('/v1/leases/revoke-prefix', {
        ...(o.prefix !== undefined ? { prefix: o.prefix } : {}),
        ...(o.identity !== undefined ? { identity: o.identity } : {}),
        ...force,
      });
      const states = Object.entries(body.states)
        .map(([s, n]) => `${n} ${s}`)
        .join(', ');
      out.result(
        body,
        `${body.leases.length} lease${body.leases.length === 1 ? '' : 's'} revoked${states ? ` (${states})` : ''}.`,
      );
      leftBehindNote(body.left_behind);
    });
  examples(revoke, [
    '$ custody lease revoke prod/warehouse/reader/AbC…',
    '$ custody lease revoke --prefix prod/warehouse/reader/',
    '$ custody lease revoke --identity prod/trainer',
    '$ custody lease revoke prod/warehouse/reader/AbC… --force   # the database is gone for good',
    '',
    '--force marks leases revoked without reaching the backend; the users it could not remove are listed,',
    'so you can drop them by hand.',
  ]);

  const list = lease
    .command('list')
    .description('List leases under a prefix')
    .requiredOption('--prefix <prefix>', 'ENV, ENV/ENGINE/ or ENV/ENGINE/ROLE/')
    .addOption(new Option('--state <state>', 'only leases in this state').choices(STATES))
    .option('--identity <ref>', 'only leases of this identity (id or ENV/NAME)')
    .option('--limit <n>', 'at most this many, newest first (default 100, at most 10000)')
    .action(async (o, cmd: Command) => {
      const limit = o.limit !== undefined ? A.integer(o.limit, '--limit', 1) : undefined;
      const client = await clientOf(cmd);
      const { body } = await client.get<{ items: Lease[] }>('/v1/leases', {
        query: { prefix: o.prefix, state: o.state, identity: o.identity, limit },
      });
      outputOf(cmd).list(
        body,
        body.items,
        [
          { header: 'LEASE ID', get: (l) => l.lease_id },
          { header: 'STATE', get: (l) => l.state },
          { header: 'USERNAME', get: (l) => l.username },
          { header: 'IDENTITY', get: (l) => l.identity_id },
          { header: 'EXPIRES', get: (l) => l.expires_at },
          { header: 'LAST ERROR', get: (l) => l.last_error },
        ],
        `No leases under ${o.prefix}.`,
      );
    });
  examples(list, [
    '$ custody lease list --prefix prod/warehouse/',
    '$ custody lease list --prefix prod --state revoke-failed',
    '$ custody lease list --prefix prod/ --identity prod/trainer --limit 20',
  ]);
}
