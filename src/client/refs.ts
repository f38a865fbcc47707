/** `ENV/NAME[#field]` → its parts (NAME may contain `/`). */
export function parseSecretRef(ref: string): { env: string; name: string; field?: string } {
  const hash = ref.indexOf('#');
  const path = hash < 0 ? ref : ref.slice(0, hash);
  const field = hash < 0 ? undefined : ref.slice(hash + 1);
  const slash = path.indexOf('/');
  if (slash <= 0 || slash === path.length - 1 || field === '') {
    throw new Error(`invalid secret reference "${ref}": expected ENV/NAME or ENV/NAME#field`);
  }
  return { env: path.slice(0, slash), name: path.slice(slash + 1), ...(field ? { field } : {}) };
}

/** `ENV/ENGINE/ROLE` → its parts. */
export function parseRoleRef(ref: string): { env: string; engine: string; role: string } {
  const parts = ref.split('/');
  if (parts.length !== 3 || parts.some((p) => !p)) {
    throw new Error(`invalid credentials reference "${ref}": expected ENV/ENGINE/ROLE`);
  }
  return { env: parts[0], engine: parts[1], role: parts[2] };
}

/** A path and an optional `#field` suffix. */
export function splitField(ref: string): { path: string; field?: string } {
  const hash = ref.indexOf('#');
  if (hash < 0) return { path: ref };
  return { path: ref.slice(0, hash), field: ref.slice(hash + 1) || undefined };
}

/**
 * Picks `field` out of a JSON object value (non-string fields are JSON-encoded). Without a field the
 * value is returned as is. Error messages never contain the value.
 */
export function pickField(value: string, field: string | undefined, what: string): string {
  if (field === undefined) return value;
  let obj: unknown;
  try {
    obj = JSON.parse(value);
  } catch {
    throw new Error(`${what} is not JSON, so it has no field "${field}"`);
  }
  if (!obj || typeof obj !== 'object' || Array.isArray(obj) || !(field in obj)) {
    throw new Error(`${what} has no field "${field}"`);
  }
  const v = (obj as Record<string, unknown>)[field];
  return typeof v === 'string' ? v : JSON.stringify(v);
}
