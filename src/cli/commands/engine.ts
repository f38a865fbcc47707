import type { Command } from 'commander';
import * as A from '../args.js';
import { clientOf, collect, examples, outputOf } from '../context.js';
import { usageError } from '../errors.js';
import { credentialInput, readTextFile } from '../input.js';
import type { Output } from '../output.js';

/** Wire shapes of the native API (snake_case, as returned). */
interface Engine {
  env: string;
  name: string;
  type: string;
  config: Record<string, unknown>;
  created_at: string;
  updated_at: string;
}
interface EngineRole {
  env: string;
  engine: string;
  name: string;
  kind: string;
  config: Record<string, unknown>;
  ttl: number;
  max_ttl: number;
  rotation_period: number | null;
  last_rotated_at: string | null;
}

const TYPES = ['postgresql', 'mysql', 'mlflow'] as const;
const MLFLOW_PERMISSIONS = ['READ', 'EDIT', 'MANAGE'] as const;
const ROLE_FIELDS = ['env', 'engine', 'name', 'kind', 'ttl', 'max_ttl', 'rotation_period', 'last_rotated_at'];

const enc = encodeURIComponent;
const engineUrl = (env: string, engine?: string) =>
  `/v1/engines/${enc(env)}${engine === undefined ? '' : `/${enc(engine)}`}`;
const roleUrl = ([env, engine, role]: string[], kind: 'roles' | 'static-roles' = 'roles') =>
  `${engineUrl(env, engine)}/${kind}/${enc(role)}`;

/** An engine with its (password-free) config spread out, one setting per line. */
const engineRows = (e: Engine) => ({
  env: e.env,
  name: e.name,
  type: e.type,
  ...e.config,
  created_at: e.created_at,
  updated_at: e.updated_at,
});
const roleRows = (r: EngineRole) => ({
  ...Object.fromEntries(ROLE_FIELDS.map((f) => [f, (r as any)[f]])),
  ...Object.fromEntries(
    Object.entries(r.config).map(([k, v]) => [k, Array.isArray(v) ? v.map(grantCell) : v]),
  ),
});
const grantCell = (g: unknown) =>
  g && typeof g === 'object' ? Object.values(g as Record<string, unknown>).join('=') : g;

/** json: the API response as is; table: one setting per line. */
function display<T extends Engine | EngineRole>(
  out: Output,
  obj: T,
  rows: (o: T) => Record<string, unknown>,
): void {
  if (out.json) out.printJson(obj);
  else out.object(rows(obj));
}

/**
 * `--config key=value` → an engine config field: `true`/`false` and whole numbers become JSON
 * booleans and numbers, `@file` the file's text (a PEM bundle), anything else stays a string.
 */
async function configValue(key: string, value: string): Promise<unknown> {
  if (value.startsWith('@')) return readTextFile(value.slice(1), `the file for --config ${key}`);
  if (value === 'true') return true;
  if (value === 'false') return false;
  if (/^-?\d+$/.test(value) && Number.isSafeInteger(Number(value))) return Number(value);
  return value;
}

/**
 * SQL statements from a file: `;`-separated when the file has a `;` outside quotes (then they may
 * span lines), else one per line. Blank lines and `--` comment lines are dropped; `'…'`, `"…"`,
 * `` `…` `` and `$tag$…$tag$` bodies are kept whole.
 */
export function splitStatements(text: string): string[] {
  const src = text
    .split(/\r?\n/)
    .filter((l) => !/^\s*--/.test(l))
    .join('\n');
  const parts: string[] = [];
  let start = 0;
  let i = 0;
  while (i < src.length) {
    const ch = src[i];
    if (ch === "'" || ch === '"' || ch === '`') {
      const close = src.indexOf(ch, i + 1);
      i = close < 0 ? src.length : close + 1;
    } else if (ch === '$' && /^\$[A-Za-z_]*\$/.test(src.slice(i))) {
      const tag = /^\$[A-Za-z_]*\$/.exec(src.slice(i))![0];
      const close = src.indexOf(tag, i + tag.length);
      i = close < 0 ? src.length : close + tag.length;
    } else if (ch === ';') {
      parts.push(src.slice(start, i));
      start = ++i;
    } else i++;
  }
  const statements = parts.length > 0 ? [...parts, src.slice(start)] : src.split('\n');
  return statements.map((s) => s.trim()).filter(Boolean);
}

