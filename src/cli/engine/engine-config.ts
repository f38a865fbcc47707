import type { Command } from 'commander';
import * as A from '../args.js';
import { clientOf, collect, examples, outputOf } from '../context.js';
import { usageError } from '../errors.js';
import { credentialInput, readTextFile } from '../input.js';
import { given, showSettings } from '../role-options.js';
import { type Engine, engineRows, engineUrl } from './api.js';

/** `custody engine configure|list|show|remove|rotate-root`: the engines of an environment. */

const TYPES = ['postgresql', 'mysql', 'mlflow', 'azure-blob', 'aws-s3'] as const;
/** What --connection-url, --username and --password are for each engine type. */
const FIELDS: Record<string, [url: string, user: string, password: string]> = {
  mlflow: ['tracking_uri', 'username', 'password'],
  'azure-blob': ['endpoint', 'account_name', 'account_key'],
  'aws-s3': ['sts_endpoint', 'access_key_id', 'secret_access_key'],
};

/**
 * `--config key=value` → an engine config field: `true`/`false` and whole numbers become JSON
 * booleans and numbers, `@file` the file's text (a PEM bundle), anything else stays a string.
 */
export async function configValue(key: string, value: string): Promise<unknown> {
  if (value.startsWith('@')) return readTextFile(value.slice(1), `the file for --config ${key}`);
  if (value === 'true') return true;
  if (value === 'false') return false;
  if (/^-?\d+$/.test(value) && Number.isSafeInteger(Number(value))) return Number(value);
  return value;
}

export function registerEngineConfig(engine: Command): void {
  const configure = engine
    .command('configure')
    .description('Configure an engine (the broker tests the connection before saving it)')
    .argument('<ENV/ENGINE>', 'the engine mount, e.g. prod/warehouse')
    .requiredOption('--type <type>', `engine type: ${TYPES.join(', ')}`)
    .requiredOption(
      '--connection-url <url>',
      'the backend URL without credentials (mlflow: the tracking URI; azure-blob: the blob endpoint; aws-s3: the STS endpoint)',
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
      const [urlKey, userKey, passwordKey] = FIELDS[type] ?? ['connection_url', 'username', 'password'];
      const config: Record<string, unknown> = {
        [urlKey]: o.connectionUrl,
        ...given(o.username, userKey),
        ...given(password, passwordKey),
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
      showSettings(outputOf(cmd), body, engineRows);
    });
  examples(configure, [
    '$ custody engine configure prod/warehouse --type postgresql --connection-url postgres://db:5432/app \\',
    '    --username custody_admin --password-file admin.pw --config max_connections=8',
    '$ printf %s "$ADMIN_PW" | custody engine configure prod/shop --type mysql \\',
    '    --connection-url "mysql://db:3306/shop?ssl-mode=verify_identity" --username custody --password -',
    '$ custody engine configure prod/mlflow --type mlflow --connection-url https://mlflow.internal \\',
    '    --username admin --password-file mlflow.pw --config ca_pem=@mlflow-ca.pem',
    '$ custody engine configure prod/lake --type azure-blob --connection-url https://mldata.blob.core.windows.net \\',
    '    --username mldata --password-file account.key            # account name, account key (sealed)',
    '$ custody engine configure prod/s3 --type aws-s3 --connection-url https://sts.eu-west-1.amazonaws.com \\',
    '    --username AKIA… --password-file aws.secret --config region=eu-west-1 --config revoke_sessions=true',
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
          {
            header: 'URL',
            get: (e) =>
              e.config.connection_url ?? e.config.tracking_uri ?? e.config.endpoint ?? e.config.sts_endpoint,
          },
          {
            header: 'USERNAME',
            get: (e) => e.config.username ?? e.config.account_name ?? e.config.access_key_id,
          },
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
      showSettings(outputOf(cmd), body, engineRows);
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
      showSettings(out, body, engineRows);
      if (!out.json)
        out.note(
          `The password of ${String(body.config.username ?? 'the admin user')} was changed; the old one no longer works ` +
            'and the new one is not shown anywhere.',
        );
    });
  examples(rotateRoot, ['$ custody engine rotate-root prod/warehouse']);
}
