/** Every action a role can grant. */
export const ACTIONS = [
  'secrets/get',
  'secrets/list',
  'secrets/set',
  'secrets/update',
  'secrets/delete',
  'secrets/recover',
  'secrets/purge',
  'leases/issue',
  'leases/renew',
  'leases/revoke',
  'engines/manage',
  'auth/manage',
  'access/assign',
  'audit/read',
  'env/manage',
] as const;

export type Action = (typeof ACTIONS)[number];

/**
 * Actions that change what exists or who may do what. A workload identity receives them only
 * through an assignment made with --allow-management.
 */
export const MANAGEMENT_ACTIONS: ReadonlySet<string> = new Set([
  'secrets/set',
  'secrets/update',
  'secrets/delete',
  'secrets/recover',
  'secrets/purge',
  'leases/revoke',
  'engines/manage',
  'auth/manage',
  'access/assign',
  'env/manage',
]);

/** Which scope kinds an action can be granted at (an env scope grants everything). */
export const ACTION_KIND: Record<Action, 'secrets' | 'engine' | 'env'> = {
  'secrets/get': 'secrets',
  'secrets/list': 'secrets',
  'secrets/set': 'secrets',
  'secrets/update': 'secrets',
  'secrets/delete': 'secrets',
  'secrets/recover': 'secrets',
  'secrets/purge': 'secrets',
  'leases/issue': 'engine',
  'leases/renew': 'engine',
  'leases/revoke': 'engine',
  'engines/manage': 'engine',
  'auth/manage': 'env',
  'access/assign': 'env',
  'audit/read': 'env',
  'env/manage': 'env',
};

export const isAction = (a: string): a is Action => (ACTIONS as readonly string[]).includes(a);

const SECRETS_ALL: Action[] = [
  'secrets/get',
  'secrets/list',
  'secrets/set',
  'secrets/update',
  'secrets/delete',
  'secrets/recover',
  'secrets/purge',
];

/** Built-in roles, modelled on Azure Key Vault's RBAC roles. */
export const BUILTIN_ROLES: { name: string; description: string; actions: Action[] }[] = [
  {
    name: 'administrator',
    description: 'Everything in the environment, including role assignment',
    actions: [...ACTIONS],
  },
  {
    name: 'secrets-officer',
    description: 'Manage secrets (read, write, delete, recover, purge); no role assignment',
    actions: SECRETS_ALL,
  },
  { name: 'secrets-user', description: 'Read secret values', actions: ['secrets/get', 'secrets/list'] },
  { name: 'reader', description: 'Read metadata only, never values', actions: ['secrets/list'] },
  {
    name: 'credential-user',
    description: 'Issue and renew leases on engine roles',
    actions: ['leases/issue', 'leases/renew'],
  },
  { name: 'access-administrator', description: 'Assign roles; reads no values', actions: ['access/assign'] },
  { name: 'auditor', description: 'Read the audit trail and access reports', actions: ['audit/read'] },
];
