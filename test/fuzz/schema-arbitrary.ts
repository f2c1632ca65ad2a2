/**
 * Valid values of a JSON Schema, as fast-check arbitraries: the starting points the fuzzers
 * mutate. Covers what TypeBox emits for Threshold's HTTP and device schemas — objects (required
 * and optional keys), arrays (sizes, unique items), strings (length, pattern), integers and
 * numbers (bounds), booleans, null, `const`, `enum` and `anyOf`. Anything else (a `$ref`, a
 * schema-less body) yields arbitrary JSON.
 *
 * A string under a key named in the {@link IdPool} is drawn mostly from the pool: real ids of
 * the world under test, so that a mutation lands one step from a request the server accepts.
 */
import fc from 'fast-check';
import type { Json } from './arbitraries.ts';

/** A JSON Schema node, as TypeBox builds it (only the keywords read here are typed). */
export interface SchemaNode {
  readonly type?: string | readonly string[];
  readonly const?: unknown;
  readonly enum?: readonly unknown[];
  readonly anyOf?: readonly SchemaNode[];
  readonly properties?: Readonly<Record<string, SchemaNode>>;
  readonly required?: readonly string[];
  readonly additionalProperties?: boolean | SchemaNode;
  readonly patternProperties?: Readonly<Record<string, SchemaNode>>;
  readonly items?: SchemaNode;
  readonly minItems?: number;
  readonly maxItems?: number;
  readonly uniqueItems?: boolean;
  readonly minLength?: number;
  readonly maxLength?: number;
  readonly pattern?: string;
  readonly minimum?: number;
  readonly maximum?: number;
  readonly exclusiveMinimum?: number;
  readonly exclusiveMaximum?: number;
}

/** Real values by the key (or path parameter) they go under, e.g. `homeId` → the world's homes. */
export type IdPool = Readonly<Record<string, readonly string[]>>;

/** Longest string or array generated where the schema allows more (keeps requests small). */
const SOFT_MAX_LENGTH = 40;
const SOFT_MAX_ITEMS = 4;

function patternOf(node: SchemaNode): RegExp | null {
  if (node.pattern === undefined) return null;
  try {
    return new RegExp(node.pattern);
  } catch {
    return null;
  }
}

/** Whether a string satisfies the node's length and pattern. */
export function stringFits(node: SchemaNode, s: string): boolean {
  const len = [...s].length;
  if (node.minLength !== undefined && len < node.minLength) return false;
  if (node.maxLength !== undefined && len > node.maxLength) return false;
  const re = patternOf(node);
  return re === null || re.test(s);
}

function stringArbitrary(node: SchemaNode, pooled: readonly string[]): fc.Arbitrary<string> {
  const min = node.minLength ?? 0;
  const max = node.maxLength ?? min + SOFT_MAX_LENGTH;
  const re = patternOf(node);
  const fits = (s: string): boolean => stringFits(node, s);
  const generated = re
    ? fc.stringMatching(re, { size: 'small' }).filter(fits)
    : fc.oneof(
        fc.string({ minLength: min, maxLength: Math.min(max, min + SOFT_MAX_LENGTH) }),
        // Exactly on the length limits: where off-by-one bugs live. Long ones are one letter
        // repeated (cheap to make and to shrink).
        fc
          .constantFrom(...new Set([min, max]))
          .chain((n) =>
            n > 256
              ? fc.constant('A'.repeat(n))
              : fc.string({ minLength: n, maxLength: n, unit: 'grapheme-ascii' }),
          ),
      );
  const usable = pooled.filter(fits);
  if (usable.length === 0) return generated;
  return fc.oneof(
    { arbitrary: fc.constantFrom(...usable), weight: 3 },
    { arbitrary: generated, weight: 1 },
  );
}

function numberArbitrary(node: SchemaNode, integer: boolean): fc.Arbitrary<number> {
  const lo =
    node.minimum ?? (node.exclusiveMinimum !== undefined ? node.exclusiveMinimum + 1 : undefined);
  const hi =
    node.maximum ?? (node.exclusiveMaximum !== undefined ? node.exclusiveMaximum - 1 : undefined);
  const min = lo ?? (integer ? Number.MIN_SAFE_INTEGER : -1e12);
  const max = hi ?? (integer ? Number.MAX_SAFE_INTEGER : 1e12);
  const edges = [min, max, ...(min <= 0 && max >= 0 ? [0] : [])];
  const inner = integer
    ? fc.integer({
        min: Math.max(min, Number.MIN_SAFE_INTEGER),
        max: Math.min(max, Number.MAX_SAFE_INTEGER),
      })
    : fc.double({ min, max, noNaN: true, noDefaultInfinity: true });
  return fc.oneof(
    { arbitrary: inner, weight: 3 },
    { arbitrary: fc.constantFrom(...edges), weight: 1 },
  );
}

/**
 * An arbitrary of values valid under `node`. `key` is the property or parameter name the value
 * goes under, used to draw from `pool`.
 */
export function valueOf(
  node: SchemaNode | undefined,
  pool: IdPool = {},
  key = '',
): fc.Arbitrary<Json> {
  if (node === undefined) return fc.jsonValue({ maxDepth: 2 }) as fc.Arbitrary<Json>;
  if (node.const !== undefined) return fc.constant(node.const as Json);
  if (node.enum !== undefined) return fc.constantFrom(...(node.enum as Json[]));
  if (node.anyOf !== undefined) return fc.oneof(...node.anyOf.map((n) => valueOf(n, pool, key)));
  const type: string = typeof node.type === 'string' ? node.type : (node.type?.[0] ?? '');
  switch (type) {
    case 'object': {
      const props = node.properties ?? {};
      const model: Record<string, fc.Arbitrary<Json>> = {};
      for (const [k, n] of Object.entries(props)) model[k] = valueOf(n, pool, k);
      return fc.record(model, { requiredKeys: [...(node.required ?? [])] });
    }
    case 'array': {
      const item = valueOf(node.items, pool, key);
      const minLength = node.minItems ?? 0;
      const maxLength = Math.max(
        minLength,
        Math.min(node.maxItems ?? SOFT_MAX_ITEMS, minLength + SOFT_MAX_ITEMS),
      );
      return node.uniqueItems
        ? fc.uniqueArray(item, { minLength, maxLength, selector: (v) => JSON.stringify(v) })
        : fc.array(item, { minLength, maxLength });
    }
    case 'string':
      return stringArbitrary(node, pool[key] ?? []);
    case 'integer':
      return numberArbitrary(node, true);
    case 'number':
      return numberArbitrary(node, false);
    case 'boolean':
      return fc.boolean();
    case 'null':
      return fc.constant(null);
    default:
      return fc.jsonValue({ maxDepth: 2 }) as fc.Arbitrary<Json>;
  }
}
