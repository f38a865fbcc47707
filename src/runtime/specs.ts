import { CustodyError } from '../errors.js';
import { parseSecretRef, validateEnvName } from '../kv/names.js';

/**
 * What `custody run` is asked to deliver, parsed from `--secret VAR=ENV/NAME[#field]` and
 * `--creds PREFIX=ENV/ENGINE/ROLE`. Pure functions: no I/O, no values (only names) in errors.
 */

export interface SecretSpec {
  /** The variable the child gets. */
  variable: string;
  env: string;
  name: string;
  /** A top-level field of a JSON object value, or the whole value when undefined. */
  field?: string;
}

export interface CredsSpec {
  /** `PG` → PG_USERNAME, PG_PASSWORD, PG_LEASE_ID, PG_<DATA FIELD>… */
  prefix: string;
  env: string;
  engine: string;
  role: string;
  /**
   * `--env-template` `VAR=creds:ENV/ENGINE/ROLE#field` lines: only these variables, each one field
   * of the (one, shared) lease (`username`, `password`, `lease_id` or a data field), instead of the
   * PREFIX_* set.
   */
  fields?: [variable: string, field: string][];
}

/** A spec that cannot be parsed: a usage error (exit 2) in the CLI. */
export class SpecError extends CustodyError {
  constructor(code: string, message: string, hint?: string) {
    super(code, 400, message, hint);
  }
}

const VARIABLE_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
const NAME_RE = /^[a-z0-9][a-z0-9_-]{0,63}$/;

export const isVariableName = (s: string) => VARIABLE_RE.test(s);

function splitAssignment(text: string, flag: string, example: string): [string, string] {
  const eq = text.indexOf('=');
  if (eq <= 0)
    throw new SpecError('InvalidSpec', `${flag} ${text} is not VAR=REF`, `Example: ${flag} ${example}.`);
  const left = text.slice(0, eq);
  if (!isVariableName(left)) {
    throw new SpecError(
      'InvalidVariableName',
      `${flag}: ${JSON.stringify(left)} is not an environment variable name`,
      `Use letters, digits and _, not starting with a digit. Example: ${flag} ${example}.`,
    );
  }
  return [left, text.slice(eq + 1)];
}

/** Re-throws the shared validators' 400s as SpecErrors naming the flag. */
function checked<T>(flag: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof CustodyError && err.status === 400)
      throw new SpecError(err.code, `${flag}: ${err.message}`, err.hint);
    throw err;
  }
}

/** `DB_PASSWORD=prod/db/password` or `DB_USER=prod/db/credentials#user`. */
export function parseSecretSpec(text: string): SecretSpec {
  const example = 'DB_PASSWORD=prod/db/password';
  const [variable, ref] = splitAssignment(text, '--secret', example);
  const hash = ref.indexOf('#');
  const path = hash === -1 ? ref : ref.slice(0, hash);
  const field = hash === -1 ? undefined : ref.slice(hash + 1);
  if (field === '')
    throw new SpecError(
      'InvalidSpec',
      `--secret ${variable}: the field after # is empty`,
      `Example: ${variable}=prod/db/credentials#user.`,
    );
  const { env, name } = checked('--secret', () => parseSecretRef(path));
  return { variable, env, name, ...(field !== undefined ? { field } : {}) };
}

/** `PG=prod/warehouse/reader`. */
export function parseCredsSpec(text: string): CredsSpec {
  const example = 'PG=prod/warehouse/reader';
  const [prefix, ref] = splitAssignment(text, '--creds', example);
  const parts = ref.split('/');
  if (parts.length !== 3 || parts.some((p) => p === '')) {
    throw new SpecError(
      'InvalidReference',
      `--creds ${prefix}: ${ref} is not ENV/ENGINE/ROLE`,
      `Example: --creds ${example}.`,
    );
  }
  const [env, engine, role] = parts;
  checked('--creds', () => validateEnvName(env));
  for (const [what, v] of [
    ['engine', engine],
    ['role', role],
  ] as const) {
    if (!NAME_RE.test(v))
      throw new SpecError(
        'InvalidReference',
        `--creds ${prefix}: ${JSON.stringify(v)} is not an ${what} name`,
        `Example: --creds ${example}.`,
      );
  }
  return { prefix, env, engine, role };
}

/**
 * One field of a JSON object value (strings as they are, anything else as JSON). The error names
 * the secret and the field, never the value.
 */
