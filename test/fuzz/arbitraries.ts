/**
 * fast-check arbitraries for hostile input, shared by the API and the device fuzzers: malformed
 * JSON text, wrong types, boundary numbers, huge strings, awkward Unicode, injection strings,
 * and — where most real bugs hide — mutations one step away from a valid value (a key dropped,
 * an unknown key added, one value of the wrong type or on a boundary).
 *
 * Everything here is data: nothing knows about HTTP, MQTT or Threshold's schemas.
 */
import fc from 'fast-check';

/** A JSON value, as `JSON.parse` returns it. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Strings that break naive SQL, shells, templates, paths, HTML or object handling. */
export const INJECTION_STRINGS: readonly string[] = [
  "' OR 1=1 --",
  "' OR '1'='1",
  '"; DROP TABLE principals; --',
  "'); DELETE FROM audit_entries; --",
  '1; SELECT * FROM api_keys',
  '%',
  '_',
  '\\',
  '\\"',
  '${7*7}',
  '#{7*7}',
  '{{7*7}}',
  '{{constructor.constructor("return process")()}}',
  '<%= 7*7 %>',
  '../../etc/passwd',
  '..\\..\\windows\\win.ini',
  '%2e%2e%2f%2e%2e%2fetc%2fpasswd',
  '....//....//etc/passwd',
  '/etc/passwd\u0000.png',
  'file:///etc/passwd',
  '<script>alert(1)</script>',
  '"><img src=x onerror=alert(1)>',
  'javascript:alert(1)',
  '__proto__',
  'constructor',
  'prototype',
  'hasOwnProperty',
  'toString',
  '$where',
  '{"$gt":""}',
  '$(reboot)',
  '`reboot`',
  '|| reboot',
  '\r\nSet-Cookie: threshold_session=stolen',
  '%0d%0aSet-Cookie:%20x=y',
  'Bearer ',
  'thk_',
  'thk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
  'null',
  'undefined',
  'NaN',
  'Infinity',
  '-0',
  '1e308',
  'true',
  '[]',
  '{}',
  '0x1F',
  '%s%s%s%n',
  'http://169.254.169.254/latest/meta-data/',
  'https://127.0.0.1:22/',
];

/** Strings that trip Unicode handling: direction marks, invisibles, lone surrogates, NUL, emoji. */
export const UNICODE_STRINGS: readonly string[] = [
  '',
  ' ',
  '\u0000',
  'a\u0000b',
  '\u0007\u0008\u001b[31m',
  '\u202eevil\u202c',
  '\u200f\u200e',
  'a\u200bb',
  '\u200d',
  '\ufeff',
  '\ufffe\uffff',
  '\ud800',
  '\udc00',
  'x\ud83d',
  '\ude00x',
  '😀',
  '👩‍👩‍👧‍👦',
  '🏳️‍🌈',
  'e\u0301',
  '\u00e9',
  'İ',
  'ß',
  'ﬃ',
  'Ω',
  'Ａｄｍｉｎ',
  'ℌ𝔢𝔩𝔩𝔬',
  '\u2028\u2029',
  '\u0085',
  '\t\n\r\u000b\u000c',
  'مرحبا',
  '中文字符',
  'Z̴̡̛̖̮͇a̸l̶g̷o̵',
];

/** Numbers on the edges: zero and its sign, ±1, the int32/uint32 and safe-integer limits, huge. */
export const BOUNDARY_NUMBERS: readonly number[] = [
  0,
  -0,
  1,
  -1,
  0.5,
  -0.5,
  0.1,
  1.5,
  2 ** 31 - 1,
  2 ** 31,
  -(2 ** 31),
  2 ** 32,
  2 ** 53 - 1,
  2 ** 53,
  2 ** 53 + 2,
  -(2 ** 53),
  1e15,
  1e16,
  946_684_800_000,
  7_258_118_400_000,
  7_258_118_400_001,
  1e308,
  -1e308,
  Number.MAX_VALUE,
  Number.MIN_VALUE,
  5e-324,
];

/**
 * Number-like JSON texts that `JSON.stringify` cannot write: beyond double range (`1e309`
 * parses to Infinity), more digits than a double holds, odd spellings, and non-JSON words.
 */
