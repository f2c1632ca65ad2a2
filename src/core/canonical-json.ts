/**
 * Canonical JSON: object keys sorted at every level, no white space, `undefined` members left
 * out. Two parties that hold the same value produce the same text, so it can be hashed or
 * MACed (audit entries, device messages).
 *
 * The text is part of what is signed and chained, so it must never change: the tests hold this
 * implementation to the original recursive one (kept in canonical-json.test.ts) on arbitrary
 * values. It is written as loops that append to one string because every audit entry is
 * serialized once when appended and again by every verification (a million entries per
 * `threshold audit verify` of a large log).
 */
export function canonicalJson(value: unknown): string {
  // Exactly what survives a JSON round trip: toJSON() is applied, and what JSON drops or
  // nulls (undefined, functions, symbols) is dropped or nulled here too, so stored data hashes
  // the same after it is read back.
  const v = jsonValue(value);
  return v === undefined ? 'null' : write(v);
}

/**
 * The canonical text of an object member's value, or undefined when JSON leaves the member out
 * (undefined, a function, a symbol). For writers of objects whose keys are fixed, which put the
 * members in sorted key order themselves and so need not sort them on every call.
 */
export function canonicalMemberText(value: unknown): string | undefined {
  const v = jsonValue(value);
  return v === undefined ? undefined : write(v);
}

/** The canonical text of `v`, a value {@link jsonValue} has already resolved (not undefined). */
function write(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) {
    let out = '[';
    for (let i = 0; i < v.length; i++) {
      if (i > 0) out += ',';
      // A hole writes nothing, as `map(...).join(',')` did; JSON itself has no holes.
      if (!(i in v)) continue;
      const item = jsonValue(v[i]);
      out += item === undefined ? 'null' : write(item);
    }
    return `${out}]`;
  }
  const record = v as Record<string, unknown>;
  const keys = Object.keys(record);
  // Objects are mostly written with their keys in order already; sort() would compare the
  // same way (code units), so only unsorted keys are sorted.
  for (let i = 1; i < keys.length; i++) {
    if (keys[i - 1]! > keys[i]!) {
      keys.sort();
      break;
    }
  }
  let out = '{';
  for (const k of keys) {
    const item = jsonValue(record[k]);
    if (item === undefined) continue;
    if (out.length > 1) out += ',';
    out += `${quotedKey(k)}:${write(item)}`;
  }
  return `${out}}`;
}

/** Keys quoted so far: the same few keys recur in every entry and message. */
const quotedKeys = new Map<string, string>();
/** Bound on {@link quotedKeys}, so keys from untrusted input cannot grow it without end. */
const QUOTED_KEYS_MAX = 4_096;

/** `JSON.stringify(key)`, remembered for the first {@link QUOTED_KEYS_MAX} keys. */
function quotedKey(key: string): string {
  let q = quotedKeys.get(key);
  if (q === undefined) {
    q = JSON.stringify(key);
    if (quotedKeys.size < QUOTED_KEYS_MAX) quotedKeys.set(key, q);
  }
  return q;
}

function jsonValue(value: unknown): unknown {
  const hasToJson =
    value !== null &&
    typeof value === 'object' &&
    typeof (value as { toJSON?: unknown }).toJSON === 'function';
  const v = hasToJson ? (value as { toJSON: () => unknown }).toJSON() : value;
  if (v === undefined || typeof v === 'function' || typeof v === 'symbol') return undefined;
  return v;
}
