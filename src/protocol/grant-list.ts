/**
 * The offline grant list (docs/device-protocol.md, "Offline grants"): what the control plane
 * tells a home hub about who may come in at one lock, signed so that the hub can keep it, check
 * it again after a restart, and act on it while the control plane is out of reach.
 *
 * The control plane publishes one list per lock, retained, on the lock's `grants` topic, and a
 * new one whenever something in it changes and at least every refresh period (so a hub can tell
 * an old list from a current one). Each list carries:
 *
 * - `version`, which only ever grows for a lock: a hub never takes a list older than the one it
 *   holds, so an old list replayed (one that still named a revoked guest) changes nothing;
 * - `issuedAtMs`, by the control plane's clock: a hub refuses courier unlocks when its newest
 *   list is older than its configured bound (it cannot be sure a revocation has reached it);
 * - `horizonMs`: nothing in the list lets anyone in after it (the offline bound of a revocation
 *   that cannot reach the hub);
 * - `pins`: the keypad slots Threshold wrote, by digest (never a code), with the holder's role
 *   and the windows in which the code may open until the horizon (null: at all times);
 * - `deliveries`: the in-home deliveries booked at this lock's door, by grant id;
 * - `guests`: the guest grants at this lock's door with their windows until the horizon.
 *
 * The signature is Ed25519 over a fixed prefix and the canonical JSON of the list, with the
 * control plane's grant-list key (`<data>/keys/grants-ed25519.pub` holds its public half); a
 * hub is configured with that public key and takes nothing else. Checking a list needs Node's
 * crypto, so it lives in grant-list-check.ts; this file stays importable by the web app's types.
 */
import { Type, type Static } from 'typebox';
import { Compile } from 'typebox/compile';
import { canonicalJson } from '../core/canonical-json.ts';
import type { Signer } from '../core/crypto-ports.ts';
import { ID_PATTERN } from './topics.ts';

/** Largest `grants` payload, bytes: room for hundreds of slots, deliveries and windows. */
export const MAX_GRANT_LIST_BYTES = 64 * 1024;
/** Most windows listed for one slot or grant. */
export const MAX_LISTED_WINDOWS = 64;
/** Most entries in each of `pins`, `deliveries` and `guests`. */
export const MAX_LISTED_ENTRIES = 200;
/** What the signature covers besides the list: no other Threshold signature can pass for it. */
export const GRANT_LIST_SIGNING_PREFIX = 'threshold grant list v1\n';

const Id = Type.String({ pattern: ID_PATTERN });
/** Ids of grants, deliveries and people: as the control plane makes them. */
const RecordId = Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' });
const TimeMs = Type.Integer({ minimum: 0, maximum: 7_258_118_400_000 });
const strict = { additionalProperties: false } as const;

const ListedWindow = Type.Object({ fromMs: TimeMs, untilMs: TimeMs }, strict);
const Windows = Type.Array(ListedWindow, { maxItems: MAX_LISTED_WINDOWS });

/** One keypad slot Threshold wrote. */
export const ListedPin = Type.Object(
  {
    slot: Type.Integer({ minimum: 1, maximum: 65_535 }),
    /** The code's keyed digest, as `pin.list` reports it (pin-digest.ts). */
    digest: Type.String({ pattern: '^[A-Za-z0-9_-]{43}$' }),
    holder: Type.Union([Type.Literal('owner'), Type.Literal('member'), Type.Literal('guest')]),
    principalId: RecordId,
    /** When the code may open until the horizon; null: at all times (the owner's own codes). */
    windows: Type.Union([Windows, Type.Null()]),
  },
  strict,
);

/** One in-home delivery booked at this lock's door. */
export const ListedDelivery = Type.Object(
  {
    grantId: RecordId,
    deliveryId: RecordId,
    courierId: Type.Union([RecordId, Type.Null()]),
    fromMs: TimeMs,
    untilMs: TimeMs,
  },
  strict,
);

/** One guest grant at this lock's door. */
export const ListedGuest = Type.Object(
  { grantId: RecordId, principalId: RecordId, windows: Windows },
  strict,
);

/** The list itself: everything the signature covers. */
export const GrantList = Type.Object(
  {
    format: Type.Literal(1),
    homeId: Id,
    lockId: Id,
    version: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }),
    issuedAtMs: TimeMs,
    horizonMs: TimeMs,
    pins: Type.Array(ListedPin, { maxItems: MAX_LISTED_ENTRIES }),
    deliveries: Type.Array(ListedDelivery, { maxItems: MAX_LISTED_ENTRIES }),
    guests: Type.Array(ListedGuest, { maxItems: MAX_LISTED_ENTRIES }),
  },
  strict,
);

/** The payload of a `grants` topic: the list and its signature. */
export const SignedGrantList = Type.Object(
  {
    list: GrantList,
    /** Ed25519 over {@link GRANT_LIST_SIGNING_PREFIX} + canonical JSON of `list`, base64url. */
    sig: Type.String({ pattern: '^[A-Za-z0-9_-]{86}$' }),
  },
  strict,
);

export type GrantListMessage = Static<typeof GrantList>;
export type SignedGrantListMessage = Static<typeof SignedGrantList>;
export type ListedPinMessage = Static<typeof ListedPin>;
export type ListedDeliveryMessage = Static<typeof ListedDelivery>;
export type ListedGuestMessage = Static<typeof ListedGuest>;

/** Checks a value against {@link SignedGrantList} (grant-list-check.ts uses it). */
export const signedGrantListValidator = Compile(SignedGrantList);

/** The text the signature covers. */
export function signedText(list: GrantListMessage): string {
  return GRANT_LIST_SIGNING_PREFIX + canonicalJson(list);
}

/** Signs a list (the control plane). */
export function signGrantList(list: GrantListMessage, signer: Signer): SignedGrantListMessage {
  return { list, sig: signer.sign(signedText(list)) };
}

/** Whether `publicKey` looks like a raw Ed25519 public key in base64url (43 characters). */
export function isGrantListKey(publicKey: string): boolean {
  return /^[A-Za-z0-9_-]{43}$/.test(publicKey);
}
