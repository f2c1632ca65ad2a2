/**
 * HTTP request and response schemas of the JSON API (TypeBox). Fastify validates requests with
 * them, the OpenAPI description at /docs is generated from them, and the web app imports their
 * static types: one definition each.
 *
 * Every object schema refuses unknown fields, and no type is coerced: `"1"` is not a number.
 */
import { Type, type Static } from 'typebox';
import { ID_PATTERN } from './topics.ts';

const strict = { additionalProperties: false } as const;

export const Id = Type.String({
  pattern: ID_PATTERN,
  description: 'Lower-case id: letters, digits, dashes.',
});
const TimeMs = Type.Integer({
  minimum: 0,
  maximum: 7_258_118_400_000,
  description: 'ms since the Unix epoch',
});

/** The body of every 4xx/5xx answer. `code` is machine-readable and stable. */
export const ErrorResponse = Type.Object(
  {
    error: Type.Object({
      code: Type.String(),
      message: Type.String(),
      detail: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    }),
  },
  { $id: 'ErrorResponse' },
);
export type ErrorResponseBody = Static<typeof ErrorResponse>;

export const SignInRequest = Type.Object(
  {
    username: Type.String({ minLength: 1, maxLength: 64 }),
    password: Type.String({ minLength: 1, maxLength: 256 }),
  },
  strict,
);

export const PrincipalView = Type.Object({
  id: Type.String(),
  role: Type.Union([
    Type.Literal('owner'),
    Type.Literal('member'),
    Type.Literal('guest'),
    Type.Literal('courier'),
    Type.Literal('carrier'),
  ]),
  displayName: Type.String(),
  homeId: Type.Union([Type.String(), Type.Null()]),
  carrierId: Type.Union([Type.String(), Type.Null()]),
});

export const SignInResponse = Type.Object({
  principal: PrincipalView,
  /** Also set as an HttpOnly cookie; send it as `Authorization: Bearer <token>` from scripts. */
  token: Type.String(),
  expiresAt: TimeMs,
});

export const Position = Type.Object(
  {
    lat: Type.Number({ minimum: -90, maximum: 90 }),
    lon: Type.Number({ minimum: -180, maximum: 180 }),
    accuracyM: Type.Number({ minimum: 0, maximum: 100_000 }),
  },
  strict,
);

export const AccessRequestBody = Type.Object(
  { position: Type.Union([Position, Type.Null()]) },
  strict,
);

const DeliveryStatusSchema = Type.Union([
  Type.Literal('scheduled'),
  Type.Literal('in-progress'),
  Type.Literal('delivered'),
  Type.Literal('left-at-door'),
  Type.Literal('needs-review'),
  Type.Literal('cancelled'),
]);

/** A carrier creates a delivery (send an `Idempotency-Key` header with it). */
export const CreateDeliveryRequest = Type.Object(
  {
    homeId: Id,
    /** Default: the home's first door. */
    doorId: Type.Optional(Id),
    packageRef: Type.String({ minLength: 1, maxLength: 128 }),
    windowStart: TimeMs,
    windowEnd: TimeMs,
    /** Who delivers; may be assigned later. */
    courierId: Type.Optional(Id),
    /**
     * `in-home` (default): the courier is let in, which needs the home to allow this carrier
     * and in-home delivery on. `doorstep`: left at the door; the door never opens for it.
     */
    placement: Type.Optional(
      Type.Union([Type.Literal('in-home'), Type.Literal('doorstep')], {
        description: 'in-home (default) or doorstep',
      }),
    ),
  },
  strict,
);

/**
 * The `Idempotency-Key` header of a carrier request that creates or changes something: 1 to
 * 255 visible ASCII characters, chosen by the carrier (a UUID is a good choice). Optional in the
 * schema so that a missing key gets its own error code, `request.idempotency-key-required`.
 */
export const IdempotencyHeaders = Type.Object({
  'idempotency-key': Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 255,
      pattern: '^[\\x21-\\x7e]+$',
      description:
        'Required. A key of your choice (e.g. a UUID) for this create or change: a retry with the same key and body gets the first answer again (header Idempotent-Replayed: true) instead of doing it twice.',
    }),
  ),
});

/** A carrier assigns (or reassigns) the courier of a scheduled delivery. */
export const AssignDeliveryRequest = Type.Object({ courierId: Id }, strict);

/** A carrier cancels a delivery that has not started; the reason is kept in its history. */
export const CancelDeliveryRequest = Type.Object(
  { reason: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })) },
  strict,
);

