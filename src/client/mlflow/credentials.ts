import type { AuthMode } from '../config.js';

/**
 * MLflow credential formats (compatible with the mlflow-secrets-auth plugin): a JSON object with
 * `token` (wins when present) or `username` + `password`; a non-JSON `user:pass` (split at the first
 * colon); any other string is a token. JSON that is not an object is rejected. Fields are trimmed;
 * empty ones are errors. Error messages never contain the secret value.
 */
export type ParsedSecret =
  | { kind: 'token'; token: string }
  | { kind: 'basic'; username: string; password: string };

/** What to add to an MLflow request: one header, plus the secret values it carries (for leak checks). */
export interface Credential {
  header: string;
  value: string;
  /** Values that must never be logged or sent elsewhere (token, password). */
  secrets: string[];
}

export interface CredentialOptions {
  /** Override of the format's natural mode (`MLFLOW_<P>_AUTH_MODE`). */
  authMode?: AuthMode;
  /** `MLFLOW_AUTH_HEADER_NAME`; with a custom header the raw token is sent (no `Bearer `). */
  headerName?: string;
}

export class CredentialFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CredentialFormatError';
  }
}

function field(obj: Record<string, unknown>, name: string): string | undefined {
  if (!(name in obj) || obj[name] === undefined || obj[name] === null) return undefined;
  const v = obj[name];
  if (typeof v !== 'string') throw new CredentialFormatError(`the secret's "${name}" field must be a string`);
  const t = v.trim();
  if (!t) throw new CredentialFormatError(`the secret's "${name}" field is empty`);
  return t;
}

/** Parses a secret value into a token or a username/password pair. */
export function parseSecret(raw: string): ParsedSecret {
  const text = raw.trim();
  if (!text) throw new CredentialFormatError('the secret is empty');
  let json: unknown;
  let isJson = false;
  if (/^[[{"\d-]|^(true|false|null)$/.test(text)) {
    try {
      json = JSON.parse(text);
      isJson = true;
    } catch {
      isJson = false;
    }
  }
  if (isJson) {
    if (json === null || typeof json !== 'object' || Array.isArray(json)) {
      const what = json === null ? 'null' : Array.isArray(json) ? 'a list' : `a ${typeof json}`;
      throw new CredentialFormatError(
        `the secret is JSON but ${what}, not an object with "token" or "username" and "password"`,
      );
    }
    const obj = json as Record<string, unknown>;
    const token = field(obj, 'token');
    if (token !== undefined) return { kind: 'token', token };
    const username = field(obj, 'username');
    const password = field(obj, 'password');
    if (username !== undefined && password !== undefined) return { kind: 'basic', username, password };
    if (username !== undefined || password !== undefined) {
      throw new CredentialFormatError(
        `the secret has "${username === undefined ? 'password' : 'username'}" but no "${username === undefined ? 'username' : 'password'}"`,
      );
    }
    throw new CredentialFormatError('the JSON secret has neither "token" nor "username" and "password"');
  }
  const colon = text.indexOf(':');
  if (colon >= 0) {
    const username = text.slice(0, colon).trim();
    const password = text.slice(colon + 1).trim();
    if (!username) throw new CredentialFormatError('the secret "user:pass" has an empty user name');
    if (!password) throw new CredentialFormatError('the secret "user:pass" has an empty password');
    return { kind: 'basic', username, password };
  }
  return { kind: 'token', token: text };
}

/** The header to send for a parsed secret. */
export function credentialFor(secret: ParsedSecret, opts: CredentialOptions = {}): Credential {
  const header = opts.headerName?.trim() || 'Authorization';
  const custom = header.toLowerCase() !== 'authorization';
  const mode: AuthMode = opts.authMode ?? (secret.kind === 'basic' ? 'basic' : 'bearer');
  if (mode === 'bearer') {
    if (secret.kind === 'basic') {
      throw new CredentialFormatError(
        'auth mode is bearer but the secret is a username and password; use auth mode basic or store a token',
      );
    }
    return { header, value: custom ? secret.token : `Bearer ${secret.token}`, secrets: [secret.token] };
  }
  let username: string;
  let password: string;
  if (secret.kind === 'basic') ({ username, password } = secret);
  else {
    const colon = secret.token.indexOf(':');
    if (colon <= 0 || colon === secret.token.length - 1) {
      throw new CredentialFormatError(
        'auth mode is basic but the secret is not "user:pass" (or username/password)',
      );
    }
    username = secret.token.slice(0, colon);
    password = secret.token.slice(colon + 1);
  }
  const value = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
  return { header, value, secrets: [password, `${username}:${password}`] };
}

/** `parseSecret` + `credentialFor`. */
export function credentialFromSecret(raw: string, opts: CredentialOptions = {}): Credential {
  return credentialFor(parseSecret(raw), opts);
}
