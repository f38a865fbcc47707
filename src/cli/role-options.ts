import * as A from './args.js';
import { usageError } from './errors.js';
import type { Output } from './output.js';

/*
 * Option plumbing shared by the commands that write auth methods, login roles, engines and engine
 * roles: optional flags become snake_case body fields only when given (the broker applies its own
 * defaults to absent ones), flag families that belong to different kinds of role are kept apart,
 * and the saved object is shown as the API returned it (json) or one setting per line (table).
 */

type Options = Record<string, unknown>;

/** `{ key: value }` when the flag was given (parsed on the way), else nothing to spread. */
export function given<V>(
  value: V | undefined,
  key: string,
  parse: (v: V) => unknown = (v) => v,
): Record<string, unknown> {
  return value !== undefined ? { [key]: parse(value) } : {};
}

/** A duration flag (`1h`, `90s`) as a body field: checked here, sent as written. */
export const durationField = (value: string | undefined, key: string, flag: string) =>
  given(value, key, (v) => A.duration(v, flag));

/** A repeatable flag as a list field: only when given at least once. */
export const listField = (list: string[] | undefined, key: string): Record<string, unknown> =>
  list?.length ? { [key]: list } : {};

/**
 * Repeated `--flag k=v` where a key may repeat: a key given once is a string, a repeated key the
 * list of its values (`--bound-claim ref=main --bound-claim ref=release`).
 */
export function multiPairs(
  list: string[] | undefined,
  flag: string,
): Record<string, string | string[]> | undefined {
  if (!list?.length) return undefined;
  const out: Record<string, string[]> = {};
  for (const item of list) {
    const [k, v] = A.pair(item, flag);
    out[k] = [...(out[k] ?? []), v];
  }
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.length === 1 ? v[0] : v]));
}

/** Refuses the given flags (option key → flag) that make no sense here; `why` ends the sentence. */
export function rejectFlags(o: Options, flags: Record<string, string>, why: string): void {
  const given = Object.entries(flags)
    .filter(([key]) => o[key] !== undefined && o[key] !== false)
    .map(([, flag]) => flag);
  if (given.length)
    throw usageError(`${given.join(', ')} ${given.length === 1 ? 'does' : 'do'} not apply ${why}`);
}

/**
 * One role write takes flags of one family only (jwt or approle; SQL or MLflow): a role belongs to
 * one method or engine type, and the broker would otherwise drop or refuse half of them.
 */
export function oneFamily(o: Options, families: [string[], string[]], message: string, hint: string): void {
  const [a, b] = families.map((keys) => keys.some((k) => o[k] !== undefined));
  if (a && b) throw usageError(message, hint);
}

/** json: the API response as is; table: one setting per line. */
export function showSettings<T>(out: Output, obj: T, rows: (o: T) => Record<string, unknown>): void {
  if (out.json) out.printJson(obj);
  else out.object(rows(obj));
}
