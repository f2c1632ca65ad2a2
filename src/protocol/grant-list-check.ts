/**
 * Checking an offline grant list (grant-list.ts) as a home hub receives it: size, schema, the
 * lock it is for, its windows, and its Ed25519 signature under the control plane's grant-list
 * key. Kept apart from grant-list.ts because it needs Node's crypto.
 */
import { createPublicKey, verify } from 'node:crypto';
import {
  MAX_GRANT_LIST_BYTES,
  signedGrantListValidator as signedValidator,
  signedText,
  type GrantListMessage,
} from './grant-list.ts';

/** What {@link readGrantList} found. */
export type GrantListReading =
  | { readonly ok: true; readonly list: GrantListMessage }
  | { readonly ok: false; readonly reason: string };

/**
 * Checks a `grants` payload (bytes or parsed JSON) for one lock: its size and schema, that it
 * is for `homeId`/`lockId`, that its windows are well formed and end by the horizon, and its
 * signature under `publicKey` (raw Ed25519, base64url). Never throws.
 */
export function readGrantList(
  /** The MQTT payload (bytes), or JSON already parsed (a list kept on disk). */
  payload: unknown,
  expect: { readonly homeId: string; readonly lockId: string; readonly publicKey: string },
): GrantListReading {
  let value: unknown = payload;
  if (payload instanceof Uint8Array) {
    if (payload.byteLength > MAX_GRANT_LIST_BYTES)
      return { ok: false, reason: `too large (${payload.byteLength} bytes)` };
    try {
      value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payload));
    } catch {
      return { ok: false, reason: 'not JSON' };
    }
  }
  if (!signedValidator.Check(value)) {
    const first = signedValidator.Errors(value)[0];
    return {
      ok: false,
      reason: `does not match the schema: ${first ? `${first.instancePath || '/'} ${first.message}` : ''}`,
    };
  }
  const { list, sig } = value;
  if (list.homeId !== expect.homeId || list.lockId !== expect.lockId)
    return { ok: false, reason: `for ${list.homeId}/${list.lockId}, not this lock` };
  if (list.horizonMs < list.issuedAtMs) return { ok: false, reason: 'horizon before issue' };
  const windows = [
    ...list.pins.flatMap((p) => p.windows ?? []),
    ...list.guests.flatMap((g) => g.windows),
    ...list.deliveries,
  ];
  for (const w of windows)
    if (w.fromMs > w.untilMs) return { ok: false, reason: 'a window ends before it starts' };
  if (!verifyEd25519Raw(signedText(list), sig, expect.publicKey))
    return { ok: false, reason: 'bad signature' };
  return { ok: true, list };
}

/** Ed25519 with a raw public key (base64url); false on any malformed input. */
function verifyEd25519Raw(message: string, signature: string, publicKey: string): boolean {
  try {
    const key = createPublicKey({
      key: { kty: 'OKP', crv: 'Ed25519', x: publicKey },
      format: 'jwk',
    });
    return verify(null, Buffer.from(message), key, Buffer.from(signature, 'base64url'));
  } catch {
    return false;
  }
}
