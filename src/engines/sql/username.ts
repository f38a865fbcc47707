import { randomInt } from 'node:crypto';
import { badRequest } from '../../errors.js';
import type { IssueContext } from '../engine.js';

/**
 * Database user names for dynamic credentials, shared by the SQL engines.
 *
 * A name comes from a template (`v_{{env}}_{{role}}_{{identity}}_{{random}}` by default) whose
 * variables are untrusted text (claim values may carry quotes, `;`, unicode). Every part is reduced
 * to `[a-z0-9_]`, and the whole is cut to the backend's limit by shortening the variable parts —
 * never the random part, which keeps names unique.
 */

export const DEFAULT_USERNAME_TEMPLATE = 'v_{{env}}_{{role}}_{{identity}}_{{random}}';
export const RANDOM_LENGTH = 10;
const RANDOM_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';
const TEMPLATE_VARS = ['env', 'engine', 'role', 'identity', 'random', 'unix_time'] as const;
type TemplateVar = (typeof TEMPLATE_VARS)[number];
const PLACEHOLDER = /\{\{\s*([A-Za-z_]+)\s*\}\}/g;
const MAX_TEMPLATE_LENGTH = 256;

/** Lower-case ASCII letters, digits and `_`: accents are dropped (ü → u), everything else becomes `_`. */
export function sanitizeNamePart(value: string): string {
  return value
    .normalize('NFKD')
    .toLowerCase()
    .replace(/\p{M}+/gu, '')
    .replace(/[^a-z0-9_]+/g, '_')
    .replace(/_+/g, '_');
}

type Segment = { kind: 'literal'; text: string } | { kind: 'var'; name: TemplateVar };

function parseTemplate(template: string): Segment[] {
  const segments: Segment[] = [];
  let last = 0;
  for (const m of template.matchAll(PLACEHOLDER)) {
    if (m.index > last) segments.push({ kind: 'literal', text: template.slice(last, m.index) });
    segments.push({ kind: 'var', name: m[1] as TemplateVar });
    last = m.index + m[0].length;
  }
  if (last < template.length) segments.push({ kind: 'literal', text: template.slice(last) });
  return segments;
}

/**
 * Checks a `username_template` (throws a 400 with a hint). It must contain `{{random}}` exactly
 * once, only known variables, and leave room for the random part within `maxLength`.
 */
export function validateUsernameTemplate(template: unknown, maxLength: number): string {
  const hint = `Variables: ${TEMPLATE_VARS.map((v) => `{{${v}}}`).join(', ')}. Example: ${DEFAULT_USERNAME_TEMPLATE}`;
  if (typeof template !== 'string' || template.length === 0 || template.length > MAX_TEMPLATE_LENGTH) {
    throw badRequest(
      'InvalidRoleConfig',
      `username_template must be a string of 1-${MAX_TEMPLATE_LENGTH} characters`,
      hint,
    );
  }
  let randoms = 0;
  for (const m of template.matchAll(PLACEHOLDER)) {
    if (!(TEMPLATE_VARS as readonly string[]).includes(m[1])) {
      throw badRequest('InvalidRoleConfig', `username_template has an unknown variable {{${m[1]}}}`, hint);
    }
    if (m[1] === 'random') randoms++;
  }
  if (randoms !== 1) {
    throw badRequest(
      'InvalidRoleConfig',
      'username_template must contain {{random}} exactly once (it keeps user names unique)',
      hint,
    );
  }
  const literal = template.replace(PLACEHOLDER, '');
  if (literal.includes('{{') || literal.includes('}}')) {
    throw badRequest('InvalidRoleConfig', 'username_template has an unterminated {{variable}}', hint);
  }
  if (sanitizeNamePart(literal).length + RANDOM_LENGTH > maxLength) {
    throw badRequest(
      'InvalidRoleConfig',
      `username_template's fixed text leaves no room for the ${RANDOM_LENGTH}-character random part within ${maxLength} characters`,
      hint,
    );
  }
  return template;
}

export function randomSuffix(length = RANDOM_LENGTH): string {
  let out = '';
  for (let i = 0; i < length; i++) out += RANDOM_ALPHABET[randomInt(RANDOM_ALPHABET.length)];
  return out;
}

/**
 * Renders a (validated) template into a user name of `[a-z0-9_]`, at most `maxLength` characters,
 * that always ends up containing the whole random part.
 */
export function generateUsername(
  template: string,
  ctx: Pick<IssueContext, 'env' | 'engine' | 'role' | 'identityName'>,
  maxLength: number,
  random: string = randomSuffix(),
): string {
  const values: Record<TemplateVar, string> = {
    env: ctx.env,
    engine: ctx.engine,
    role: ctx.role,
    identity: ctx.identityName,
    random,
    unix_time: String(Math.floor(Date.now() / 1000)),
  };
  const parts = parseTemplate(template).map((s) => {
    if (s.kind === 'literal') return { text: sanitizeNamePart(s.text), shrinkable: false };
    if (s.name === 'random') return { text: random, shrinkable: false };
    const text = sanitizeNamePart(String(values[s.name] ?? ''))
      .replace(/^_+|_+$/g, '')
      .slice(0, maxLength);
    return { text, shrinkable: true };
  });
  const join = () =>
    parts
      .map((p) => p.text)
      .join('')
      .replace(/_+/g, '_')
      .replace(/^_+|_+$/g, '');
  let name = join();
  while (name.length > maxLength) {
    // Shorten the longest variable part by one, so every part keeps some of its meaning.
    let longest: (typeof parts)[number] | undefined;
    for (const p of parts)
      if (p.shrinkable && p.text.length > 0 && (!longest || p.text.length > longest.text.length)) longest = p;
    if (!longest) throw new Error('username template does not fit (validate it first)');
    longest.text = longest.text.slice(0, -1).replace(/_+$/, '');
    name = join();
  }
  return name;
}
