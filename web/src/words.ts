/**
 * What the app says, in plain words: session states, alarms, outcomes and refusals. One place,
 * so the owner and the courier read the same thing for the same fact.
 */
import type { AlarmType, Role } from '../../src/protocol/views.ts';

/**
 * Session states as the API sends them. `awaiting-owner` ("ask me first") is included even
 * where the shared type does not list it yet, so the app can match on it.
 */
export type AnySessionState =
  | 'requested'
  | 'awaiting-owner'
  | 'arming'
  | 'unlocking'
  | 'open'
  | 'relocking'
  | 'verifying'
  | 'completed'
  | 'refused'
  | 'aborted';

/** The state of a session, widened to the states the API may send. */
export function stateOf(s: { readonly state: string }): AnySessionState {
  return s.state as AnySessionState;
}

const STATE_LABELS: Record<AnySessionState, string> = {
  requested: 'Requested',
  'awaiting-owner': 'Waiting for your answer',
  arming: 'Starting the camera',
  unlocking: 'Opening the lock',
  open: 'Door unlocked',
  relocking: 'Locking',
  verifying: 'Checking the door',
  completed: 'Completed',
  refused: 'Refused',
  aborted: 'Aborted',
};

/** A session state for people: "Opening the lock". */
export function stateLabel(state: string): string {
  return STATE_LABELS[state as AnySessionState] ?? state;
}

/** Whether a session has ended. */
export function isFinished(state: string): boolean {
  return state === 'completed' || state === 'refused' || state === 'aborted';
}

/*
 * The titles say what the push notification says (src/server/push-notifier.ts), so a tap on
 * one lands on the same words.
 */
const ALARM_LABELS: Record<AlarmType, string> = {
  'observation-lost': 'Camera offline',
  'observation-frozen': 'Camera picture frozen',
  'observation-forged': 'Fake camera messages',
  'door-left-open': 'Door left open',
  'lock-jammed': 'Lock jammed',
  'lock-unconfirmed': 'Lock not confirmed',
  'lock-state-mismatch': 'Lock and door sensor disagree',
  'session-overrun': 'Door unlocked too long',
  'unexpected-entry': 'Unexpected entry',
};

/** An alarm type as a short title: "Camera offline". Unknown types show as sent. */
export function alarmLabel(type: string): string {
  return ALARM_LABELS[type as AlarmType] ?? type;
}

/** An alarm for the owner: what happened, and what was done and is to be done about it. */
export interface AlarmExplanation {
  /** One line: what happened. */
  readonly what: string;
  /** What Threshold did about it and what the owner should do. */
  readonly advice: string;
}

/*
 * Each alarm in two parts: what happened, in one line (the banner shows it), then what
 * Threshold did about it and what to do (the visit and the alarms page add it). Both stay true
 * on every path that raises the alarm (src/core/access-session.ts).
 */
const ALARM_EXPLANATIONS: Record<AlarmType, AlarmExplanation> = {
  'observation-lost': {
    what: 'The camera stopped proving that it could see the door.',
    advice:
      'This visit is no longer watched: the door does not open again for it, and it is locked as soon as it is closed. Check the door and the camera.',
  },
  'observation-frozen': {
    what: 'The camera kept sending the same picture: what it showed was not live.',
    advice:
      'The door does not open again for this visit, and it is locked as soon as it is closed. Check the door and the camera.',
  },
  'observation-forged': {
    what: 'Messages claiming to come from your camera failed their security check.',
    advice:
      'Someone may be trying to make it look as if the camera is watching. None of those messages was trusted. Check the camera and your network.',
  },
  'door-left-open': {
    what: 'The door was still open, or its sensor could not tell, when it should have been locked.',
    advice:
      'Threshold does not lock into an open door: it locks as soon as the door is closed. Check the door.',
  },
  'lock-jammed': {
    what: 'The bolt got stuck while the lock was moving it.',
    advice: 'The door may not be locked. Check the door and the lock.',
  },
  'lock-unconfirmed': {
    what: 'The lock was told to lock but did not confirm that it did.',
    advice:
      'It may be out of reach or stuck. Do not count on the door being locked until it confirms: check the door.',
  },
  'lock-state-mismatch': {
    what: 'The lock says its bolt is locked, but the door sensor says the door is open.',
    advice:
      'A bolt thrown into an open door does not secure it. Check the door, close it and lock it.',
  },
  'session-overrun': {
    what: 'The door stayed unlocked longer than this visit allowed.',
    advice: 'It is locked as soon as the door is closed. Check that nobody is still inside.',
  },
  'unexpected-entry': {
    what: 'The door was opened when it should have stayed locked.',
    advice:
      'The lock was turned back, or the door opened while the camera was not watching. Check your home and this visit’s record.',
  },
};

/**
 * What an alarm means for the owner, or null for a type this app does not know yet (the caller
 * then shows the server's own message).
 */
export function alarmExplanation(type: string): AlarmExplanation | null {
  return ALARM_EXPLANATIONS[type as AlarmType] ?? null;
}

const ROLE_LABELS: Record<Role, string> = {
  owner: 'Owner',
  member: 'Household',
  guest: 'Guest',
  courier: 'Courier',
  carrier: 'Carrier',
};

/** What a visit without a camera shows where its coverage would be. */
export const NOT_RECORDED = 'Not recorded';
/** …and why, in the words of the session's own outcome. */
export const NOT_RECORDED_WHY = 'this guest’s grant does not ask for the camera';

/** Whether a guest grant's entries are recorded, as a label: "Recorded" or "Not recorded". */
export function recordingLabel(requiresRecording: boolean): string {
  return requiresRecording ? 'Recorded' : NOT_RECORDED;
}