export const NUMBER_TEXTS: readonly string[] = [
  '-0',
  '1e309',
  '-1e309',
  '1e-400',
  '9007199254740993',
  '123456789012345678901234567890',
  '1.0',
  '1E2',
  '0.0000001',
  '1e+2',
  '00',
  '01',
  '+1',
  '.5',
  '5.',
  'NaN',
  'Infinity',
  '-Infinity',
  '0x10',
];

/** Keys that reach prototypes in careless code. */
export const PROTO_KEYS: readonly string[] = ['__proto__', 'constructor', 'prototype'];

/** Text that is not JSON, or is JSON of a surprising kind. */
export const MALFORMED_JSON_TEXTS: readonly string[] = [
  '',
  ' ',
  '{',
  '}',
  '{"',
  '{"a":',
  '{"a":1,}',
  '{"a":1',
  "{'a':1}",
  '{a:1}',
  '[1,2',
  '[,]',
  '{"a":1}{"b":2}',
  '{"a":1} trailing',
  '{"a":"\\x41"}',
  '{"a":"\\ud800"}',
  '{"a":"\u0000"}',
  '{"a":undefined}',
  '{"a":NaN}',
  '\ufeff{}',
  '/* comment */ {}',
  'nul',
  'tru',
  'null',
  'true',
  '0',
  '"string"',
  '[]',
  '[{}]',
  '{"__proto__":{"isAdmin":true}}',
  '{"constructor":{"prototype":{"isAdmin":true}}}',
  '{"a":1,"a":2}',
  '['.repeat(5_000) + ']'.repeat(5_000),
  '{"a":'.repeat(2_000) + '1' + '}'.repeat(2_000),
];

/** A string of at least `minLength` UTF-16 units: one character repeated, or a pattern. */
export function hugeString(minLength: number): fc.Arbitrary<string> {
  return fc
    .tuple(
      fc.constantFrom('x', 'é', '😀', '\u0000', '%', '"', 'ab"c\\'),
      fc.integer({ min: 0, max: 64 }),
    )
    .map(([unit, extra]) => unit.repeat(Math.ceil(minLength / unit.length) + extra));
}

/** Lone surrogate halves, alone or inside other text (not valid UTF-16, not encodable UTF-8). */
function surrogateString(): fc.Arbitrary<string> {
  const half = fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c));
  return fc.string({ unit: fc.oneof(half, fc.constantFrom('a', '1', '-')), maxLength: 6 });
}

/** One hostile string: injection, awkward Unicode, control characters, random code points. */
export function hostileString(): fc.Arbitrary<string> {
  return fc.oneof(
    { arbitrary: fc.constantFrom(...INJECTION_STRINGS), weight: 4 },
    { arbitrary: fc.constantFrom(...UNICODE_STRINGS), weight: 4 },
    { arbitrary: fc.constantFrom(...NUMBER_TEXTS), weight: 1 },
    { arbitrary: fc.string({ unit: 'binary', maxLength: 24 }), weight: 2 },
    { arbitrary: fc.string({ unit: 'binary-ascii', maxLength: 24 }), weight: 2 },
    { arbitrary: fc.string({ unit: 'grapheme', maxLength: 12 }), weight: 1 },
    { arbitrary: surrogateString(), weight: 1 },
    { arbitrary: fc.string({ minLength: 65, maxLength: 300 }), weight: 1 },
  );
}

/** One boundary number (see {@link BOUNDARY_NUMBERS}) or any double, NaN and infinities aside. */
export function boundaryNumber(): fc.Arbitrary<number> {
  return fc.oneof(
    { arbitrary: fc.constantFrom(...BOUNDARY_NUMBERS), weight: 4 },
    { arbitrary: fc.double({ noNaN: true, noDefaultInfinity: true }), weight: 1 },
    { arbitrary: fc.integer(), weight: 1 },
  );
}

/** An object whose own keys include a prototype key (`JSON.stringify` writes it as any key). */
function protoObject(inner: fc.Arbitrary<Json>): fc.Arbitrary<Json> {
  return fc.tuple(fc.constantFrom(...PROTO_KEYS), inner).map(([key, value]) => {
    const o: Record<string, Json> = {};
    Object.defineProperty(o, key, { value, enumerable: true, writable: true, configurable: true });
    return o;
  });
}

