/**
 * Payload schemas of the device protocol: one schema per channel, in one map, so every MQTT
 * message is validated against exactly one schema before anything acts on it.
 *
 * All payloads are JSON. Every message a device sends, except frames, carries a `mac`: an
 * HMAC-SHA256 (base64url) over the topic and the canonical JSON of the payload without `mac`
 * (see device-auth.ts). Heartbeats are authenticated with a per-session key, everything else
 * with the device key. Frames are vouched for by the heartbeat that names their digest.
 */
import { Type, type Static, type TSchema } from 'typebox';
import { Compile } from 'typebox/compile';
import type { PinWindow } from '../core/pin-window.ts';
import {
  MAX_GRANT_LIST_BYTES,
  SignedGrantList,
  type SignedGrantListMessage,
} from './grant-list.ts';
import { ID_PATTERN, type Channel } from './topics.ts';

/** Largest JSON payload of any channel but `frame`, bytes. */
export const MAX_MESSAGE_BYTES = 4 * 1024;
/** Largest `frame` payload, bytes (a 320×240 JPEG is about 15 KB; base64 adds a third). */
export const MAX_FRAME_BYTES = 256 * 1024;

const Id = Type.String({ pattern: ID_PATTERN, description: 'home, device or session id' });
const MessageId = Type.String({ pattern: '^[A-Za-z0-9_-]{8,64}$', description: 'command id' });
const Mac = Type.String({
  pattern: '^[A-Za-z0-9_-]{43}$',
  description: 'HMAC-SHA256, base64url without padding',
});
const Digest = Type.String({ pattern: '^[0-9a-f]{64}$', description: 'SHA-256, hex' });
/** Milliseconds since the epoch by the device's clock; within year 2000–2200. */
const TimeMs = Type.Integer({ minimum: 946_684_800_000, maximum: 7_258_118_400_000 });
const Seq = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });
const ErrorBody = Type.Object(
  {
    code: Type.String({ maxLength: 64 }),
    message: Type.String({ maxLength: 256 }),
  },
  { additionalProperties: false },
);

const strict = { additionalProperties: false } as const;

/** Highest keypad slot number the protocol allows (a lock says how many it has, `capacity`). */
export const MAX_PIN_SLOT = 65_535;
/** A keypad code: 4 to 10 digits (Z-Wave User Code and Matter Door Lock PINs fit). */
export const PIN_CODE_PATTERN = '^[0-9]{4,10}$';
/** Longest name a `pin.set` may give a slot, characters. */
export const MAX_PIN_NAME_LENGTH = 32;
/**
 * Most slots one `pin.list` reply carries; the rest comes on the next page (`next`). 25 entries
 * with windows and the largest numbers stay well under {@link MAX_MESSAGE_BYTES}.
 */
export const PIN_LIST_PAGE_SIZE = 25;

/** A keypad slot number, 1-based as on Z-Wave and Matter locks. */
const PinSlotNumber = Type.Integer({ minimum: 1, maximum: MAX_PIN_SLOT });
/**
 * A bound of a keypad slot's validity window: ms since the epoch by the lock's clock. Unlike
 * {@link TimeMs} it may be 0 ("since ever"; a window `0`–`0` is never valid).
 */
const PinWindowMs = Type.Integer({ minimum: 0, maximum: 7_258_118_400_000 });
/**
 * What a lock reports instead of a PIN: HMAC-SHA256 under a key derived from the device key,
 * base64url without padding; see `pinDigest` in pin-digest.ts.
 */
const PinDigest = Type.String({
  pattern: '^[A-Za-z0-9_-]{43}$',
  description: 'HMAC-SHA256 of slot and code under the PIN-digest key, base64url',
});

/** Retained presence flag; the broker's last will publishes `{"online":false}`. */
export const Availability = Type.Object({ online: Type.Boolean() }, strict);

export const BoltState = Type.Union([
  Type.Literal('locked'),
  Type.Literal('unlocked'),
  Type.Literal('jammed'),
  Type.Literal('unknown'),
]);
export const DoorPosition = Type.Union([
  Type.Literal('open'),
  Type.Literal('closed'),
  Type.Literal('unknown'),
]);

/** A lock's report of its bolt. `changedAt` is when the bolt last moved, by the lock's clock. */
export const LockState = Type.Object(
  {
    kind: Type.Literal('lock'),
    seq: Seq,
    at: TimeMs,
    bolt: BoltState,
    changedAt: TimeMs,
    /** When the lock will throw the bolt by itself, or null. */
    autoRelockAt: Type.Union([TimeMs, Type.Null()]),
    mac: Mac,
  },
  strict,
);

/** A door-position sensor's report. */
export const DoorState = Type.Object(
  {
    kind: Type.Literal('door-sensor'),
    seq: Seq,
    at: TimeMs,
    position: DoorPosition,
    changedAt: TimeMs,
    mac: Mac,
  },
  strict,
);

