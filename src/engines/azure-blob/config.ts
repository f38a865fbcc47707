import { isIP } from 'node:net';
import { badRequest } from '../../errors.js';
import { isLoopbackHost } from '../mlflow/config.js';
import { parsePrefix } from '../object-prefix.js';

/** A storage account the engine signs SAS tokens for, with its (sealed) account key. */
export interface AzureBlobConfig {
  account_name: string;
  /** The account's key (base64); sealed under the barrier with the rest of the config. */
  account_key: string;
  /**
   * The blob service endpoint: `https://<account>.blob.core.windows.net` by default; another cloud
   * (`…blob.core.chinacloudapi.cn`, `…blob.core.usgovcloudapi.net`) or Azurite
   * (`http://127.0.0.1:10000/devstoreaccount1`).
   */
  endpoint: string;
}

/** The letters a role may grant, in the order Azure wants them in `sp`. */
export const PERMISSION_ORDER = 'racwdl';
const PERMISSION_NAMES: Record<string, string> = {
  r: 'read',
  a: 'add',
  c: 'create',
  w: 'write',
  d: 'delete',
  l: 'list',
};

/**
 * `policy`: every lease gets its own stored access policy on the container and its SAS names it
 * (`si`), so revoking the lease deletes the policy and the SAS stops working before its expiry.
 * `expiry-only`: a plain SAS with its own expiry — no container slot used, but it cannot be revoked
 * early (the lease says so).
 */
export type AzureRevocation = 'policy' | 'expiry-only';

export interface AzureBlobRole {
  container: string;
  /** `''` (the whole container) or a normalized `dir/sub/`. */
  prefix: string;
  /** Letters of `racwdl`, in that order. */
  permissions: string;
  https_only: boolean;
  /** `a.b.c.d` or `a.b.c.d-e.f.g.h` (IPv4 only: that is what Azure's `sip` takes). */
  ip_range?: string;
  revocation: AzureRevocation;
  /** Derived, shown with the role (ignored on input): whether a lease can be revoked before expiry. */
  revocable_early: boolean;
  revocation_note: string;
}

const CONFIG_KEYS = ['account_name', 'account_key', 'endpoint'];
const ROLE_KEYS = [
  'container',
  'prefix',
  'permissions',
  'https_only',
  'ip_range',
  'revocation',
  'revocable_early',
  'revocation_note',
];
const CONFIG_HINT =
  'Example: {"account_name":"mldata","account_key":"<base64 key>","endpoint":"https://mldata.blob.core.windows.net"}.';
const ROLE_HINT =
  'Example: {"container":"datasets","prefix":"imagenet/","permissions":"rl","https_only":true,"revocation":"policy"}.';

const configError = (message: string, hint = CONFIG_HINT) => badRequest('InvalidEngineConfig', message, hint);
const roleError = (message: string, hint = ROLE_HINT) => badRequest('InvalidEngineRole', message, hint);

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function rejectUnknown(
  raw: Record<string, unknown>,
  allowed: string[],
  err: (m: string, h?: string) => Error,
) {
  const extra = Object.keys(raw).filter((k) => !allowed.includes(k));
  if (extra.length) throw err(`Unknown field ${extra[0]}`, `Allowed fields: ${allowed.join(', ')}.`);
}

export function parseAzureBlobConfig(raw: Record<string, unknown>): AzureBlobConfig {
  if (!isObject(raw)) throw configError('The engine config must be a JSON object');
  rejectUnknown(raw, CONFIG_KEYS, configError);
  const name = raw.account_name;
  if (typeof name !== 'string' || !/^[a-z0-9]{3,24}$/.test(name))
    throw configError('account_name must be the storage account name: 3-24 lower-case letters and digits');
  const key = raw.account_key;
  // The key is checked for shape only (never echoed): a wrong key is caught by verify() on configure.
  if (
    typeof key !== 'string' ||
    key.length < 16 ||
    key.length > 256 ||
    !/^[A-Za-z0-9+/]+={0,2}$/.test(key) ||
    key.length % 4 !== 0
  )
    throw configError(
      'account_key must be the base64 account key',
      'Copy key1 or key2 from the storage account’s "Access keys" page (`az storage account keys list`).',
    );
  const endpointRaw = raw.endpoint ?? `https://${name}.blob.core.windows.net`;
  if (typeof endpointRaw !== 'string' || endpointRaw.length > 2048)
    throw configError('endpoint must be a URL');
  let url: URL;
  try {
    url = new URL(endpointRaw);
  } catch {
    throw configError('endpoint is not a valid URL');
  }
  if (url.username || url.password || url.search || url.hash)
    throw configError('endpoint must not carry credentials, a query or a fragment');
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopbackHost(url.hostname)))
    throw configError(
      'endpoint must be https (plain http only to a loopback emulator such as Azurite)',
      'Example: https://mldata.blob.core.windows.net.',
    );
  return { account_name: name, account_key: key, endpoint: url.toString().replace(/\/+$/, '') };
}

