import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import { badRequest } from '../../errors.js';
import { validateUsernameTemplate } from './username.js';

/** Connection to an MLflow tracking server with the basic-auth app, as an admin user. */
export interface MlflowConfig {
  /** `https://host[:port][/prefix]`, or `http://` to a loopback host (or with `allow_insecure_http`). */
  tracking_uri: string;
  /** An MLflow admin (creating and deleting users is admin-only). */
  username: string;
  password: string;
  /** PEM CA bundle to trust instead of the system roots. */
  ca_pem?: string;
  /** Skip TLS certificate verification (testing only). */
  insecure_tls: boolean;
  /** Allow plain http to a host that is not loopback (credentials then cross the network in clear). */
  allow_insecure_http: boolean;
}

export type MlflowPermission = 'READ' | 'EDIT' | 'MANAGE';

/** What one dynamic MLflow user may do. */
export interface MlflowRole {
  experiments: { id: string; permission: MlflowPermission }[];
  registered_models: { name: string; permission: MlflowPermission }[];
  username_template: string;
}

export const DEFAULT_USERNAME_TEMPLATE = 'custody-{{env}}-{{role}}-{{identity}}-{{random}}';

const CONFIG_KEYS = ['tracking_uri', 'username', 'password', 'ca_pem', 'insecure_tls', 'allow_insecure_http'];
const ROLE_KEYS = ['experiments', 'registered_models', 'username_template'];
const PERMISSIONS: readonly MlflowPermission[] = ['READ', 'EDIT', 'MANAGE'];
const MAX_GRANTS = 100;

const configError = (message: string, hint?: string) =>
  badRequest(
    'InvalidEngineConfig',
    message,
    hint ?? 'Example: {"tracking_uri":"https://mlflow.example.com","username":"admin","password":"…"}.',
  );
const roleError = (message: string, hint?: string) =>
  badRequest(
    'InvalidEngineRole',
    message,
    hint ??
      'Example: {"experiments":[{"id":"12","permission":"READ"}],"registered_models":[{"name":"churn","permission":"EDIT"}]}.',
  );

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
// biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
const hasControl = (s: string) => /[\u0000-\u001f\u007f]/.test(s);

function rejectUnknown(raw: Record<string, unknown>, allowed: string[], err: typeof configError): void {
  const extra = Object.keys(raw).filter((k) => !allowed.includes(k));
  if (extra.length) throw err(`Unknown field ${extra[0]}`, `Allowed fields: ${allowed.join(', ')}.`);
}

function optionalBool(raw: Record<string, unknown>, key: string): boolean {
  const v = raw[key];
  if (v === undefined || v === null) return false;
  if (typeof v !== 'boolean') throw configError(`${key} must be true or false`);
  return v;
}

/** 127.0.0.0/8, ::1 (also IPv4-mapped) and the name `localhost`. */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost') return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) {
    if (h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(h);
    if (mapped) return mapped[1]!.startsWith('127.');
    // URL normalizes ::ffff:127.0.0.1 to ::ffff:7f00:1
    return /^::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}$/.test(h);
  }
  return false;
}

export function parseMlflowConfig(raw: Record<string, unknown>): MlflowConfig {
  if (!isObject(raw)) throw configError('The engine config must be a JSON object');
  rejectUnknown(raw, CONFIG_KEYS, configError);

  const uri = raw.tracking_uri;
  if (typeof uri !== 'string' || !uri || uri.length > 2048) {
    throw configError('tracking_uri is required: the MLflow server URL');
  }
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    throw configError(
      'tracking_uri is not a valid URL',
      'Example: https://mlflow.example.com or http://127.0.0.1:5000.',
    );
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw configError('tracking_uri must be an http(s) URL', 'Example: https://mlflow.example.com.');
  }
  if (url.username || url.password) {
    throw configError(
      'tracking_uri must not contain credentials',
      'Put the admin user in `username` and `password` instead.',
    );
  }
  if (url.search || url.hash) throw configError('tracking_uri must not have a query or fragment');
  const allowInsecureHttp = optionalBool(raw, 'allow_insecure_http');
  if (url.protocol === 'http:' && !isLoopbackHost(url.hostname) && !allowInsecureHttp) {
    throw configError(
      'tracking_uri uses plain http to a host that is not loopback',
      'Use https (the admin password and every issued password would cross the network in clear), or set allow_insecure_http: true on a network you trust.',
    );
  }
  const path = url.pathname.replace(/\/+$/, '');
  const trackingUri = `${url.protocol}//${url.host}${path}`;

  const username = raw.username;
  if (typeof username !== 'string' || !username || username.length > 255 || hasControl(username)) {
    throw configError('username is required: an MLflow admin user name (at most 255 characters)');
  }
  if (username.includes(':'))
    throw configError('username must not contain ":" (HTTP Basic auth cannot carry it)');
  const password = raw.password;
  if (typeof password !== 'string' || !password || password.length > 1024 || /[\r\n]/.test(password)) {
    throw configError('password is required: the MLflow admin password (one line)');
  }

  let caPem: string | undefined;
  if (raw.ca_pem !== undefined && raw.ca_pem !== null && raw.ca_pem !== '') {
    if (typeof raw.ca_pem !== 'string' || !raw.ca_pem.includes('-----BEGIN CERTIFICATE-----')) {
      throw configError('ca_pem must be PEM text with at least one CERTIFICATE block');
    }
    try {
      new X509Certificate(raw.ca_pem);
    } catch {
      throw configError('ca_pem does not hold a readable certificate');
    }
    caPem = raw.ca_pem;
  }

  const config: MlflowConfig = {
    tracking_uri: trackingUri,
    username,
    password,
    insecure_tls: optionalBool(raw, 'insecure_tls'),
    allow_insecure_http: allowInsecureHttp,
  };
  if (caPem) config.ca_pem = caPem;
  return config;
}

