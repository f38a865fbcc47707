import { badRequest } from '../../errors.js';
import { optionalBoolean, optionalInteger, type Raw, rejectUnknownKeys, requireString } from './input.js';

/** The connection config every SQL engine takes, as the API gives it and as it is stored (encrypted). */
export interface SqlConfig {
  /** `scheme://host:port/db` — no credentials in it; one TLS parameter (see `UrlForm`). */
  connection_url: string;
  username: string;
  password: string;
  /** Size of the engine's connection pool (default 4). */
  max_connections: number;
  /** With TLS on, verify the server certificate (default true). */
  verify_tls: boolean;
}

export const SQL_CONFIG_FIELDS = [
  'connection_url',
  'username',
  'password',
  'max_connections',
  'verify_tls',
] as const;
const CODE = 'InvalidEngineConfig';

/** Where an engine connects: parsed from connection_url. */
export interface SqlTarget {
  host: string;
  /** `host` as it goes back into a URL (IPv6 in brackets). */
  urlHost: string;
  port: number;
  /** '' when the URL names no database and the dialect has no default. */
  database: string;
  tls: boolean;
}

/** A dialect's connection_url: its schemes and default port, and the one TLS parameter it takes. */
export interface UrlForm {
  schemes: readonly string[];
  defaultPort: number;
  example: string;
  /** `sslmode` (PostgreSQL) or `ssl-mode` (MySQL). */
  sslParam: string;
  /** The parameter's values; the first is the default and means no TLS. */
  sslModes: readonly string[];
  /** MySQL clients take the mode in any case, libpq only in lower case. */
  modeIgnoresCase: boolean;
  /** The database when the URL names none. */
  defaultDatabase: string;
}

/** What `parseSqlConfig` tells the caller about the admin account, in the dialect's words. */
export interface ConfigForm {
  what: string;
  fields: readonly string[];
  url: UrlForm;
  usernameHint: string;
  usernameMax: number;
  passwordHint: string;
}

interface ParsedUrl {
  host: string;
  urlHost: string;
  port: number;
  database: string;
  params: URLSearchParams;
}

/**
 * Parses `scheme://host[:port]/db[?params]`. Credentials are separate config fields: a URL with a
 * user or password in it is refused (and never echoed back, since it may hold a password).
 */
function parseConnectionUrl(value: string, f: UrlForm): ParsedUrl {
  const example = f.example;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw badRequest(CODE, 'connection_url is not a valid URL', `Example: ${example}`);
  }
  if (url.password) {
    throw badRequest(
      CODE,
      'connection_url must not contain a password',
      `Give the URL without credentials (${example}) and put the admin user and password in the username and password fields.`,
    );
  }
  if (url.username) {
    throw badRequest(
      CODE,
      'connection_url must not contain a user name',
      `Give the URL without credentials (${example}) and put the admin user in the username field.`,
    );
  }
  if (!f.schemes.includes(url.protocol.replace(/:$/, ''))) {
    throw badRequest(
      CODE,
      `connection_url must start with ${f.schemes.map((s) => `${s}://`).join(' or ')}`,
      `Example: ${example}`,
    );
  }
  if (!url.hostname) throw badRequest(CODE, 'connection_url has no host', `Example: ${example}`);
  if (url.hash) throw badRequest(CODE, 'connection_url must not have a #fragment', `Example: ${example}`);
  const port = url.port ? Number(url.port) : f.defaultPort;
  let database: string;
  try {
    database = decodeURIComponent(url.pathname.replace(/^\//, ''));
  } catch {
    throw badRequest(CODE, 'connection_url has a badly encoded database name', `Example: ${example}`);
  }
  if (database.includes('/'))
    throw badRequest(CODE, 'connection_url path must be just the database name', `Example: ${example}`);
  const urlHost = url.hostname;
  const host = urlHost.startsWith('[') ? urlHost.slice(1, -1) : urlHost;
  return { host, urlHost, port, database, params: url.searchParams };
}

/** connection_url as a target; only the dialect's TLS parameter is allowed in the query. */
export function parseSqlTarget(connectionUrl: string, f: UrlForm): SqlTarget {
  const u = parseConnectionUrl(connectionUrl, f);
  const p = f.sslParam;
  for (const key of u.params.keys()) {
    if (key !== p) {
      throw badRequest(
        CODE,
        `connection_url parameter ${JSON.stringify(key.slice(0, 64))} is not supported`,
        `Only ?${p}=${f.sslModes.join('|')} is; credentials go in username and password.`,
      );
    }
  }
  const given = u.params.get(p) ?? f.sslModes[0];
  const mode = f.modeIgnoresCase ? given.toLowerCase() : given;
  if (!f.sslModes.includes(mode)) {
    throw badRequest(
      CODE,
      `connection_url has an unsupported ${p}`,
      `${p} is one of ${f.sslModes.join(', ')}.`,
    );
  }
  return {
    host: u.host,
    urlHost: u.urlHost,
    port: u.port,
    database: u.database || f.defaultDatabase,
    tls: mode !== f.sslModes[0],
  };
}

/** The shared fields, checked in this order; a dialect adds its own after them. */
export function parseSqlConfig(raw: Raw, f: ConfigForm): SqlConfig {
  rejectUnknownKeys(raw, f.fields, f.what, CODE);
  const connection_url = requireString(raw, 'connection_url', CODE, `Example: ${f.url.example}`, 2048);
  parseSqlTarget(connection_url, f.url);
  const username = requireString(raw, 'username', CODE, f.usernameHint, f.usernameMax);
  const password = requireString(raw, 'password', CODE, f.passwordHint, 1024);
  return {
    connection_url,
    username,
    password,
    max_connections: optionalInteger(raw, 'max_connections', CODE, 4, 1, 100),
    verify_tls: optionalBoolean(raw, 'verify_tls', CODE, true),
  };
}

/** The config without its password, safe to show. */
export function redactSqlConfig(config: SqlConfig): Record<string, unknown> {
  return {
    connection_url: config.connection_url,
    username: config.username,
    max_connections: config.max_connections,
    verify_tls: config.verify_tls,
  };
}