/** `GET /api/carrier/deliveries`: a page of the carrier's deliveries, newest first. */
export const CarrierDeliveriesQuery = Type.Object(
  {
    status: Type.Optional(DeliveryStatusSchema),
    limit: Type.Optional(
      Type.String({ pattern: '^[0-9]{1,3}$', description: 'at most this many, 1 to 200 (50)' }),
    ),
    after: Type.Optional(
      Type.String({
        pattern: ID_PATTERN,
        description: 'the `next` of the previous page: continue after that delivery',
      }),
    ),
  },
  strict,
);

export const RemoteLockRequest = Type.Object(
  {
    action: Type.Union([Type.Literal('lock'), Type.Literal('unlock')]),
    /** Unlock needs an explicit confirmation. */
    confirm: Type.Optional(Type.Boolean()),
  },
  strict,
);

export const EmptyBody = Type.Object({}, strict);

/** The owner's answer to an "ask me first" delivery. */
export const OwnerDecisionRequest = Type.Object(
  { decision: Type.Union([Type.Literal('let-in'), Type.Literal('leave-at-door')]) },
  strict,
);

export const WeekdaySchema = Type.Union([
  Type.Literal('mon'),
  Type.Literal('tue'),
  Type.Literal('wed'),
  Type.Literal('thu'),
  Type.Literal('fri'),
  Type.Literal('sat'),
  Type.Literal('sun'),
]);

/** In-home delivery settings of a home (the whole set; PUT replaces it). */
export const DeliverySettingsBody = Type.Object(
  {
    inHomeDelivery: Type.Boolean(),
    daysOff: Type.Array(WeekdaySchema, { maxItems: 7, uniqueItems: true }),
    askFirst: Type.Boolean(),
    /** How long a courier waits for the owner's answer before "leave at door", seconds. */
    askTimeoutS: Type.Integer({ minimum: 15, maximum: 600 }),
  },
  strict,
);

export const AlarmParams = Type.Object(
  {
    sessionId: Id,
    alarmType: Type.Union([
      Type.Literal('observation-lost'),
      Type.Literal('observation-frozen'),
      Type.Literal('observation-forged'),
      Type.Literal('door-left-open'),
      Type.Literal('lock-jammed'),
      Type.Literal('lock-unconfirmed'),
      Type.Literal('lock-state-mismatch'),
      Type.Literal('session-overrun'),
      Type.Literal('unexpected-entry'),
    ]),
  },
  strict,
);

export const CameraParams = Type.Object({ homeId: Id, cameraId: Id }, strict);
export const LiveFrameParams = Type.Object(
  { homeId: Id, cameraId: Id, digest: Type.String({ pattern: '^[0-9a-f]{64}$' }) },
  strict,
);

export const DeliveryParams = Type.Object({ deliveryId: Id }, strict);
export const SessionParams = Type.Object({ sessionId: Id }, strict);
export const HomeParams = Type.Object({ homeId: Id }, strict);
export const DoorParams = Type.Object({ homeId: Id, doorId: Id }, strict);
export const FrameParams = Type.Object(
  { sessionId: Id, seq: Type.String({ pattern: '^[0-9]{1,6}$' }) },
  strict,
);
export const AuditQuery = Type.Object(
  {
    sessionId: Type.Optional(Id),
    from: Type.Optional(
      Type.String({ pattern: '^[0-9]{1,15}$', description: 'ms since the epoch' }),
    ),
    to: Type.Optional(Type.String({ pattern: '^[0-9]{1,15}$', description: 'ms since the epoch' })),
  },
  strict,
);

export type SignInRequestBody = Static<typeof SignInRequest>;
export type DeliverySettingsRequestBody = Static<typeof DeliverySettingsBody>;
export type OwnerDecisionRequestBody = Static<typeof OwnerDecisionRequest>;
export type CreateDeliveryRequestBody = Static<typeof CreateDeliveryRequest>;
export type AssignDeliveryRequestBody = Static<typeof AssignDeliveryRequest>;
export type CancelDeliveryRequestBody = Static<typeof CancelDeliveryRequest>;
export type CarrierDeliveriesQueryType = Static<typeof CarrierDeliveriesQuery>;
export type AccessRequestBodyType = Static<typeof AccessRequestBody>;

