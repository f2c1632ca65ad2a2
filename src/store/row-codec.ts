/**
 * Conversions between column values and domain values that more than one repository needs:
 * booleans as 0 / 1 and JSON as text. A stored value that does not decode is corruption, so it
 * throws rather than guessing.
 */
import { ThresholdError } from '../core/errors.ts';

/** A boolean as the integer 0 or 1. */
export function toFlag(value: boolean): number {
  return value ? 1 : 0;
}

/** The integer 0 or 1 as a boolean. */
export function fromFlag(value: number): boolean {
  return value !== 0;
}

/** `value` as JSON text; throws for values JSON cannot represent (undefined, functions). */
export function toJsonText(value: unknown): string {
  const text = JSON.stringify(value) as string | undefined;
  if (text === undefined) throw new TypeError('value cannot be stored as JSON');
  return text;
}

/** Parses stored JSON text; `what` names the column for the error. */
export function fromJsonText(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw corrupt(what, error);
  }
}

/** Parses stored JSON text that must be an array of strings. */
export function stringArrayFromJson(text: string, what: string): string[] {
  const value = fromJsonText(text, what);
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) {
    throw corrupt(what, 'not an array of strings');
  }
  return value;
}

/** Parses stored JSON text that must be an object. */
export function recordFromJson(text: string, what: string): Record<string, unknown> {
  const value = fromJsonText(text, what);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw corrupt(what, 'not an object');
  }
  return value as Record<string, unknown>;
}

function corrupt(what: string, cause: unknown): ThresholdError {
  const reason = cause instanceof Error ? cause.message : String(cause);
  const error = new ThresholdError('internal.error', `stored ${what} is corrupt: ${reason}`);
  error.cause = cause;
  return error;
}