/** A camera's report: whether it records, and for which access session. */
export const CameraState = Type.Object(
  {
    kind: Type.Literal('camera'),
    seq: Seq,
    at: TimeMs,
    recording: Type.Boolean(),
    sessionId: Type.Union([Id, Type.Null()]),
    mac: Mac,
  },
  strict,
);

export const DeviceState = Type.Union([LockState, DoorState, CameraState]);

/** Names of device events. */
export const DeviceEventName = Type.Union([
  Type.Literal('lock.auto-relocked'),
  Type.Literal('lock.jammed'),
  Type.Literal('lock.manual'),
  Type.Literal('door.opened'),
  Type.Literal('door.closed'),
  Type.Literal('command.rejected'),
  /** A right code was entered on the keypad; `slot` says whose. The bolt moves next. */
  Type.Literal('keypad.unlocked'),
  /**
   * A wrong code was entered; `attempt` counts wrong codes in a row (1, 2, …). A right code
   * outside its slot's window counts as wrong, and the event names the `slot`.
   */
  Type.Literal('keypad.wrong-code'),
  /** Too many wrong codes in a row: the keypad ignores every code until `untilMs`. */
  Type.Literal('keypad.lockout'),
  // What a home hub did or saw on its own (see `src/hub`), published through the lock of the
  // door it concerns. Each comes from the hub's local log, so one that happened while the hub
  // was cut off arrives when the link returns: `at` is when it was sent, and `detail` is
  // compact JSON with the hub's own time of the fact (`hubAt`), its place in the hub's log
  // (`hubSeq`), the session if any (`session`) and why (`why`).
  /** The hub threw the bolt itself: a session's deadline, its dead-man's switch or a cut-off. */
  Type.Literal('hub.relocked'),
  /** The hub tried to throw the bolt and the lock did not (jammed, unreachable, refused). */
  Type.Literal('hub.relock-failed'),
  /** Alarm: during a session the camera went silent or froze as seen by the hub. */
  Type.Literal('hub.dead-man'),
  /** The control plane was unreachable for too long during a session: the hub ended it. */
  Type.Literal('hub.cut-off'),
  /** A device fact the hub saw while cut off (the door opened, the bolt turned by hand…). */
  Type.Literal('hub.observed'),
]);

/**
 * Something that happened at a device, e.g. the lock relocked by its own timer. The typed
 * fields belong to the keypad events: `slot` to `keypad.unlocked`, `attempt` to
 * `keypad.wrong-code`, `untilMs` to `keypad.lockout` (a PIN itself is never in an event).
 */
export const DeviceEvent = Type.Object(
  {
    seq: Seq,
    at: TimeMs,
    name: DeviceEventName,
    detail: Type.Optional(Type.String({ maxLength: 256 })),
    /**
     * `keypad.unlocked`: the slot whose code was entered. `keypad.wrong-code`: only when the
     * code was a slot's own but entered outside the slot's validity window (the person at the
     * keypad is told nothing more than for a wrong code).
     */
    slot: Type.Optional(PinSlotNumber),
    /** `keypad.wrong-code`: wrong codes in a row, this one included. */
    attempt: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000 })),
    /** `keypad.lockout`: when the keypad takes codes again, device clock. */
    untilMs: Type.Optional(TimeMs),
    mac: Mac,
  },
  strict,
);

/**
 * Proof of observation during an access session, sent by the camera about every 500 ms.
 * `mac` uses the session key; `seq` starts at 0 for each session and only ever grows.
 */
export const Heartbeat = Type.Object(
  {
    sessionId: Id,
    seq: Seq,
    capturedAt: TimeMs,
    frameDigest: Digest,
    recording: Type.Boolean(),
    mac: Mac,
  },
  strict,
);

/** One JPEG frame of a session's clip; `digest` is SHA-256 of the JPEG bytes. */
export const Frame = Type.Object(
  {
    sessionId: Id,
    capturedAt: TimeMs,
    digest: Digest,
    jpeg: Type.String({ contentEncoding: 'base64', maxLength: MAX_FRAME_BYTES }),
  },
  strict,
);

/** The device's answer to a command, echoing its id. */
export const Reply = Type.Union([
  Type.Object(
    {
      id: MessageId,
      at: TimeMs,
      status: Type.Literal('ok'),
      data: Type.Optional(Type.Record(Type.String({ maxLength: 64 }), Type.Unknown())),
      mac: Mac,
    },
    strict,
  ),
  Type.Object(
    { id: MessageId, at: TimeMs, status: Type.Literal('error'), error: ErrorBody, mac: Mac },
    strict,
  ),
]);