const LocalDateTimeSchema = Type.String({
  pattern: '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}$',
  description: 'Wall-clock time at the home, YYYY-MM-DDTHH:MM',
});
const TimeOfDaySchema = Type.String({
  pattern: '^[0-9]{2}:[0-9]{2}$',
  description: 'Wall-clock time of day at the home, HH:MM (an end may be 24:00)',
});

/** When a guest may come in, in the home's time zone (see docs/access.md). */
export const GrantScheduleBody = Type.Union([
  Type.Object({ kind: Type.Literal('always') }, strict),
  Type.Object(
    { kind: Type.Literal('date-range'), from: LocalDateTimeSchema, until: LocalDateTimeSchema },
    strict,
  ),
  Type.Object(
    {
      kind: Type.Literal('weekly'),
      slots: Type.Array(
        Type.Object(
          {
            days: Type.Array(WeekdaySchema, { minItems: 1, maxItems: 7 }),
            start: TimeOfDaySchema,
            end: TimeOfDaySchema,
          },
          strict,
        ),
        { minItems: 1, maxItems: 20 },
      ),
    },
    strict,
  ),
  Type.Object(
    { kind: Type.Literal('one-time'), from: LocalDateTimeSchema, until: LocalDateTimeSchema },
    strict,
  ),
]);

/** An owner invites a guest: who, which door, when, and the limits. */
export const CreateInviteRequest = Type.Object(
  {
    displayName: Type.String({ minLength: 1, maxLength: 64 }),
    doorId: Id,
    schedule: GrantScheduleBody,
    maxUses: Type.Optional(
      Type.Union([Type.Integer({ minimum: 1, maximum: 10_000 }), Type.Null()]),
    ),
    maxMinutesPerEntry: Type.Optional(
      Type.Union([Type.Integer({ minimum: 1, maximum: 1_440 }), Type.Null()]),
    ),
    /**
     * "Camera must record each entry" (default true): the door opens only once the camera
     * proves it records. False: the guest's entries are not recorded (no camera is armed, no
     * clip), while every lock and door check still applies.
     */
    requiresRecording: Type.Optional(
      Type.Boolean({
        description:
          'Camera must record each entry (default true). False: no clip of this guest’s entries; every lock and door check still applies.',
      }),
    ),
  },
  strict,
);

/** The guest accepts an invite by choosing a user name and a password. */
export const AcceptInviteRequest = Type.Object(
  {
    username: Type.String({ minLength: 3, maxLength: 64, pattern: '^[A-Za-z0-9._@-]+$' }),
    password: Type.String({ minLength: 10, maxLength: 256 }),
  },
  strict,
);

export const InviteTokenParams = Type.Object(
  { token: Type.String({ pattern: '^[A-Za-z0-9_-]{43}$' }) },
  strict,
);
export const GrantParams = Type.Object({ homeId: Id, grantId: Id }, strict);
export const InviteParams = Type.Object({ homeId: Id, inviteId: Id }, strict);
export const GuestGrantParams = Type.Object({ grantId: Id }, strict);

export const LockParams = Type.Object({ homeId: Id, lockId: Id }, strict);
export const PinSlotParams = Type.Object(
  { homeId: Id, lockId: Id, slot: Type.String({ pattern: '^[1-9][0-9]{0,4}$' }) },
  strict,
);

/**
 * Give a person a keypad code in a slot. Without `code`, Threshold makes a random 6-digit one;
 * either way the code is answered once and never stored in clear.
 */
export const AssignPinRequest = Type.Object(
  {
    principalId: Id,
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 32 })),
    code: Type.Optional(Type.String({ pattern: '^[0-9]{4,10}$' })),
  },
  strict,
);

export const MemberParams = Type.Object({ homeId: Id, principalId: Id }, strict);

/** `GET /api/homes/:homeId/entries`: a page of entries, newest first. */
export const EntriesQuery = Type.Object(
  {
    before: Type.Optional(
      Type.String({ pattern: '^[0-9]{1,15}$', description: 'only entries before this, ms' }),
    ),
    limit: Type.Optional(
      Type.String({ pattern: '^[0-9]{1,3}$', description: 'at most this many, 1 to 200' }),
    ),
  },
  strict,
);

/** Whose entries the signed-in owner or member wants pushed to them. */
export const EntryAlertsRequest = Type.Object(
  {
    mode: Type.Union([Type.Literal('all'), Type.Literal('chosen'), Type.Literal('off')]),
    people: Type.Array(Id, { maxItems: 200, uniqueItems: true }),
  },
  strict,
);
