import { describe, expect, it } from 'vitest';
import { canonicalJson } from './canonical-json.ts';

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
});