export const CommandAction = Type.Union([
  Type.Literal('lock'),
  Type.Literal('unlock'),
  Type.Literal('arm'),
  Type.Literal('disarm'),
  Type.Literal('report'),
  /** Locks with a keypad: store `code` in `slot` (optionally named, optionally windowed). */
  Type.Literal('pin.set'),
  /** Locks with a keypad: change the validity window of the set `slot`, without its code. */
  Type.Literal('pin.window'),
  /** Locks with a keypad: empty `slot`. */
  Type.Literal('pin.clear'),
  /** Locks with a keypad: list the set slots from `slot` (default 1), as digests. */
  Type.Literal('pin.list'),
]);

/**
 * A command from the server. The device acts only if the MAC verifies, `expiresAt` has not
 * passed, and it has not seen `nonce` before; it always replies with `id`.
 */
export const Command = Type.Object(
  {
    id: MessageId,
    nonce: Type.String({ pattern: '^[A-Za-z0-9_-]{16,64}$' }),
    issuedAt: TimeMs,
    expiresAt: TimeMs,
    action: CommandAction,
    /** The access session this command serves, if any. */
    sessionId: Type.Optional(Id),
    /**
     * For `unlock`: whom it lets in. `courier` (a delivery's session), `guest` (a guest grant's
     * session) or `household` (the owner or a member, e.g. a remote unlock). A home hub refuses
     * a courier's unlock when its grant list is stale or does not name `grantId`. An `unlock`
     * with a `sessionId` but without this field counts as a courier's.
     */
    accessKind: Type.Optional(
      Type.Union([Type.Literal('courier'), Type.Literal('guest'), Type.Literal('household')]),
    ),
    /** For `unlock` in a session: the grant the session runs under (a delivery's or a guest's). */
    grantId: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' })),
    /** For `unlock`: the lock throws the bolt by itself after this many ms (principle 2). */
    relockAfterMs: Type.Optional(Type.Integer({ minimum: 1_000, maximum: 3_600_000 })),
    /**
     * For `pin.set`, `pin.clear`, `pin.window`: the keypad slot; for `pin.list`: the first slot
     * to list.
     */
    slot: Type.Optional(PinSlotNumber),
    /**
     * For `pin.set`: the PIN. The only message that ever carries one; it is signed, not
     * encrypted, so the MQTT link must be trusted (TLS or a private network).
     */
    code: Type.Optional(Type.String({ pattern: PIN_CODE_PATTERN })),
    /** For `pin.set`: a label the lock may show or keep (e.g. "Cleaner"). */
    name: Type.Optional(Type.String({ minLength: 1, maxLength: MAX_PIN_NAME_LENGTH })),
    /**
     * For `pin.set`, `pin.window`: the slot's validity window `[fromMs, untilMs)` by the lock's
     * clock; both or neither (neither: valid at all times), `fromMs <= untilMs`. See
     * {@link readPinWindow}.
     */
    fromMs: Type.Optional(PinWindowMs),
    untilMs: Type.Optional(PinWindowMs),
    mac: Mac,
  },
  strict,
);

/**
 * One set slot in a `pin.list` reply: never the code, only its digest; and its validity window
 * if it has one (both bounds, as written by `pin.set` or `pin.window`).
 */
export const PinListEntry = Type.Object(
  {
    slot: PinSlotNumber,
    set: Type.Literal(true),
    digest: PinDigest,
    fromMs: Type.Optional(PinWindowMs),
    untilMs: Type.Optional(PinWindowMs),
  },
  strict,
);

/**
 * The `data` of the `ok` reply to `pin.list`: how many slots the lock has, the set slots from
 * the asked-for one on (ascending, at most {@link PIN_LIST_PAGE_SIZE}), and the slot to ask
 * for next, or null when the list is complete. An empty slot is simply absent.
 */
export const PinListData = Type.Object(
  {
    capacity: PinSlotNumber,
    slots: Type.Array(PinListEntry, { maxItems: PIN_LIST_PAGE_SIZE }),
    next: Type.Union([PinSlotNumber, Type.Null()]),
  },
  strict,
);

export type AvailabilityMessage = Static<typeof Availability>;
export type LockStateMessage = Static<typeof LockState>;
export type DoorStateMessage = Static<typeof DoorState>;
export type CameraStateMessage = Static<typeof CameraState>;
export type DeviceStateMessage = Static<typeof DeviceState>;
export type DeviceEventMessage = Static<typeof DeviceEvent>;
export type HeartbeatMessage = Static<typeof Heartbeat>;
export type FrameMessage = Static<typeof Frame>;
export type ReplyMessage = Static<typeof Reply>;
export type CommandMessage = Static<typeof Command>;
export type CommandActionName = Static<typeof CommandAction>;
export type Bolt = Static<typeof BoltState>;
export type DeviceEventNameValue = Static<typeof DeviceEventName>;
export type PinListEntryMessage = Static<typeof PinListEntry>;
export type PinListDataMessage = Static<typeof PinListData>;
/** The fields of a command that only the `pin.*` actions use. */
export type PinCommandFields = Pick<
  CommandMessage,
  'slot' | 'code' | 'name' | 'fromMs' | 'untilMs'
