/**
 * The one catalogue of Threshold's error and refusal codes, grouped by area.
 *
 * Expected refusals (a courier outside the window, a camera that is offline) are values that
 * carry one of these codes; only bugs and infrastructure failures throw. The HTTP status of
 * every code lives in {@link ERROR_CATALOGUE}, so a new code cannot be added without deciding
 * it; {@link exitCodeOf} derives the CLI exit code from the same table.
 */
export const ERROR_CATALOGUE = {
  // Request validation
  'request.invalid': { status: 400, message: 'The request does not match its schema.' },
  'request.too-large': { status: 413, message: 'The request body is larger than allowed.' },
  'request.headers-too-large': {
    status: 431,
    message: 'The request headers are larger than allowed.',
  },
  'request.unsupported-media-type': { status: 415, message: 'The request body must be JSON.' },
  'request.not-found': { status: 404, message: 'No such route.' },
  'request.rate-limited': { status: 429, message: 'Too many requests; try again later.' },
  'request.idempotency-key-required': {
    status: 400,
    message: 'This request needs an Idempotency-Key header (1 to 255 visible ASCII characters).',
  },
  'request.idempotency-key-reused': {
    status: 422,
    message: 'This Idempotency-Key was already used for another request; use a new key.',
  },
  'request.in-flight': {
    status: 409,
    message: 'A request with this Idempotency-Key is still being answered; retry in a moment.',
  },
  // Authentication and authorization
  'auth.required': { status: 401, message: 'Sign in first.' },
  'auth.invalid-credentials': { status: 401, message: 'Wrong user name or password.' },
  'auth.session-expired': { status: 401, message: 'The session has expired; sign in again.' },
  'auth.forbidden': { status: 403, message: 'This principal may not do that.' },
  // Passkeys (WebAuthn)
  'passkey.challenge-invalid': {
    status: 400,
    message: 'This passkey request is unknown, used or expired; start again.',
  },
  'passkey.registration-invalid': { status: 400, message: 'The passkey could not be verified.' },
  'passkey.already-registered': { status: 409, message: 'This passkey is already registered.' },
  'passkey.limit-reached': {
    status: 409,
    message: 'Too many passkeys on this account; remove one first.',
  },
  'passkey.not-found': { status: 404, message: 'No such passkey.' },
  'passkey.unknown-credential': { status: 401, message: 'This passkey is not registered here.' },
  'passkey.sign-in-failed': { status: 401, message: 'The passkey could not be verified.' },
  'passkey.counter-regressed': {
    status: 401,
    message: 'This passkey’s counter went backwards; it may have been copied.',
  },
  // Objects
  'home.not-found': { status: 404, message: 'No such home.' },
  'door.not-found': { status: 404, message: 'No such door.' },
  'device.not-found': { status: 404, message: 'No such device.' },
  'delivery.not-found': { status: 404, message: 'No such delivery.' },
  'session.not-found': { status: 404, message: 'No such access session.' },
  'frame.not-found': {
    status: 404,
    message: 'No such frame: live frames are kept only for a few seconds.',
  },
  'invite.not-found': { status: 404, message: 'No such invitation.' },
  'grant.unknown': { status: 404, message: 'No such grant.' },
  'principal.not-found': { status: 404, message: 'No such person in this home.' },
  'invite.used': {
    status: 410,
    message: 'This invitation has been used, withdrawn or has expired; ask for a new one.',
  },
  'auth.username-taken': { status: 409, message: 'That user name is taken; choose another.' },
  'alarm.not-found': { status: 404, message: 'This session has no such alarm.' },
  // Carrier accounts: API keys, couriers, the owner's choice
  'carrier.not-found': { status: 404, message: 'No such carrier.' },
  'courier.not-found': { status: 404, message: 'No such courier.' },
  'key.not-found': { status: 404, message: 'No such API key.' },
  'key.revoked': { status: 409, message: 'This API key is revoked already.' },
  'key.last-manager': {
    status: 409,
    message:
      'This is the last working key that may manage keys: rotate it instead, or sign in as a carrier admin to revoke it.',
  },
  'key.limit-reached': { status: 409, message: 'Too many working API keys; revoke one first.' },
  // Carrier webhooks
  'webhook.not-found': { status: 404, message: 'No such webhook.' },
  'webhook.delivery-not-found': { status: 404, message: 'No such webhook delivery.' },
  'webhook.url-refused': {
    status: 400,
    message: 'The webhook URL must be an https: URL of a public host, without credentials.',
  },
  'webhook.limit-reached': {
    status: 409,
    message: 'Too many active webhooks; disable one first.',
  },
  'webhook.disabled': { status: 409, message: 'This webhook is disabled.' },
  'delivery.window-invalid': { status: 422, message: 'The delivery window is invalid.' },
  'delivery.not-assigned': { status: 422, message: 'The delivery has no courier assigned.' },
  'delivery.in-home-disabled': { status: 422, message: 'In-home delivery is off for this home.' },
  'delivery.wrong-state': {
    status: 409,
    message: 'The delivery cannot be changed like that any more (it is under way or finished).',
  },
  'delivery.proof-not-ready': {
    status: 409,
    message:
      'The proof of delivery is not ready: the delivery has not finished, or its record is not signed yet.',
  },
  'delivery.day-off': {
    status: 403,
    message: 'The owner does not take in-home deliveries today; leave the parcel at the door.',
  },
  'delivery.owner-declined': {
    status: 403,
    message: 'The owner asked you to leave the parcel at the door.',
  },
  'delivery.owner-no-answer': {
    status: 403,
    message: 'The owner did not answer in time; leave the parcel at the door.',
  },
  'session.not-awaiting-owner': {
    status: 409,
    message: 'This access session is not waiting for the owner’s answer.',
  },
  // Access decision refusals (returned as values, shown to the courier in plain words)
  'grant.not-found': { status: 403, message: 'There is no access grant for this delivery.' },
  'grant.wrong-principal': { status: 403, message: 'This delivery is assigned to someone else.' },
  'grant.wrong-door': { status: 403, message: 'The grant is for another door.' },
  'grant.not-yet-valid': { status: 403, message: 'The delivery window has not started.' },
  'grant.expired': { status: 403, message: 'The delivery window has passed.' },
  'grant.outside-schedule': { status: 403, message: 'Your access is not valid at this time.' },
  'grant.schedule-invalid': {
    status: 422,
    message: 'The grant’s schedule or limits are invalid.',
  },
  'grant.used': { status: 403, message: 'This delivery already had its access session.' },
  'grant.revoked': { status: 403, message: 'Access for this delivery was revoked.' },
  'carrier.not-allowed': {
    status: 403,
    message:
      'The owner does not take in-home deliveries from this carrier; leave the parcel at the door.',
  },
  'courier.blocked': {
    status: 403,
    message: 'The owner of this home has blocked you; leave the parcel at the door.',
  },
  'presence.missing': { status: 403, message: 'Your location is needed to open the door.' },
  'presence.off-site': { status: 403, message: 'You are not at the delivery address.' },
  'presence.inaccurate': { status: 403, message: 'Your location is too imprecise.' },
  'camera.offline': { status: 409, message: 'The camera is offline.' },
  'camera.not-recording': { status: 409, message: 'The camera did not confirm it is recording.' },
  'camera.frozen': { status: 409, message: 'The camera picture is frozen.' },
  'lock.offline': { status: 409, message: 'The lock is offline.' },
  'lock.jammed': { status: 409, message: 'The lock is jammed.' },
  'lock.unconfirmed': { status: 409, message: 'The lock did not confirm.' },
  'door.open': { status: 409, message: 'The door is open.' },
  'door.unknown': { status: 409, message: 'The door position is unknown.' },
  /**
   * The door's home hub refused the unlock (`grants.stale`, `grants.not-listed`, `grants.none`):
   * its offline grant list is too old, missing, or does not yet name this visit's grant.
   */
  'door.hub-list-stale': {
    status: 409,
    message:
      'The door’s hub has no current access list, so it lets no courier in; the owner can check the hub.',
  },
  'session.active': { status: 409, message: 'An access session is already running at this door.' },
  'session.finished': { status: 409, message: 'This access session has ended.' },
  'session.wrong-state': { status: 409, message: 'That is not possible at this step.' },
  /** Replicas: the replica driving the session did not answer; another takes it over shortly. */
  'session.handing-over': {
    status: 503,
    message: 'The server running this session is being replaced; try again in a few seconds.',
  },
  'session.interrupted': {
    status: 409,
    message: 'The server restarted during the session; the door was locked and the session closed.',
  },
  'session.observation-lost': {
    status: 409,
    message: 'The camera stopped proving it can see the door; no further unlock.',
  },
  // Audit log
  'audit.broken': { status: 500, message: 'The audit log does not verify.' },
  // Infrastructure
  'internal.error': { status: 500, message: 'Internal error.' },
} as const satisfies Record<string, { status: number; message: string }>;