/** A role as a label: "Courier". */
export function roleLabel(role: string): string {
  return ROLE_LABELS[role as Role] ?? role;
}

/**
 * Refusals and errors as the courier should read them: what happened and what to do. Unknown
 * codes fall back to the server's own message.
 */
const COURIER_SENTENCES: Record<string, string> = {
  'camera.offline': 'The camera is offline — leave the parcel at the door.',
  'camera.frozen': 'The camera picture is frozen — leave the parcel at the door.',
  'camera.not-recording':
    'The camera could not start recording, so the door stays locked — leave the parcel at the door.',
  'lock.offline': 'The lock is not answering — leave the parcel at the door.',
  'lock.jammed': 'The lock is jammed — leave the parcel at the door. The owner has been told.',
  'lock.unconfirmed':
    'The lock did not confirm it opened — leave the parcel at the door. The owner has been told.',
  'door.open': 'The door is already open. Do not go in; leave the parcel at the door.',
  'door.unknown':
    'The door sensor is not answering, so the door stays locked — leave the parcel at the door.',
  'door.hub-list-stale':
    'The door’s hub has no current access list, so the door stays locked — leave the parcel at the door. The owner can check the hub.',
  'presence.missing':
    'Your location is needed to open the door. Allow location for this page and try again, or leave the parcel at the door.',
  'presence.inaccurate':
    'Your location is not precise enough. Step outside, wait a moment and try again.',
  'presence.off-site': 'You seem to be away from this address. Go to the door and try again.',
  'grant.not-yet-valid':
    'It is too early: the delivery window has not started. Come back in the window or leave the parcel at the door.',
  'grant.expired': 'The delivery window has passed — leave the parcel at the door.',
  'grant.used': 'This delivery has already been let in once — leave the parcel at the door.',
  'grant.revoked': 'The owner withdrew in-home delivery for this parcel — leave it at the door.',
  'grant.wrong-principal': 'This delivery is assigned to another courier.',
  'delivery.in-home-disabled':
    'The owner has turned off in-home delivery — leave the parcel at the door.',
  'delivery.day-off':
    'The owner does not take in-home deliveries today — leave the parcel at the door.',
  'delivery.owner-declined': 'The owner asked you to leave it at the door.',
  'delivery.owner-no-answer': 'The owner did not answer in time — leave the parcel at the door.',
  'session.active': 'The door is already being opened for this delivery. Wait a moment.',
  'session.observation-lost':
    'The camera stopped watching, so the door will not open again. Leave the parcel at the door.',
  'session.finished': 'This visit is already finished.',
  'delivery.not-found': 'This delivery is not on your list any more.',
  'network.unreachable': 'No connection to Threshold. Check your signal and try again.',
};

/** The courier's sentence for a refusal code, or the server's message for an unknown one. */
export function courierSentence(code: string, serverMessage: string): string {
  return COURIER_SENTENCES[code] ?? serverMessage;
}

/** Remote lock errors as the owner should read them. */
export function lockErrorSentence(code: string, serverMessage: string): string {
  switch (code) {
    case 'lock.offline':
      return 'The lock did not answer. It may be offline; the door has not changed.';
    case 'lock.jammed':
      return 'The lock is jammed. Check the door.';
    case 'lock.unconfirmed':
      return 'The lock did not confirm. Check the door before you rely on it.';
    default:
      return serverMessage;
  }
}

/**
 * Refusals as a guest should read them (docs/api.md §11.6). The schedule refusals keep the
 * server's own message, which names the guest's schedule.
 */
const GUEST_SENTENCES: Record<string, string> = {
  'grant.used': 'You have used all the entries of this invitation.',
  'grant.revoked': 'Your access was withdrawn.',
  'grant.unknown': 'This access does not exist (or is not yours).',
  'session.active': 'Someone is at the door right now; try again in a few minutes.',
  'camera.offline': 'The door camera is not working, so the door stays locked.',
  'camera.frozen': 'The door camera is not working, so the door stays locked.',
  'camera.not-recording': 'The door camera is not working, so the door stays locked.',
  'lock.offline': 'The lock is not answering, so the door stays locked.',
  'lock.jammed': 'The lock is jammed, so the door stays locked.',
  'lock.unconfirmed': 'The lock did not confirm it opened. The household has been told.',
  'door.open': 'The door is open. Close it first.',
  'door.unknown': 'The door sensor is not answering, so the door stays locked.',
  'door.hub-list-stale':
    'The door’s hub has no current access list for your visit, so the door stays locked; the household can check the hub.',
  'session.finished': 'This visit is already finished.',
  'network.unreachable': 'No connection to Threshold. Check your signal and try again.',
};

/** The guest's sentence for a refusal code, or the server's message (written for guests). */
export function guestSentence(code: string, serverMessage: string): string {
  return GUEST_SENTENCES[code] ?? serverMessage;
}

/** A keypad slot's sync state in words: "Confirmed by the lock", "Failed after 6 tries". */
export function pinSyncLabel(slot: {
  readonly sync: string;
  readonly desired: 'set' | 'clear';
  readonly attempts: number;
}): string {
  const emptying = slot.desired === 'clear';
  switch (slot.sync) {
    case 'pending':
      return emptying ? 'Pending — being emptied' : 'Pending — being written';
    case 'confirmed':
      return emptying ? 'Empty — confirmed by the lock' : 'Confirmed by the lock';
    case 'failed':
      return `Failed after ${slot.attempts} ${slot.attempts === 1 ? 'try' : 'tries'}`;
    case 'out-of-sync':
      return 'Out of sync';
    case 'unknown-on-lock':
      return 'Set at the lock by hand';
    default:
      return slot.sync;
  }
}