>;
export type DoorPositionName = Static<typeof DoorPosition>;

/** The one topic-channel → schema map. */
export const CHANNEL_SCHEMAS = {
  availability: Availability,
  state: DeviceState,
  event: DeviceEvent,
  heartbeat: Heartbeat,
  frame: Frame,
  reply: Reply,
  command: Command,
  grants: SignedGrantList,
} as const satisfies Record<Channel, TSchema>;

/** The payload type of each channel. */
export interface ChannelPayloads {
  availability: AvailabilityMessage;
  state: DeviceStateMessage;
  event: DeviceEventMessage;
  heartbeat: HeartbeatMessage;
  frame: FrameMessage;
  reply: ReplyMessage;
  command: CommandMessage;
  grants: SignedGrantListMessage;
}

const compiled = Object.fromEntries(
  Object.entries(CHANNEL_SCHEMAS).map(([channel, schema]) => [channel, Compile(schema)]),
) as { [C in Channel]: ReturnType<typeof Compile> };

/** The size limit of a channel's payloads, bytes. */
export function maxPayloadBytes(channel: Channel): number {
  if (channel === 'frame') return MAX_FRAME_BYTES;
  return channel === 'grants' ? MAX_GRANT_LIST_BYTES : MAX_MESSAGE_BYTES;
}

export type DecodeResult<C extends Channel> =
  | { readonly ok: true; readonly message: ChannelPayloads[C] }
  | {
      readonly ok: false;
      readonly reason: 'too-large' | 'not-json' | 'schema';
      readonly detail: string;
    };

/**
 * Parses and validates a payload for a channel. Never throws: garbage gives a reason, which the
 * caller counts and logs before dropping the message.
 */
export function decodePayload<C extends Channel>(channel: C, payload: Uint8Array): DecodeResult<C> {
  if (payload.byteLength > maxPayloadBytes(channel)) {
    return { ok: false, reason: 'too-large', detail: `${payload.byteLength} bytes` };
  }
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payload));
  } catch (e) {
    return { ok: false, reason: 'not-json', detail: e instanceof Error ? e.message : String(e) };
  }
  const validator = compiled[channel];
  if (!validator.Check(value)) {
    const first = validator.Errors(value)[0];
    return {
      ok: false,
      reason: 'schema',
      detail: first ? `${first.instancePath || '/'} ${first.message}` : 'does not match',
    };
  }
  return { ok: true, message: value as ChannelPayloads[C] };
}

const pinListValidator = Compile(PinListData);

/**
 * Reads the `data` of a `pin.list` reply; null when it does not match {@link PinListData}, its
 * slots are not strictly ascending (a lock that lists a slot twice is not believed), or an
 * entry's window is not valid ({@link readPinWindow}).
 */
export function decodePinList(data: unknown): PinListDataMessage | null {
  if (!pinListValidator.Check(data)) return null;
  const list: PinListDataMessage = data;
  for (let i = 0; i < list.slots.length; i++) {
    if (i > 0 && list.slots[i]!.slot <= list.slots[i - 1]!.slot) return null;
    if (!readPinWindow(list.slots[i]!).ok) return null;
  }
  return list;
}

/** What {@link readPinWindow} found. */
export type PinWindowReading =
  | { readonly ok: true; readonly window: PinWindow | null }
  | { readonly ok: false; readonly reason: string };

/**
 * The validity window carried by a `pin.set` or `pin.window` command or a `pin.list` entry:
 * null when neither bound is there (valid at all times), a window when both are and `fromMs <=
 * untilMs`, else a reason in words (the schema checks each bound alone; this checks the pair).
 */
export function readPinWindow(fields: {
  readonly fromMs?: number;
  readonly untilMs?: number;
}): PinWindowReading {
  const { fromMs, untilMs } = fields;
  if (fromMs === undefined && untilMs === undefined) return { ok: true, window: null };
  if (fromMs === undefined || untilMs === undefined)
    return { ok: false, reason: 'a window needs both fromMs and untilMs, or neither' };
  if (fromMs > untilMs) return { ok: false, reason: 'a window cannot end before it starts' };
  return { ok: true, window: { fromMs, untilMs } };
}

/** The command fields of a window: none for "at all times". */
export function pinWindowFields(
  window: PinWindow | null,
): Pick<CommandMessage, 'fromMs' | 'untilMs'> {
  return window === null ? {} : { fromMs: window.fromMs, untilMs: window.untilMs };
}
