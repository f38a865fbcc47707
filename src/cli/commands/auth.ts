import type { Command } from 'commander';
import { registerAppRoleCredentials } from '../auth/approle.js';
import { registerAuthMethods } from '../auth/auth-methods.js';
import { registerAuthRoles } from '../auth/auth-roles.js';
import { examples } from '../context.js';

/*
 * `custody auth …` and `custody login`. The subcommands live in src/cli/auth/ (methods, login
 * roles, AppRole credentials, login); this file registers them in the order `--help` lists them.
 */

export type { LoginResult } from '../auth/login.js';
export { registerLogin } from '../auth/login.js';

export function registerAuth(program: Command): void {
  const auth = program
    .command('auth')
    .description('Auth methods (jwt, approle), their login roles and AppRole credentials');
  examples(auth, [
    '$ custody auth enable prod jwt --issuer https://token.actions.githubusercontent.com --audience custody',
    '$ custody auth enable prod approle',
    '$ custody auth role write prod/approle/trainer --token-ttl 1h',
    '$ custody auth list prod',
  ]);
  registerAuthMethods(auth);
  registerAuthRoles(auth);
  registerAppRoleCredentials(auth);
}
