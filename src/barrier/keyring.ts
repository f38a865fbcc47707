import { randomBytes } from 'node:crypto';

/** Versioned data keys. New writes use the active (newest) term; every older term stays readable. */
export interface Keyring {
  activeTerm: number;
  keys: { term: number; key: Buffer; createdAt: number }[];
}

export function newKeyring(): Keyring {
  return { activeTerm: 1, keys: [{ term: 1, key: randomBytes(32), createdAt: Date.now() }] };
}

export function addTerm(ring: Keyring): Keyring {
  const term = Math.max(...ring.keys.map((k) => k.term)) + 1;
  return { activeTerm: term, keys: [...ring.keys, { term, key: randomBytes(32), createdAt: Date.now() }] };
}

export function encodeKeyring(ring: Keyring): Buffer {
  return Buffer.from(
    JSON.stringify({
      activeTerm: ring.activeTerm,
      keys: ring.keys.map((k) => ({ term: k.term, key: k.key.toString('base64'), createdAt: k.createdAt })),
    }),
  );
}

export function decodeKeyring(buf: Buffer): Keyring {
  const raw = JSON.parse(buf.toString('utf8')) as {
    activeTerm: number;
    keys: { term: number; key: string; createdAt: number }[];
  };
  return {
    activeTerm: raw.activeTerm,
    keys: raw.keys.map((k) => ({ term: k.term, key: Buffer.from(k.key, 'base64'), createdAt: k.createdAt })),
  };
}
