import type { Storage } from './storage.js';

/** Small key/value records (seal configuration, encrypted keyring, install keys). */
export interface MetaStore {
  get(key: string): Promise<string | undefined>;
  put(key: string, value: string): Promise<void>;
  /** Writes only if the key is absent; false when another writer got there first. */
  insert(key: string, value: string): Promise<boolean>;
}

export function metaStore(storage: Storage): MetaStore {
  const { db } = storage;
  return {
    async get(key) {
      const row = await db
        .selectFrom('custody_meta')
        .select('value')
        .where('key', '=', key)
        .executeTakeFirst();
      return row?.value;
    },
    async put(key, value) {
      await db
        .insertInto('custody_meta')
        .values({ key, value })
        .onConflict((oc) => oc.column('key').doUpdateSet({ value }))
        .execute();
    },
    async insert(key, value) {
      const res = await db
        .insertInto('custody_meta')
        .values({ key, value })
        .onConflict((oc) => oc.column('key').doNothing())
        .executeTakeFirst();
      return Number(res.numInsertedOrUpdatedRows ?? 0) > 0;
    },
  };
}