async function statementsFrom(file: string | undefined, flag: string): Promise<string[] | undefined> {
  if (file === undefined) return undefined;
  const statements = splitStatements(await readTextFile(file, flag));
  if (statements.length === 0) throw usageError(`${flag} ${file} holds no statements`);
  return statements;
}

/** Repeated `--experiment ID=READ` / `--model NAME=EDIT` → MLflow role grants. */
function grants(list: string[] | undefined, flag: string, key: 'id' | 'name') {
  if (!list?.length) return undefined;
  return list.map((item) => {
    const eq = item.lastIndexOf('=');
    if (eq <= 0) {
      throw usageError(
        `${flag} must be ${key === 'id' ? 'ID' : 'NAME'}=PERMISSION`,
        `Example: ${flag} ${key === 'id' ? '12' : 'churn'}=READ (READ, EDIT or MANAGE).`,
        'InvalidKeyValue',
      );
    }
    return {
      [key]: item.slice(0, eq),
      permission: A.oneOf(item.slice(eq + 1), MLFLOW_PERMISSIONS, `The permission in ${flag}`),
    };
  });
}

export function registerEngine(program: Command): void {
  const engine = program
    .command('engine')
    .description('Secrets engines: database and MLflow backends that mint short-lived credentials');
  examples(engine, [
    '$ custody engine configure prod/warehouse --type postgresql --connection-url postgres://db:5432/app \\',
    '    --username custody_admin --password-file admin.pw',
    "$ custody engine role write prod/warehouse/reader --ttl 1h --grant 'SELECT ON ALL TABLES IN SCHEMA public'",
    '$ custody creds issue prod/warehouse/reader',
  ]);

  const configure = engine
    .command('configure')
    .description('Configure an engine (the broker tests the connection before saving it)')
    .argument('<ENV/ENGINE>', 'the engine mount, e.g. prod/warehouse')
    .requiredOption('--type <type>', `engine type: ${TYPES.join(', ')}`)
    .requiredOption(
      '--connection-url <url>',
      'the backend URL without credentials (mlflow: the tracking URI)',
    )
    .option('--username <user>', 'the admin user Custody connects as')
    .option('--password-file <file>', "read the admin user's password from a file")
    .option('--password <->', "- reads the admin user's password from stdin (or a hidden prompt)")
    .option(
      '--config <key=value>',
      'another config field (repeatable): max_connections=4, verify_tls=false, ca_pem=@ca.pem',
      collect,
    )
    .action(async (ref: string, o, cmd: Command) => {
      const [env, name] = A.ref(ref, 'ENV/ENGINE', 'prod/warehouse');
      const type = A.oneOf(o.type, TYPES, '--type');
      const password = await credentialInput({
        file: o.passwordFile,
        dash: o.password,
        fileFlag: '--password-file',
        dashFlag: '--password',
        what: 'the password',
        keepSpaces: true,
      });
      const config: Record<string, unknown> = {
        [type === 'mlflow' ? 'tracking_uri' : 'connection_url']: o.connectionUrl,
        ...(o.username !== undefined ? { username: o.username } : {}),
        ...(password !== undefined ? { password } : {}),
      };
      for (const item of o.config ?? []) {
        const [k, v] = A.pair(item, '--config');
        if (Object.hasOwn(config, k)) {
          throw usageError(`--config ${k} repeats a setting given already`, undefined, 'InvalidKeyValue');
        }
        config[k] = await configValue(k, v);
      }
      const client = await clientOf(cmd);
      const { body } = await client.call<Engine>('PUT', engineUrl(env, name), { body: { type, config } });
      display(outputOf(cmd), body, engineRows);
    });
  examples(configure, [
    '$ custody engine configure prod/warehouse --type postgresql --connection-url postgres://db:5432/app \\',
    '    --username custody_admin --password-file admin.pw --config max_connections=8',
    '$ printf %s "$ADMIN_PW" | custody engine configure prod/shop --type mysql \\',
    '    --connection-url "mysql://db:3306/shop?ssl-mode=verify_identity" --username custody --password -',
    '$ custody engine configure prod/mlflow --type mlflow --connection-url https://mlflow.internal \\',
    '    --username admin --password-file mlflow.pw --config ca_pem=@mlflow-ca.pem',
    '',
    'The password is read from a file or stdin only, never from the command line; it is never shown again.',
    'Afterwards, `custody engine rotate-root` changes it so that only Custody knows it.',
  ]);

  const list = engine
    .command('list')
    .description("List an environment's engines")
    .argument('<ENV>', 'the environment')
    .action(async (env: string, _o, cmd: Command) => {
      A.envName(env);
      const client = await clientOf(cmd);
      const { body } = await client.get<{ items: Engine[] }>(engineUrl(env));
      outputOf(cmd).list(
        body,
        body.items,
        [
          { header: 'NAME', get: (e) => e.name },
          { header: 'TYPE', get: (e) => e.type },
          { header: 'URL', get: (e) => e.config.connection_url ?? e.config.tracking_uri },
          { header: 'USERNAME', get: (e) => e.config.username },
          { header: 'UPDATED', get: (e) => e.updated_at },
        ],
        `No engines in ${env}.`,
      );
    });
  examples(list, ['$ custody engine list prod']);

  const show = engine
    .command('show')
    .description('Show an engine (never its password)')
    .argument('<ENV/ENGINE>', 'the engine')
    .action(async (ref: string, _o, cmd: Command) => {
      const [env, name] = A.ref(ref, 'ENV/ENGINE', 'prod/warehouse');
      const client = await clientOf(cmd);
      const { body } = await client.get<Engine>(engineUrl(env, name));
      display(outputOf(cmd), body, engineRows);
    });
  examples(show, [
    '$ custody engine show prod/warehouse',
    '$ custody engine show prod/warehouse --format json',
  ]);

  const remove = engine
    .command('remove')
    .description('Remove an engine and its roles (refused while it has unrevoked leases)')
    .argument('<ENV/ENGINE>', 'the engine')
    .action(async (ref: string, _o, cmd: Command) => {
      const [env, name] = A.ref(ref, 'ENV/ENGINE', 'prod/warehouse');
      const client = await clientOf(cmd);
      await client.call('DELETE', engineUrl(env, name));
      outputOf(cmd).result({ env, name, removed: true }, `Removed the engine ${env}/${name} and its roles.`);
    });
  examples(remove, [
    '$ custody lease revoke --prefix prod/warehouse/ && custody engine remove prod/warehouse',
  ]);

  const rotateRoot = engine
    .command('rotate-root')
    .description("Change the engine's admin password to one only Custody knows")
    .argument('<ENV/ENGINE>', 'the engine')
    .action(async (ref: string, _o, cmd: Command) => {
      const [env, name] = A.ref(ref, 'ENV/ENGINE', 'prod/warehouse');
      const client = await clientOf(cmd);
      const { body } = await client.post<Engine>(`${engineUrl(env, name)}/rotate-root`);
      const out = outputOf(cmd);
      display(out, body, engineRows);
      if (!out.json)
        out.note(
          `The password of ${String(body.config.username ?? 'the admin user')} was changed; the old one no longer works ` +
            'and the new one is not shown anywhere.',
        );
    });
  examples(rotateRoot, ['$ custody engine rotate-root prod/warehouse']);

  registerEngineRoles(engine);
  registerStaticRoles(engine);
}

