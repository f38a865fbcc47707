import type { Command } from 'commander';
import * as A from '../args.js';
import { clientOf, collect, examples, outputOf } from '../context.js';
import { durationField, given, listField, multiPairs, oneFamily, showSettings } from '../role-options.js';
import { type LoginRole, methodUrl, roleRows, roleUrl } from './api.js';

/** `custody auth role write|read|list|delete`: the login roles of an auth method. */

const JWT_ROLE_FLAGS = [
  'userClaim',
  'boundSubject',
  'boundAudience',
  'boundClaim',
  'claimMapping',
  'groupsClaim',
  'kind',
];
const APPROLE_ROLE_FLAGS = ['secretIdTtl', 'secretIdNumUses', 'secretIdBoundCidr', 'tokenBoundCidr'];

export function registerAuthRoles(auth: Command): void {
  const role = auth.command('role').description('Login roles of an auth method: who may log in, and how');
  examples(role, [
    '$ custody auth role write prod/jwt/ci --user-claim sub --bound-claim repository=my-org/*',
    '$ custody auth role list prod/jwt',
  ]);

  const write = role
    .command('write')
    .description('Create or replace a login role')
    .argument('<ENV/METHOD/ROLE>', 'the role, e.g. prod/jwt/ci')
    .option('--user-claim <claim>', 'jwt: the claim that names the identity (default sub, or the preset’s)')
    .option('--bound-subject <sub>', 'jwt: the sub the token must carry')
    .option('--bound-audience <aud>', 'jwt: an accepted audience (repeatable)', collect)
    .option(
      '--bound-claim <key=value>',
      'jwt: a required claim value; repeat a key to accept any of several values; * is a wildcard',
      collect,
    )
    .option('--claim-mapping <claim=key>', 'jwt: copy a claim into identity metadata (repeatable)', collect)
    .option('--groups-claim <claim>', 'jwt: the claim listing the identity’s groups')
    .option('--kind <kind>', 'jwt: identity kind, workload or user (cannot change later)')
    .option(
      '--secret-id-ttl <duration>',
      'approle: lifetime of new secret ids (default 24h; 0 = never expire)',
    )
    .option('--secret-id-num-uses <n>', 'approle: logins per secret id (default 0 = unlimited)')
    .option('--secret-id-bound-cidr <cidr>', 'approle: log in only from this network (repeatable)', collect)
    .option('--token-bound-cidr <cidr>', 'approle: tokens work only from this network (repeatable)', collect)
    .option('--token-ttl <duration>', 'lifetime of tokens it logs in (e.g. 1h)')
    .option('--token-max-ttl <duration>', 'longest token life across renewals (e.g. 8h)')
    .action(async (ref: string, o, cmd: Command) => {
      const parts = A.ref(ref, 'ENV/METHOD/ROLE', 'prod/jwt/ci');
      oneFamily(
        o,
        [JWT_ROLE_FLAGS, APPROLE_ROLE_FLAGS],
        'jwt role flags and approle role flags cannot be mixed',
        'A role belongs to one method: --user-claim, --bound-* … for jwt; --secret-id-* for approle.',
      );
      const claimMappings = A.pairs(o.claimMapping, '--claim-mapping');
      const claims = multiPairs(o.boundClaim, '--bound-claim');
      const body: Record<string, unknown> = {
        ...given(o.userClaim, 'user_claim'),
        ...given(o.boundSubject, 'bound_subject'),
        ...listField(o.boundAudience, 'bound_audiences'),
        ...given(claims, 'bound_claims'),
        ...given(claimMappings, 'claim_mappings'),
        ...given(o.groupsClaim, 'groups_claim'),
        ...given(o.kind, 'identity_kind', (v: string) => A.oneOf(v, ['workload', 'user'] as const, '--kind')),
        ...durationField(o.secretIdTtl, 'secret_id_ttl', '--secret-id-ttl'),
        ...given(o.secretIdNumUses, 'secret_id_num_uses', (v: string) =>
          A.integer(v, '--secret-id-num-uses'),
        ),
        ...listField(o.secretIdBoundCidr, 'secret_id_bound_cidrs'),
        ...listField(o.tokenBoundCidr, 'token_bound_cidrs'),
        ...durationField(o.tokenTtl, 'token_ttl', '--token-ttl'),
        ...durationField(o.tokenMaxTtl, 'token_max_ttl', '--token-max-ttl'),
      };
      const client = await clientOf(cmd);
      const { body: saved } = await client.call<LoginRole>('PUT', roleUrl(parts), { body });
      showSettings(outputOf(cmd), saved, roleRows);
    });
  examples(write, [
    '$ custody auth role write prod/jwt/ci --bound-audience https://github.com/my-org \\',
    "    --bound-claim 'repository=my-org/*' --bound-claim ref=refs/heads/main --bound-claim ref=refs/heads/release \\",
    '    --claim-mapping repository=repo --token-ttl 15m',
    '$ custody auth role write prod/entra/people --kind user --user-claim oid --groups-claim groups --token-ttl 1h',
    '$ custody auth role write prod/approle/trainer --secret-id-ttl 24h --secret-id-num-uses 10 \\',
    '    --token-bound-cidr 10.0.0.0/8 --token-ttl 1h --token-max-ttl 8h',
    '',
    'A role is replaced as a whole: flags you leave out go back to their defaults.',
  ]);

  const read = role
    .command('read')
    .description('Show a login role')
    .argument('<ENV/METHOD/ROLE>', 'the role')
    .action(async (ref: string, _o, cmd: Command) => {
      const parts = A.ref(ref, 'ENV/METHOD/ROLE', 'prod/jwt/ci');
      const client = await clientOf(cmd);
      const { body } = await client.get<LoginRole>(roleUrl(parts));
      showSettings(outputOf(cmd), body, roleRows);
    });
  examples(read, [
    '$ custody auth role read prod/jwt/ci',
    '$ custody auth role read prod/approle/trainer --format json',
  ]);

  const list = role
    .command('list')
    .description("List an auth method's login roles")
    .argument('<ENV/METHOD>', 'the method')
    .action(async (ref: string, _o, cmd: Command) => {
      const [env, method] = A.ref(ref, 'ENV/METHOD', 'prod/jwt');
      const client = await clientOf(cmd);
      const { body } = await client.get<{ items: LoginRole[] }>(`${methodUrl(env, method)}/roles`);
      outputOf(cmd).list(
        body,
        body.items,
        [
          { header: 'NAME', get: (r) => r.name },
          { header: 'TYPE', get: (r) => r.type },
          {
            header: 'KIND',
            get: (r) => r.config.identity_kind ?? (r.type === 'approle' ? 'workload' : null),
          },
          { header: 'TOKEN TTL', get: (r) => r.config.token_ttl },
          { header: 'TOKEN MAX TTL', get: (r) => r.config.token_max_ttl },
          { header: 'UPDATED', get: (r) => r.updated_at },
        ],
        `No login roles in ${env}/${method}.`,
      );
    });
  examples(list, ['$ custody auth role list prod/jwt']);

  const del = role
    .command('delete')
    .description('Delete a login role (and its AppRole secret ids)')
    .argument('<ENV/METHOD/ROLE>', 'the role')
    .action(async (ref: string, _o, cmd: Command) => {
      const parts = A.ref(ref, 'ENV/METHOD/ROLE', 'prod/jwt/ci');
      const client = await clientOf(cmd);
      const { body } = await client.call<{ deleted: boolean }>('DELETE', roleUrl(parts));
      outputOf(cmd).result(body, `Deleted the login role ${parts.join('/')}.`);
    });
  examples(del, ['$ custody auth role delete prod/approle/trainer']);
}