export function fieldOf(value: string, field: string, what: string): string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    parsed = undefined;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new CustodyError(
      'NotJsonObject',
      422,
      `${what} is not a JSON object, so it has no field ${field}`,
      'Drop #field to deliver the whole value.',
    );
  }
  if (!Object.hasOwn(parsed, field)) {
    const keys = Object.keys(parsed).join(', ');
    throw new CustodyError(
      'FieldNotFound',
      404,
      `${what} has no field ${field}`,
      keys ? `Its fields: ${keys}.` : 'The object is empty.',
    );
  }
  const v = (parsed as Record<string, unknown>)[field];
  return typeof v === 'string' ? v : JSON.stringify(v);
}

/** The credential fields a lease hands back (POST /v1/creds/… minus the timing fields). */
export interface IssuedFields {
  lease_id: string;
  username: string;
  password: string;
  data: Record<string, string>;
}

/**
 * The variables of one lease, in the order they are set: `PREFIX_USERNAME`, `PREFIX_PASSWORD`,
 * `PREFIX_LEASE_ID`, then each data field as `PREFIX_<FIELD>` — except fields already named like
 * variables (the MLflow engine's `MLFLOW_TRACKING_URI`), which keep their name, as in
 * `custody creds issue --format env`.
 */
export function leaseVariables(issued: IssuedFields, prefix: string): [string, string][] {
  const p = `${prefix}_`;
  const vars: [string, string][] = [
    [`${p}USERNAME`, issued.username],
    [`${p}PASSWORD`, issued.password],
    [`${p}LEASE_ID`, issued.lease_id],
  ];
  for (const [k, v] of Object.entries(issued.data ?? {})) {
    vars.push([/^[A-Z][A-Z0-9_]*$/.test(k) ? k : `${p}${k.toUpperCase().replace(/[^A-Z0-9]+/g, '_')}`, v]);
  }
  if ('MLFLOW_TRACKING_URI' in (issued.data ?? {})) {
    vars.push(['MLFLOW_TRACKING_USERNAME', issued.username], ['MLFLOW_TRACKING_PASSWORD', issued.password]);
  }
  const seen = new Set<string>();
  return vars.filter(([k]) => !seen.has(k) && seen.add(k));
}

/** The variables a lease spec will set before it is issued (for clash checks): the fixed three. */
export const credsFixedVariables = (prefix: string) => [
  `${prefix}_USERNAME`,
  `${prefix}_PASSWORD`,
  `${prefix}_LEASE_ID`,
];

/** What a spec sets before the lease is known: a template's variables, or the fixed three. */
export const credsSpecVariables = (spec: CredsSpec) =>
  spec.fields ? spec.fields.map(([v]) => v) : credsFixedVariables(spec.prefix);

/** One field of an issued lease: `username`, `password`, `lease_id`, or a data field (exact, else any case). */
export function leaseField(issued: IssuedFields, field: string, what: string): string {
  if (field === 'username') return issued.username;
  if (field === 'password') return issued.password;
  if (field === 'lease_id') return issued.lease_id;
  const data = issued.data ?? {};
  if (Object.hasOwn(data, field)) return data[field];
  const key = Object.keys(data).find((k) => k.toLowerCase() === field.toLowerCase());
  if (key !== undefined) return data[key];
  const fields = ['username', 'password', 'lease_id', ...Object.keys(data)].join(', ');
  throw new CustodyError(
    'FieldNotFound',
    404,
    `the lease of ${what} has no field ${field}`,
    `Its fields: ${fields}.`,
  );
}

/** The variables a spec sets from its lease: the template's picks, or `leaseVariables`. */
export function credsVariables(spec: CredsSpec, issued: IssuedFields): [string, string][] {
  if (!spec.fields) return leaseVariables(issued, spec.prefix);
  const what = `${spec.env}/${spec.engine}/${spec.role}`;
  return spec.fields.map(([v, f]) => [v, leaseField(issued, f, what)]);
}

/** The variables that hold a lease's password (for masking). */
export function passwordVariables(spec: CredsSpec): string[] {
  if (!spec.fields) return [`${spec.prefix}_PASSWORD`];
  return spec.fields.filter(([, f]) => f === 'password').map(([v]) => v);
}

/**
 * An `--env-template` file: `VAR=ENV/NAME[#field]` (a secret) or
 * `VAR=creds:ENV/ENGINE/ROLE#field` (a field of a lease; every line on one role shares one lease),
 * `#` comment lines and blank lines. Errors name the file and the line.
 */
