/**
 * Reading rows for many keys at once (`where key in (…)`) without running into the databases'
 * limits on bound parameters (SQLite's 32 766, PostgreSQL's 65 535): the keys go in chunks.
 */

/** Keys per `in (…)` list: far below either limit, and large enough to cost few round trips. */
export const IN_LIST_CHUNK = 500;

/**
 * Runs `read` once per chunk of the distinct `keys` (at most {@link IN_LIST_CHUNK} each, in the
 * order given) and groups what it returns by `keyOf`. Within a key, rows keep the order `read`
 * returned them in: a chunk holds every row of each of its keys, so a query ordered as a
 * per-key query is gives each key's rows in the same order as that query. Keys without rows
 * map to an empty array.
 */
export async function groupedByKey<R>(
  keys: readonly string[],
  read: (chunk: string[]) => Promise<readonly R[]>,
  keyOf: (row: R) => string,
): Promise<Map<string, R[]>> {
  const distinct = [...new Set(keys)];
  const out = new Map<string, R[]>(distinct.map((k) => [k, []]));
  for (let from = 0; from < distinct.length; from += IN_LIST_CHUNK) {
    for (const row of await read(distinct.slice(from, from + IN_LIST_CHUNK))) {
      out.get(keyOf(row))?.push(row);
    }
  }
  return out;
}
