import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalJson } from './canonical-json.ts';

/**
 * The first implementation, kept as the specification: the text is hashed into the audit chain
 * and MACed by devices, so the faster one must produce exactly the same text for every value.
 */
function reference(value: unknown): string {
  const v = referenceValue(value);
  if (v === undefined) return 'null';
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(reference).join(',')}]`;
  const record = v as Record<string, unknown>;
  const keys = Object.keys(record)
    .filter((k) => referenceValue(record[k]) !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${reference(record[k])}`).join(',')}}`;
}

function referenceValue(value: unknown): unknown {
  const hasToJson =
    value !== null &&
    typeof value === 'object' &&
    typeof (value as { toJSON?: unknown }).toJSON === 'function';
  const v = hasToJson ? (value as { toJSON: () => unknown }).toJSON() : value;
  if (v === undefined || typeof v === 'function' || typeof v === 'symbol') return undefined;
  return v;
}

/** The text, or the name of the error thrown (a BigInt cannot be serialized). */
const outcome = (f: (v: unknown) => string, v: unknown): string => {
  try {
    return f(v);
  } catch (err) {
    return `threw ${err instanceof Error ? err.name : String(err)}`;
  }
};

describe('canonicalJson', () => {
  it('sorts keys at every level and leaves out white space', () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: 'x' } })).toBe(
      '{"a":{"c":"x","d":[3,{"y":2,"z":1}]},"b":1}',
    );
  });

  it('gives the same text before and after a JSON round trip', () => {
    const values: unknown[] = [
      { a: undefined, b: 1 },
      [undefined, 1, () => 1],
      { when: new Date(1_768_478_400_000) },
      { n: Number.NaN, i: Infinity },
      'text',
      null,
    ];
    for (const v of values) {
      expect(canonicalJson(JSON.parse(JSON.stringify(v)))).toBe(canonicalJson(v));
    }
  });

  it('writes exactly what the first implementation wrote, for any value', () => {
    const anything = fc.anything({
      withBigInt: true,
      withBoxedValues: true,
      withDate: true,
      withMap: true,
      withSet: true,
      withNullPrototype: true,
      withObjectString: true,
      withSparseArray: true,
      withTypedArray: true,
      withUnicodeString: true,
    });
    fc.assert(
      fc.property(anything, (v) => {
        expect(outcome(canonicalJson, v)).toBe(outcome(reference, v));
      }),
      { numRuns: 5_000 },
    );
  });

  it('writes exactly what the first implementation wrote for JSON read back from storage', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        expect(canonicalJson(v)).toBe(reference(v));
      }),
      { numRuns: 5_000 },
    );
  });

  it('keeps holes, functions, symbols and toJSON as the first implementation did', () => {
    const sparse: unknown[] = [1];
    sparse[3] = 'x';
    const odd = [
      sparse,
      { f: () => 1, s: Symbol('s'), u: undefined, k: 1 },
      [() => 1, Symbol('s'), undefined],
      { nested: { toJSON: () => ({ b: 2, a: 1 }) } },
      { toJSON: () => undefined },
      new String('ab'),
      Object.assign(Object.create(null) as object, { z: 1, a: [] }),
    ];
    for (const v of odd) expect(canonicalJson(v)).toBe(reference(v));
  });
});
