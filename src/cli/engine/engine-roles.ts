import type { Command } from 'commander';
import * as A from '../args.js';
import { clientOf, collect, examples, outputOf } from '../context.js';
import { usageError } from '../errors.js';
import { durationField, given, listField, oneFamily, showSettings } from '../role-options.js';
import { type EngineRole, engineUrl, roleRows, roleUrl } from './api.js';
import { configValue } from './engine-config.js';
import { statementsFrom } from './statements.js';

/** `custody engine role write|read|list|delete`: dynamic roles, what each issued credential may do. */

const MLFLOW_PERMISSIONS = ['READ', 'EDIT', 'MANAGE'] as const;
const SQL_ROLE_FLAGS = ['creationStatements', 'revocationStatements', 'renewStatements', 'grant'];
const MLFLOW_ROLE_FLAGS = ['experiment', 'model'];

/** Repeated `--experiment ID=READ` / `--model NAME=EDIT` → MLflow role grants. */
function grants(list: string[] | undefined, flag: string, key: 'id' | 'name') {
  if (!list?.length) return undefined;
  return list.map((item) => {
    // The last `=`: a model name may itself contain one, a permission never does.
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

export function registerEngineRoles(engine: Command): void {
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
      '--config <key=value>',
      'another role field (repeatable), e.g. azure-blob: container=datasets permissions=rl; aws-s3: bucket=… actions=read,list',
      collect,
    )
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
      oneFamily(
        o,
        [SQL_ROLE_FLAGS, MLFLOW_ROLE_FLAGS],
        'SQL role flags and MLflow role flags cannot be mixed',
        'A role belongs to one engine: statements and --grant for SQL; --experiment and --model for MLflow.',
      );
      const creation = await statementsFrom(o.creationStatements, '--creation-statements');
      const revocation = await statementsFrom(o.revocationStatements, '--revocation-statements');
      const renew = await statementsFrom(o.renewStatements, '--renew-statements');
      const experiments = grants(o.experiment, '--experiment', 'id');
      const models = grants(o.model, '--model', 'name');
      const config: Record<string, unknown> = {
        ...given(creation, 'creation_statements'),
        ...given(revocation, 'revocation_statements'),
        ...given(renew, 'renew_statements'),
        ...listField(o.grant, 'grants'),
        ...given(o.usernameTemplate, 'username_template'),
        ...given(experiments, 'experiments'),
        ...given(models, 'registered_models'),
      };
      for (const item of o.config ?? []) {
        const [k, v] = A.pair(item, '--config');
        config[k] = await configValue(k, v);
      }
      const body = {
        ...durationField(o.ttl, 'ttl', '--ttl'),
        ...durationField(o.maxTtl, 'max_ttl', '--max-ttl'),
        config,
      };
      const client = await clientOf(cmd);
      const { body: saved } = await client.call<EngineRole>('PUT', roleUrl(parts), { body });
      showSettings(outputOf(cmd), saved, roleRows);
    });
  examples(write, [
    "$ custody engine role write prod/warehouse/reader --ttl 1h --max-ttl 24h --grant 'SELECT ON ALL TABLES IN SCHEMA public'",
    "$ custody engine role write prod/warehouse/writer --grant 'USAGE ON SCHEMA app' --grant 'SELECT, INSERT ON app.events'",
    '$ custody engine role write prod/warehouse/custom --creation-statements create.sql --revocation-statements drop.sql',
    "$ custody engine role write prod/shop/reader --grant 'SELECT ON shop.*'",
    '$ custody engine role write prod/mlflow/trainer --ttl 8h --experiment 12=EDIT --model churn=READ',
    '$ custody engine role write prod/lake/reader --ttl 1h --config container=datasets --config prefix=imagenet/ --config permissions=rl',
    '$ custody engine role write prod/s3/reader --ttl 1h --max-ttl 1h --config role_arn=arn:aws:iam::123456789012:role/ml-data \\',
    '    --config bucket=datasets --config prefix=imagenet/ --config actions=read,list',
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
      showSettings(outputOf(cmd), body, roleRows);
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
