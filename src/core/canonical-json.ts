/**
 * Canonical JSON: object keys sorted at every level, no white space, `undefined` members left
 * out. Two parties that hold the same value produce the same text, so it can be hashed or
 * MACed (audit entries, device messages).
 */
export function canonicalJson(value: unknown): string {
  // Exactly what survives a JSON round trip: toJSON() is applied, and what JSON drops or
  // nulls (undefined, functions, symbols) is dropped or nulled here too, so stored data hashes
  // the same after it is read back.
  const v = jsonValue(value);
  if (v === undefined) return 'null';
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  const record = v as Record<string, unknown>;
  const keys = Object.keys(record)
    .filter((k) => jsonValue(record[k]) !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(record[k])}`).join(',')}}`;
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