export function parseEnvTemplate(text: string, file: string): { secrets: SecretSpec[]; creds: CredsSpec[] } {
  const secrets: SecretSpec[] = [];
  const creds = new Map<string, CredsSpec & { fields: [string, string][] }>();
  const seen = new Map<string, number>();
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, i) => {
    const n = i + 1;
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const at = (err: unknown): never => {
      if (err instanceof SpecError)
        throw new SpecError(err.code, `--env-template ${file}:${n}: ${err.message}`, err.hint);
      throw err;
    };
    const eq = line.indexOf('=');
    const variable = eq > 0 ? line.slice(0, eq).trim() : '';
    const ref = eq > 0 ? line.slice(eq + 1).trim() : '';
    if (!isVariableName(variable) || ref === '')
      at(
        new SpecError(
          'InvalidTemplateLine',
          'not VAR=ENV/NAME[#field] or VAR=creds:ENV/ENGINE/ROLE#field',
          'Example lines: DB_URL=prod/db/url and PGUSER=creds:prod/warehouse/reader#username.',
        ),
      );
    const prev = seen.get(variable);
    if (prev !== undefined)
      at(
        new SpecError(
          'VariableClash',
          `${variable} is already set on line ${prev}`,
          'Set each variable once.',
        ),
      );
    seen.set(variable, n);
    if (!ref.startsWith('creds:')) {
      try {
        secrets.push(parseSecretSpec(`${variable}=${ref}`));
      } catch (err) {
        at(err);
      }
      return;
    }
    const rest = ref.slice('creds:'.length);
    const hash = rest.indexOf('#');
    const field = hash === -1 ? '' : rest.slice(hash + 1).trim();
    if (field === '')
      at(
        new SpecError(
          'InvalidTemplateLine',
          `${variable}: a creds: reference needs #username, #password, #lease_id or #<data field>`,
          `Example: ${variable}=creds:prod/warehouse/reader#username.`,
        ),
      );
    const roleRef = rest.slice(0, hash).trim();
    let spec: CredsSpec | undefined;
    try {
      spec = parseCredsSpec(`${variable}=${roleRef}`);
    } catch (err) {
      at(err);
    }
    const key = roleRef;
    const held = creds.get(key);
    if (held) held.fields.push([variable, field]);
    else if (spec) creds.set(key, { ...spec, prefix: roleRef, fields: [[variable, field]] });
  });
  return { secrets, creds: [...creds.values()] };
}

/** The variables an MLflow client reads its credentials from. */
export const MLFLOW_AUTH_VARIABLES = [
  'MLFLOW_TRACKING_TOKEN',
  'MLFLOW_TRACKING_USERNAME',
  'MLFLOW_TRACKING_PASSWORD',
] as const;

/**
 * A stored MLflow credential in the formats of the mlflow-secrets-auth plugin, as variables: a JSON
 * object with `token` → MLFLOW_TRACKING_TOKEN; with `username` and `password` → the two basic-auth
 * variables; a plain `user:pass` → the same; any other plain string → a token. Errors never hold
 * the value.
 */
export function mlflowSecretVariables(value: string, what: string): [string, string][] {
  const trimmed = value.trim();
  if (trimmed.startsWith('{')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(trimmed);
    } catch {
      parsed = undefined;
    }
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) {
      const o = parsed as Record<string, unknown>;
      if (typeof o.token === 'string' && o.token !== '') return [['MLFLOW_TRACKING_TOKEN', o.token]];
      if (typeof o.username === 'string' && typeof o.password === 'string')
        return [
          ['MLFLOW_TRACKING_USERNAME', o.username],
          ['MLFLOW_TRACKING_PASSWORD', o.password],
        ];
    }
    throw new CustodyError(
      'InvalidMlflowSecret',
      422,
      `${what} is JSON but has neither token nor username and password`,
      'Store {"token":"…"}, {"username":"…","password":"…"} or user:pass.',
    );
  }
  const colon = trimmed.indexOf(':');
  if (colon > 0)
    return [
      ['MLFLOW_TRACKING_USERNAME', trimmed.slice(0, colon)],
      ['MLFLOW_TRACKING_PASSWORD', trimmed.slice(colon + 1)],
    ];
  return [['MLFLOW_TRACKING_TOKEN', trimmed]];
}

/** `--mlflow-secret ENV/NAME[#field]`: a SecretSpec without a variable. */
export function parseMlflowSecretSpec(text: string): Omit<SecretSpec, 'variable'> {
  const { env, name, field } = parseSecretSpec(`MLFLOW_TRACKING_TOKEN=${text}`);
  return { env, name, ...(field !== undefined ? { field } : {}) };
}