export function redactMlflowConfig(config: MlflowConfig): Record<string, unknown> {
  const out: Record<string, unknown> = {
    tracking_uri: config.tracking_uri,
    username: config.username,
    insecure_tls: config.insecure_tls,
    allow_insecure_http: config.allow_insecure_http,
  };
  if (config.ca_pem) {
    try {
      out.ca_fingerprint_sha256 = new X509Certificate(config.ca_pem).fingerprint256;
    } catch {
      out.ca_fingerprint_sha256 = 'unreadable';
    }
  }
  return out;
}

function parsePermission(v: unknown, where: string): MlflowPermission {
  const p = typeof v === 'string' ? v.toUpperCase() : v;
  if (!PERMISSIONS.includes(p as MlflowPermission)) {
    throw roleError(`${where}.permission must be one of ${PERMISSIONS.join(', ')}`);
  }
  return p as MlflowPermission;
}

function grantList(raw: Record<string, unknown>, key: string): Record<string, unknown>[] {
  const v = raw[key];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw roleError(`${key} must be a list`);
  if (v.length > MAX_GRANTS) throw roleError(`${key} has more than ${MAX_GRANTS} entries`);
  return v.map((g, i) => {
    if (!isObject(g)) throw roleError(`${key}[${i}] must be an object`);
    return g;
  });
}

export function parseMlflowRole(raw: Record<string, unknown>): MlflowRole {
  if (!isObject(raw)) throw roleError('The role config must be a JSON object');
  rejectUnknown(raw, ROLE_KEYS, roleError);

  const experiments = grantList(raw, 'experiments').map((g, i) => {
    const where = `experiments[${i}]`;
    const extra = Object.keys(g).filter((k) => k !== 'id' && k !== 'permission');
    if (extra.length) throw roleError(`${where} has an unknown field ${extra[0]}`, 'Fields: id, permission.');
    const id = typeof g.id === 'number' && Number.isSafeInteger(g.id) && g.id >= 0 ? String(g.id) : g.id;
    if (typeof id !== 'string' || !/^[0-9]{1,19}$/.test(id)) {
      throw roleError(
        `${where}.id must be an MLflow experiment id (digits)`,
        'See the experiment page URL or `mlflow experiments search`.',
      );
    }
    return { id, permission: parsePermission(g.permission, where) };
  });
  const seenIds = new Set<string>();
  for (const e of experiments) {
    if (seenIds.has(e.id)) throw roleError(`Experiment ${e.id} is listed twice`);
    seenIds.add(e.id);
  }

  const models = grantList(raw, 'registered_models').map((g, i) => {
    const where = `registered_models[${i}]`;
    const extra = Object.keys(g).filter((k) => k !== 'name' && k !== 'permission');
    if (extra.length)
      throw roleError(`${where} has an unknown field ${extra[0]}`, 'Fields: name, permission.');
    const name = g.name;
    if (typeof name !== 'string' || !name.trim() || name.length > 256 || hasControl(name)) {
      throw roleError(`${where}.name must be a registered model name (1-256 characters)`);
    }
    return { name, permission: parsePermission(g.permission, where) };
  });
  const seenNames = new Set<string>();
  for (const m of models) {
    if (seenNames.has(m.name)) throw roleError(`Registered model ${m.name} is listed twice`);
    seenNames.add(m.name);
  }

  let template = DEFAULT_USERNAME_TEMPLATE;
  if (raw.username_template !== undefined && raw.username_template !== null) {
    if (typeof raw.username_template !== 'string') throw roleError('username_template must be a string');
    try {
      validateUsernameTemplate(raw.username_template);
    } catch (err) {
      throw roleError((err as Error).message, `Example: ${DEFAULT_USERNAME_TEMPLATE}.`);
    }
    template = raw.username_template;
  }
  return { experiments, registered_models: models, username_template: template };
}