/** Any JSON value of a hostile kind: wrong types for whatever a key expected. */
export function hostileValue(): fc.Arbitrary<Json> {
  const { value } = fc.letrec<{ value: Json }>((tie) => ({
    value: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      { arbitrary: fc.constant(null), weight: 2 },
      { arbitrary: fc.boolean(), weight: 2 },
      { arbitrary: boundaryNumber(), weight: 3 },
      { arbitrary: hostileString(), weight: 4 },
      { arbitrary: fc.array(tie('value'), { maxLength: 3 }), weight: 1 },
      {
        arbitrary: fc.dictionary(
          fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom(...PROTO_KEYS)),
          tie('value'),
          { maxKeys: 3 },
        ),
        weight: 1,
      },
      { arbitrary: protoObject(tie('value')), weight: 1 },
    ),
  }));
  return value;
}

/** Where a value sits in a JSON tree: the keys (or indexes) from the root. */
type JsonPath = readonly (string | number)[];

/** Every object and array node of a JSON tree, root first. */
function containers(v: Json, at: JsonPath = []): JsonPath[] {
  if (v === null || typeof v !== 'object') return [];
  const here: JsonPath[] = [at];
  if (Array.isArray(v)) return here.concat(...v.map((x, i) => containers(x, [...at, i])));
  return here.concat(...Object.entries(v).map(([k, x]) => containers(x, [...at, k])));
}

function nodeAt(v: Json, path: JsonPath): Json {
  let cur: Json = v;
  for (const step of path) cur = (cur as Record<string | number, Json>)[step] as Json;
  return cur;
}

/** A deep copy with the node at `path` replaced by `fn(node)`; `undefined` removes it. */
function withNode(v: Json, path: JsonPath, fn: (node: Json) => Json | undefined): Json {
  if (path.length === 0) return fn(v) ?? null;
  const [head, ...rest] = path as [string | number, ...(string | number)[]];
  if (Array.isArray(v)) {
    const copy = v.slice();
    const next = rest.length === 0 ? fn(copy[head as number] as Json) : undefined;
    if (rest.length > 0) copy[head as number] = withNode(copy[head as number] as Json, rest, fn);
    else if (next === undefined) copy.splice(head as number, 1);
    else copy[head as number] = next;
    return copy;
  }
  const obj = v as Record<string, Json>;
  const copy: Record<string, Json> = {};
  for (const [k, x] of Object.entries(obj)) {
    if (k !== head) {
      copy[k] = x;
      continue;
    }
    const next = rest.length === 0 ? fn(x) : withNode(x, rest, fn);
    if (next !== undefined) copy[k] = next;
  }
  return copy;
}

/** The keys of the object at `path` (or indexes of the array). */
function childrenOf(node: Json): (string | number)[] {
  if (Array.isArray(node)) return node.map((_, i) => i);
  if (node !== null && typeof node === 'object') return Object.keys(node);
  return [];
}

/** What a mutation did, for failure messages. */
export interface Mutated {
  readonly value: Json;
  readonly how: string;
}

/** Values that sit on an edge of what a field may hold, of any type. */
function boundaryValue(): fc.Arbitrary<Json> {
  return fc.oneof(
    boundaryNumber(),
    fc.constantFrom<Json>('', ' ', '0', '-1', 'a'.repeat(64), 'a'.repeat(65), 'a'.repeat(257)),
    fc.constantFrom<Json>([], {}, [null], null, true, false),
  );
}

/**
 * One mutation of a valid value: a key dropped, an unknown (or prototype) key added, a value
 * replaced by one of another type, set to a boundary, or set to a hostile string; or the whole
 * value wrapped or replaced.
 */
