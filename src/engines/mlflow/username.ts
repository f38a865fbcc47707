import { randomInt } from 'node:crypto';

/**
 * Dynamic MLflow user names from a template such as
 * `custody-{{env}}-{{role}}-{{identity}}-{{random}}`. Every substituted value is untrusted text
 * (identity names come from token claims): each is folded to `[a-z0-9._-]`, capped, and the whole
 * name is capped at MAX_USERNAME characters while always keeping RANDOM_LENGTH random characters,
 * so names stay unique and safe in URLs, logs and the MLflow UI.
 */

export const MAX_USERNAME = 64;
export const RANDOM_LENGTH = 10;
const MAX_TEMPLATE = 128;
const VARIABLES = ['env', 'engine', 'role', 'identity', 'random', 'unix_time'] as const;
type Variable = (typeof VARIABLES)[number];
const CAPS: Record<Variable, number> = {
  env: 16,
  engine: 24,
  role: 24,
  identity: 32,
  random: RANDOM_LENGTH,
  unix_time: 12,
};
const PLACEHOLDER = /\{\{\s*([a-z_]+)\s*\}\}/g;
const RANDOM_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

export interface UsernameValues {
  env: string;
  engine: string;
  role: string;
  identity: string;
  now?: Date;
}

/** Throws an Error (with a message fit for a 400) when the template is unusable. */
export function validateUsernameTemplate(template: string): void {
  if (!template || template.length > MAX_TEMPLATE) {
    throw new Error(`username_template must be 1-${MAX_TEMPLATE} characters`);
  }
  for (const m of template.matchAll(PLACEHOLDER)) {
    if (!VARIABLES.includes(m[1] as Variable)) {
      throw new Error(
        `username_template has an unknown variable {{${m[1]}}} (known: ${VARIABLES.join(', ')})`,
      );
    }
  }
  const literal = template.replace(PLACEHOLDER, '');
  if (!/^[a-z0-9._-]*$/.test(literal)) {
    throw new Error('username_template text outside {{…}} may only use a-z 0-9 . _ -');
  }
}

/** Lower-case ASCII letters, digits, `.`, `_` and `-`; anything else becomes one `-`. */
export function sanitizePart(value: string, cap: number): string {
  const folded = value
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, '-')
    .replace(/([._-])[._-]+/g, '$1')
    .replace(/^[._-]+|[._-]+$/g, '');
  return folded.slice(0, cap).replace(/[._-]+$/, '');
}

export function randomSuffix(length = RANDOM_LENGTH): string {
  let out = '';
  for (let i = 0; i < length; i++) out += RANDOM_ALPHABET[randomInt(RANDOM_ALPHABET.length)];
  return out;
}

export function renderUsername(template: string, values: UsernameValues, random = randomSuffix()): string {
  // A template without {{random}} still gets one: names must never collide or be guessable.
  const t = /\{\{\s*random\s*\}\}/.test(template) ? template : `${template}-{{random}}`;
  const RANDOM_MARK = '\u0000';
  const rendered = t.replace(PLACEHOLDER, (_, name: Variable) => {
    switch (name) {
      case 'random':
        return RANDOM_MARK;
      case 'unix_time':
        return String(Math.floor((values.now ?? new Date()).getTime() / 1000));
      default:
        return sanitizePart(values[name], CAPS[name]) || 'x';
    }
  });
  const collapse = (s: string) => s.replace(/([._-])[._-]+/g, '$1');
  const fixStart = (s: string) => {
    const v = s.replace(/^[._-]+/, '');
    return v && !/^[a-z0-9]/.test(v) ? `u${v}` : v;
  };
  let name = fixStart(collapse(rendered).split(RANDOM_MARK).join(random));
  if (name.length > MAX_USERNAME) {
    // Too long: keep the start of the fixed text and move the random part to the end.
    const rest = fixStart(collapse(rendered.split(RANDOM_MARK).join('')));
    const head = rest.slice(0, MAX_USERNAME - random.length - 1).replace(/[._-]+$/, '');
    name = head ? `${head}-${random}` : random;
  }
  return name;
}