/** Every code Threshold can answer with. */
export type ErrorCode = keyof typeof ERROR_CATALOGUE;

/** The HTTP status of a code. */
export function httpStatusOf(code: ErrorCode): number {
  return ERROR_CATALOGUE[code].status;
}

/**
 * The CLI exit code of a code: 2 for a bad request (usage), 3 for an infrastructure failure,
 * 1 for every refusal (the thing asked for did not hold).
 */
export function exitCodeOf(code: ErrorCode): 1 | 2 | 3 {
  if (code.startsWith('request.')) return 2;
  return httpStatusOf(code) >= 500 ? 3 : 1;
}

/** A refusal or failure as a value: a code, a human sentence and optional structured detail. */
export interface Problem {
  readonly code: ErrorCode;
  readonly message: string;
  readonly detail?: Readonly<Record<string, unknown>>;
}

/** Builds a {@link Problem} with the catalogue's message unless a more specific one is given. */
export function problem(
  code: ErrorCode,
  message?: string,
  detail?: Readonly<Record<string, unknown>>,
): Problem {
  return detail === undefined
    ? { code, message: message ?? ERROR_CATALOGUE[code].message }
    : { code, message: message ?? ERROR_CATALOGUE[code].message, detail };
}

/** The one error type thrown across Threshold, for infrastructure failures and bad requests. */
export class ThresholdError extends Error {
  readonly code: ErrorCode;
  readonly detail: Readonly<Record<string, unknown>> | undefined;

  constructor(code: ErrorCode, message?: string, detail?: Readonly<Record<string, unknown>>) {
    super(message ?? ERROR_CATALOGUE[code].message);
    this.name = 'ThresholdError';
    this.code = code;
    this.detail = detail;
  }

  static from(p: Problem): ThresholdError {
    return new ThresholdError(p.code, p.message, p.detail);
  }
}

/** Success or a refusal, for operations whose refusals are expected outcomes. */
export type Result<T> =
  { readonly ok: true; readonly value: T } | { readonly ok: false; readonly problem: Problem };

export const ok = <T>(value: T): Result<T> => ({ ok: true, value });
export const refuse = <T = never>(p: Problem): Result<T> => ({ ok: false, problem: p });