export function mutation(valid: Json): fc.Arbitrary<Mutated> {
  const nodes = containers(valid);
  const whole = fc.oneof(
    fc.constant<Mutated>({ value: [valid], how: 'wrapped in an array' }),
    hostileValue().map((value) => ({ value, how: 'replaced whole' })),
  );
  if (nodes.length === 0) return whole;
  const pick = fc.constantFrom(...nodes);
  const onChild = (
    how: string,
    replacement: fc.Arbitrary<Json | undefined>,
  ): fc.Arbitrary<Mutated | null> =>
    pick.chain((path) => {
      const children = childrenOf(nodeAt(valid, path));
      if (children.length === 0) return fc.constant(null);
      return fc.tuple(fc.constantFrom(...children), replacement).map(([child, next]) => ({
        value: withNode(valid, [...path, child], () => next),
        how: `${how} at /${[...path, child].join('/')}`,
      }));
    });
  const addKey = pick.chain((path) =>
    fc
      .tuple(
        fc.oneof(
          fc.constantFrom(...PROTO_KEYS, 'extra', 'isAdmin', 'role', 'id', ''),
          hostileString(),
        ),
        hostileValue(),
      )
      .map(([key, value]): Mutated => {
        const how = `added key ${JSON.stringify(key)} at /${path.join('/')}`;
        return {
          value: withNode(valid, path, (node) => {
            if (Array.isArray(node)) return [...node, value];
            const copy = { ...(node as Record<string, Json>) };
            Object.defineProperty(copy, key, {
              value,
              enumerable: true,
              writable: true,
              configurable: true,
            });
            return copy;
          }),
          how,
        };
      }),
  );
  const mutations = fc.oneof(
    onChild('dropped', fc.constant(undefined)),
    onChild('wrong type', hostileValue()),
    onChild('boundary value', boundaryValue()),
    onChild('hostile string', hostileString()),
    addKey,
    whole,
  );
  // A container without children cannot drop or retype one: fall back to adding a key.
  return fc.oneof(mutations, addKey).map((m) => m ?? { value: [valid], how: 'wrapped' });
}

/** A valid value, or one mutation of it (two times in three). */
export function validOrMutated(valid: fc.Arbitrary<Json>): fc.Arbitrary<Mutated> {
  return valid.chain((v) =>
    fc.oneof(
      { arbitrary: fc.constant<Mutated>({ value: v, how: 'valid' }), weight: 1 },
      { arbitrary: mutation(v), weight: 2 },
    ),
  );
}

/**
 * JSON text of a value, or a text-level corruption of it: truncated, a duplicated key, a
 * number spelled as JSON cannot write, a byte-order mark, or padded with whitespace.
 */
export function corruptedJsonText(v: Json): fc.Arbitrary<{ text: string; how: string }> {
  const text = JSON.stringify(v);
  return fc.oneof(
    fc.nat(Math.max(0, text.length - 1)).map((n) => ({ text: text.slice(0, n), how: 'truncated' })),
    fc.constantFrom(...NUMBER_TEXTS).map((n) => ({
      text: /:\s*-?\d/.test(text) ? text.replace(/(:\s*)-?\d[\d.eE+-]*/, `$1${n}`) : `${text}${n}`,
      how: `number spelled ${n}`,
    })),
    fc.constant({ text: duplicatedFirstKey(v, text), how: 'duplicated first key' }),
    fc.constant({ text: `\ufeff${text}`, how: 'byte-order mark' }),
    fc.constant({ text: ` \n\t${text}\n `, how: 'whitespace around' }),
  );
}

/** The text with the object's first key written twice, a hostile value first (`[` + text if none). */
function duplicatedFirstKey(v: Json, text: string): string {
  const first =
    v !== null && typeof v === 'object' && !Array.isArray(v) ? Object.keys(v)[0] : undefined;
  return first === undefined
    ? `[${text}`
    : `{${JSON.stringify(first)}:"' OR 1=1 --",${text.slice(1)}`;
}

/** Raw bytes: random, invalid UTF-8 sequences, or NUL-filled. */
export function hostileBytes(maxLength = 64): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    fc.uint8Array({ maxLength }),
    fc.constantFrom(
      Uint8Array.from([0xff, 0xfe, 0xfd]),
      Uint8Array.from([0x7b, 0xc3, 0x28, 0x7d]),
      Uint8Array.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0xed, 0xa0, 0x80, 0x7d]),
      Uint8Array.from([0xef, 0xbb, 0xbf, 0x7b, 0x7d]),
      new Uint8Array(32),
    ),
  );
}