function registerEngineRoles(engine: Command): void {
  const role = engine.command('role').description('Dynamic roles: what each issued credential may do');
  examples(role, [
    "$ custody engine role write prod/warehouse/reader --ttl 1h --grant 'SELECT ON ALL TABLES IN SCHEMA public'",
    '$ custody engine role list prod/warehouse',
  ]);

  const write = role
    .command('write')
    .description('Create or replace a dynamic role')
    .argument('<ENV/ENGINE/ROLE>', 'the role, e.g. prod/warehouse/reader')
    .option('--ttl <duration>', 'default lease lifetime (e.g. 1h)')
    .option('--max-ttl <duration>', 'longest lease life across renewals (e.g. 24h)')
    .option(
      '--creation-statements <file>',
      'sql: statements creating the user ({{name}}, {{password}}, {{expiration}})',
    )
    .option('--revocation-statements <file>', 'sql: statements removing the user ({{name}})')
    .option('--renew-statements <file>', 'sql: statements extending the user ({{name}}, {{expiration}})')
    .option(
      '--grant <grant>',
      "sql: a grant, e.g. 'SELECT ON ALL TABLES IN SCHEMA public' (repeatable)",
      collect,
    )
    .option('--username-template <template>', 'how user names are built, e.g. custody-{{role}}-{{random}}')
    .option(
      '--experiment <ID=PERMISSION>',
      'mlflow: experiment id and READ, EDIT or MANAGE (repeatable)',
      collect,
    )
    .option(
      '--model <NAME=PERMISSION>',
      'mlflow: registered model and READ, EDIT or MANAGE (repeatable)',
      collect,
    )
    .action(async (ref: string, o, cmd: Command) => {
      const parts = A.ref(ref, 'ENV/ENGINE/ROLE', 'prod/warehouse/reader');
      const sql = [o.creationStatements, o.revocationStatements, o.renewStatements, o.grant].some(
        (v) => v !== undefined,
      );
      if (sql && (o.experiment || o.model)) {
        throw usageError(
          'SQL role flags and MLflow role flags cannot be mixed',
          'A role belongs to one engine: statements and --grant for SQL; --experiment and --model for MLflow.',
        );
      }
      const creation = await statementsFrom(o.creationStatements, '--creation-statements');
      const revocation = await statementsFrom(o.revocationStatements, '--revocation-statements');
      const renew = await statementsFrom(o.renewStatements, '--renew-statements');
      const experiments = grants(o.experiment, '--experiment', 'id');
      const models = grants(o.model, '--model', 'name');
      const config: Record<string, unknown> = {
        ...(creation ? { creation_statements: creation } : {}),
        ...(revocation ? { revocation_statements: revocation } : {}),
        ...(renew ? { renew_statements: renew } : {}),
        ...(o.grant?.length ? { grants: o.grant } : {}),
        ...(o.usernameTemplate !== undefined ? { username_template: o.usernameTemplate } : {}),
        ...(experiments ? { experiments } : {}),
        ...(models ? { registered_models: models } : {}),
      };
      const body = {
        ...(o.ttl !== undefined ? { ttl: A.duration(o.ttl, '--ttl') } : {}),
        ...(o.maxTtl !== undefined ? { max_ttl: A.duration(o.maxTtl, '--max-ttl') } : {}),
        config,
      };
      const client = await clientOf(cmd);
      const { body: saved } = await client.call<EngineRole>('PUT', roleUrl(parts), { body });
      display(outputOf(cmd), saved, roleRows);
    });
  examples(write, [
    "$ custody engine role write prod/warehouse/reader --ttl 1h --max-ttl 24h --grant 'SELECT ON ALL TABLES IN SCHEMA public'",
    "$ custody engine role write prod/warehouse/writer --grant 'USAGE ON SCHEMA app' --grant 'SELECT, INSERT ON app.events'",
    '$ custody engine role write prod/warehouse/custom --creation-statements create.sql --revocation-statements drop.sql',
    "$ custody engine role write prod/shop/reader --grant 'SELECT ON shop.*'",
    '$ custody engine role write prod/mlflow/trainer --ttl 8h --experiment 12=EDIT --model churn=READ',
    '',
    'Statement files: one statement per line, or statements separated by `;` (then they may span lines);',
    'lines starting with -- are comments. Placeholders are substituted already quoted: write',
    'CREATE ROLE {{name}} WITH LOGIN PASSWORD {{password}} VALID UNTIL {{expiration}}, without quotes.',
    'A role is replaced as a whole: settings you leave out go back to their defaults.',
  ]);

  const read = role
    .command('read')
    .description('Show a role')
    .argument('<ENV/ENGINE/ROLE>', 'the role')
    .action(async (ref: string, _o, cmd: Command) => {
      const parts = A.ref(ref, 'ENV/ENGINE/ROLE', 'prod/warehouse/reader');
      const client = await clientOf(cmd);
      const { body } = await client.get<EngineRole>(roleUrl(parts));
      display(outputOf(cmd), body, roleRows);
    });
  examples(read, ['$ custody engine role read prod/warehouse/reader']);

  const list = role
    .command('list')
    .description("List an engine's roles (dynamic and static)")
    .argument('<ENV/ENGINE>', 'the engine')
    .action(async (ref: string, _o, cmd: Command) => {
      const [env, name] = A.ref(ref, 'ENV/ENGINE', 'prod/warehouse');
      const client = await clientOf(cmd);
      const { body } = await client.get<{ items: EngineRole[] }>(`${engineUrl(env, name)}/roles`);
      outputOf(cmd).list(
        body,
        body.items,
        [
          { header: 'NAME', get: (r) => r.name },
          { header: 'KIND', get: (r) => r.kind },
          { header: 'TTL', get: (r) => r.ttl },
          { header: 'MAX TTL', get: (r) => r.max_ttl },
          { header: 'ROTATION PERIOD', get: (r) => r.rotation_period },
          { header: 'LAST ROTATED', get: (r) => r.last_rotated_at },
        ],
        `No roles in ${env}/${name}.`,
      );
    });
  examples(list, ['$ custody engine role list prod/warehouse']);

  const del = role
    .command('delete')
    .description('Delete a role (leases already issued keep running until they end)')
    .argument('<ENV/ENGINE/ROLE>', 'the role')
    .action(async (ref: string, _o, cmd: Command) => {
      const parts = A.ref(ref, 'ENV/ENGINE/ROLE', 'prod/warehouse/reader');
      const client = await clientOf(cmd);
      await client.call('DELETE', roleUrl(parts));
      const [env, engineName, name] = parts;
      outputOf(cmd).result(
        { env, engine: engineName, name, deleted: true },
        `Deleted the role ${parts.join('/')}.`,
      );
    });
  examples(del, ['$ custody engine role delete prod/warehouse/reader']);
}