export function redactAzureBlobConfig(c: AzureBlobConfig): Record<string, unknown> {
  return { account_name: c.account_name, endpoint: c.endpoint, account_key: '(sealed)' };
}

/** `rl`, `read,list`, or `["read","list"]` → `rl` (Azure's order). */
export function parsePermissions(raw: unknown): string {
  let letters: string[];
  if (typeof raw === 'string' && /^[a-z]+$/i.test(raw) && !raw.includes(',')) letters = raw.split('');
  else if (typeof raw === 'string') letters = raw.split(',').map((s) => s.trim());
  else if (Array.isArray(raw) && raw.every((s) => typeof s === 'string')) letters = raw as string[];
  else throw roleError('permissions is required: letters of r, l, w, c, a, d');
  const out = new Set<string>();
  for (const l of letters) {
    const byName = Object.entries(PERMISSION_NAMES).find(([, n]) => n === l.toLowerCase())?.[0];
    const letter = l.length === 1 ? l : byName;
    if (!letter || !PERMISSION_NAMES[letter])
      throw roleError(
        `Unknown permission ${JSON.stringify(l.slice(0, 20))}`,
        'Permissions are r (read), l (list), w (write), c (create), a (add), d (delete), e.g. "rl".',
      );
    out.add(letter);
  }
  if (out.size === 0) throw roleError('permissions must grant at least one of r, l, w, c, a, d');
  return [...PERMISSION_ORDER].filter((p) => out.has(p)).join('');
}

function parseIpRange(raw: unknown): string | undefined {
  if (raw === undefined || raw === null || raw === '') return undefined;
  if (typeof raw !== 'string') throw roleError('ip_range must be a string');
  const parts = raw.split('-');
  if (parts.length > 2 || parts.some((p) => isIP(p) !== 4))
    throw roleError(
      'ip_range must be an IPv4 address or a range a.b.c.d-e.f.g.h',
      'Azure SAS tokens take IPv4 only. Example: "10.1.0.0-10.1.255.255".',
    );
  const n = (ip: string) => ip.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
  if (parts.length === 2 && n(parts[0]!) > n(parts[1]!))
    throw roleError('ip_range starts after it ends', 'Example: "10.1.0.0-10.1.255.255".');
  return raw;
}

export function parseAzureBlobRole(raw: Record<string, unknown>): AzureBlobRole {
  if (!isObject(raw)) throw roleError('The role must be a JSON object');
  rejectUnknown(raw, ROLE_KEYS, roleError);
  const container = raw.container;
  // Azure's container name rules; `$root`/`$logs` are not for datasets.
  if (typeof container !== 'string' || !/^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$/.test(container))
    throw roleError('container must be a container name: 3-63 lower-case letters, digits and single dashes');
  const prefix = parsePrefix(raw.prefix, 'InvalidEngineRole', ROLE_HINT);
  const permissions = parsePermissions(raw.permissions);
  const httpsOnly = raw.https_only ?? true;
  if (typeof httpsOnly !== 'boolean') throw roleError('https_only must be true or false');
  const revocation = raw.revocation ?? 'policy';
  if (revocation !== 'policy' && revocation !== 'expiry-only')
    throw roleError(
      'revocation must be "policy" or "expiry-only"',
      '"policy" (default): revoking the lease ends the SAS at once, at most 5 leases at a time per container. "expiry-only": unlimited, but the SAS only ends at its expiry.',
    );
  const ipRange = parseIpRange(raw.ip_range);
  const role: AzureBlobRole = {
    container,
    prefix,
    permissions,
    https_only: httpsOnly,
    revocation,
    revocable_early: revocation === 'policy',
    revocation_note:
      revocation === 'policy'
        ? 'Each lease has its own stored access policy on the container: revoking the lease deletes it and the SAS stops working before its expiry (Azure: within 30 s). At most 5 stored access policies per container, shared with any that are not Custody’s.'
        : 'Cannot be revoked early: the SAS is signed with its own expiry and keeps working until then, whatever happens to the lease. Keep the TTL short.',
  };
  if (ipRange) role.ip_range = ipRange;
  return role;
}