function registerStaticRoles(engine: Command): void {
  const staticRole = engine
    .command('static-role')
    .description('Static roles: an existing user whose password Custody sets and rotates');
  examples(staticRole, [
    '$ custody engine static-role write prod/warehouse/etl --username etl --rotation-period 24h',
    '$ custody creds static prod/warehouse/etl',
  ]);

  const write = staticRole
    .command('write')
    .description('Take ownership of an existing user: its password is changed now and every period')
    .argument('<ENV/ENGINE/ROLE>', 'the static role')
    .requiredOption('--username <user>', 'the existing database user')
    .requiredOption('--rotation-period <duration>', 'how often the password changes (at least 60s), e.g. 24h')
    .action(async (ref: string, o, cmd: Command) => {
      const parts = A.ref(ref, 'ENV/ENGINE/ROLE', 'prod/warehouse/etl');
      const body = {
        username: o.username,
        rotation_period: A.duration(o.rotationPeriod, '--rotation-period'),
      };
      const client = await clientOf(cmd);
      const { body: saved } = await client.call<EngineRole>('PUT', roleUrl(parts, 'static-roles'), { body });
      const out = outputOf(cmd);
      display(out, saved, roleRows);
      if (!out.json)
        out.note(
          `The password of ${o.username} is now Custody's: read it with \`custody creds static ${parts.join('/')}\`.`,
        );
    });
  examples(write, [
    '$ custody engine static-role write prod/warehouse/etl --username etl --rotation-period 24h',
  ]);

  const rotate = staticRole
    .command('rotate')
    .description("Rotate a static role's password now")
    .argument('<ENV/ENGINE/ROLE>', 'the static role')
    .action(async (ref: string, _o, cmd: Command) => {
      const parts = A.ref(ref, 'ENV/ENGINE/ROLE', 'prod/warehouse/etl');
      const client = await clientOf(cmd);
      const { body } = await client.post<EngineRole>(`${roleUrl(parts, 'static-roles')}/rotate`);
      display(outputOf(cmd), body, roleRows);
    });
  examples(rotate, ['$ custody engine static-role rotate prod/warehouse/etl']);
}
