/** Steps several scenarios share, each with its expectations. */
import type { EmbeddedBroker } from '../../broker/index.ts';
import type { RunningSystem } from '../../server/system.ts';
import type { Expectations } from '../scenario.ts';
import type { ScenarioWorld } from '../scenario-world.ts';
import { PinSync } from '../../server/pin-sync.ts';
import type { SessionView } from '../../server/session-orchestrator.ts';

/**
 * The courier comes back and asks to open again: it must be refused, and the door must stay
 * locked. Returns the answer's status and code for the report.
 */
export async function reopenIsRefused(
  world: ScenarioWorld,
  expect: Expectations,
  deliveryId: string,
): Promise<{ status: number; code: string | null }> {
  const again = await world.requestAccess(deliveryId);
  const code = (again.body.error as { code?: string } | undefined)?.code ?? null;
  expect.that(
    again.status >= 400 && again.status < 500,
    `the second "open" is refused (HTTP ${again.status} ${code})`,
  );
  expect.that(world.home.lock.bolt() === 'locked', 'the door stays locked');
  return { status: again.status, code };
}

/** One HTTP answer of {@link call}. */
export interface CallAnswer {
  readonly status: number;
  readonly body: Record<string, unknown>;
}

/** The error code of an answer, or null. */
export function errorCode(r: CallAnswer): string | null {
  return (r.body.error as { code?: string } | undefined)?.code ?? null;
}

/** Calls the API as whoever holds `token` (none: signed out), as the web app or an app would. */
export async function call(
  world: ScenarioWorld,
  method: 'GET' | 'POST' | 'PUT' | 'DELETE',
  path: string,
  token: string | null,
  body?: unknown,
  headers: Readonly<Record<string, string>> = {},
): Promise<CallAnswer> {
  const res = await fetch(`${world.sys.url}${path}`, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...headers,
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

/** Signs in with a user name and password; returns the bearer token. */
export async function signIn(
  world: ScenarioWorld,
  username: string,
  password: string,
): Promise<string> {
  const r = await call(world, 'POST', '/api/auth/sign-in', null, { username, password });
  if (r.status !== 200) throw new Error(`sign-in of ${username} failed: HTTP ${r.status}`);
  return String(r.body.token);
}

/** The home's owner signs in; returns the bearer token. */
export function signInOwner(world: ScenarioWorld): Promise<string> {
  return signIn(world, world.creds.owner.username, world.creds.owner.password);
}

/** A guest who accepted an invitation: their token, id and (only) grant. */
export interface InvitedGuest {
  readonly token: string;
  readonly guestId: string;
  readonly grantId: string;
  /** The grant as the guest sees it (GuestGrantView). */
  readonly grant: Record<string, unknown>;
}

let guestSeq = 0;

/**
 * The owner invites `displayName` to the front door with `schedule`; the guest accepts the
 * link with a fresh user name and is signed in. Throws if any step is refused.
 */
export async function inviteGuest(
  world: ScenarioWorld,
  owner: string,
  displayName: string,
  schedule: Record<string, unknown>,
): Promise<InvitedGuest> {
  const inv = await call(world, 'POST', `/api/homes/${world.creds.homeId}/invites`, owner, {
    displayName,
    doorId: world.creds.doorId,
    schedule,
  });
  if (inv.status !== 200)
    throw new Error(`the invitation was refused: HTTP ${inv.status} ${errorCode(inv)}`);
  const username = `${displayName.toLowerCase().replace(/[^a-z0-9]+/g, '-')}-${++guestSeq}`;
  const acc = await call(world, 'POST', `/api/invites/${String(inv.body.token)}/accept`, null, {
    username,
    password: 'a long enough password',
  });
  if (acc.status !== 200)
    throw new Error(`accepting the invitation failed: HTTP ${acc.status} ${errorCode(acc)}`);
  const token = String(acc.body.token);
  const mine = await call(world, 'GET', '/api/guest/grants', token);
  const grant = (mine.body.grants as Record<string, unknown>[] | undefined)?.[0];
  if (!grant) throw new Error('the guest sees no grant after accepting');
  return {
    token,
    guestId: (grant.guest as { id: string }).id,
    grantId: String(grant.id),
    grant,
  };
}

/**
 * A guest's whole visit under their grant: the door opens (checked), they walk in and out, they
 * ask to lock, and the session completes with the lock's own confirmation. Returns the session
 * (null if the door did not open) and the access answer.
 */
export async function guestVisit(
  world: ScenarioWorld,
  expect: Expectations,
  guest: InvitedGuest,
  who: string,
): Promise<{ access: CallAnswer; session: SessionView | null }> {
  const access = await call(
    world,
    'POST',
    `/api/guest/grants/${guest.grantId}/access`,
    guest.token,
    {},
  );
  const opened = access.body.session as SessionView | undefined;
  // Why a visit did not open, in the failure's own words (e.g. an observation alarm).
  const why =
    opened && opened.state !== 'open'
      ? ` — ${opened.history
          .map((h) => h.reason)
          .filter(Boolean)
          .join('; ')}; alarms: ${world.alarms
          .filter((a) => a.sessionId === opened.id)
          .map((a) => a.alarm.type)
          .join(', ')}`
      : '';
  expect.that(
    access.status === 200 && opened?.state === 'open',
    `the door opens for ${who} (HTTP ${access.status} ${errorCode(access) ?? opened?.state}${why})`,
  );
  if (access.status !== 200 || opened?.state !== 'open') return { access, session: null };
  expect.that(
    opened.armedAt !== null,
    `the camera proved it records before the door opened for ${who}`,
  );
  expect.that(world.home.lock.bolt() === 'unlocked', `the bolt is drawn for ${who}`);
  await world.dropParcel();
  const relock = await call(
    world,
    'POST',
    `/api/guest/sessions/${opened.id}/relock`,
    guest.token,
    {},
  );
  expect.that(
    relock.status === 200,
    `${who}'s "door closed — lock" is answered (HTTP ${relock.status})`,
  );
  const done = await world.waitForState(opened.id, ['completed', 'aborted', 'refused'], 10_000);
  expect.that(done.state === 'completed', `${who}'s visit completes (was ${done.state})`);
  expect.that(done.lockConfirmedAt !== null, `the lock confirmed it locked after ${who}'s visit`);
  expect.that(world.home.lock.bolt() === 'locked', `the door is locked after ${who}'s visit`);
  return { access, session: done };
}

/**
 * A PinSync like the system's, on its parts, with a guest lease short enough to wait out (a
 * member's is ten of them); the scenarios that wait out the offline bound stop the system's own
 * and run this one.
 */
export function shortLeasePins(
  world: ScenarioWorld,
  o: { readonly leaseMs: number; readonly retryMaxMs: number },
): PinSync {
  const { sys } = world;
  return new PinSync({
    gateway: sys.gateway,
    store: sys.store,
    pinSlots: sys.store.pinSlots,
    audit: sys.audit,
    clock: sys.clock,
    masterKey: sys.keys.masterKey,
    notify: (homeId, message) =>
      sys.events.publish({ type: 'notice', homeId, message, at: sys.clock.now() }),
    timing: {
      retryBaseMs: 200,
      retryMaxMs: o.retryMaxMs,
      maxAttempts: 4,
      commandTimeoutMs: 2_000,
      reconcileEveryMs: null,
      guestLeaseMs: o.leaseMs,
      memberLeaseMs: 10 * o.leaseMs,
    },
  });
}

/**
 * The world's embedded broker. The scenarios that count its refusals (a separate broker
 * reports its own) need it, and say so plainly on an external one.
 */
export function embeddedBroker(sys: RunningSystem): EmbeddedBroker {
  if (!sys.broker) {
    throw new Error(
      "this scenario counts the embedded broker's refusals, and the world runs an external broker",
    );
  }
  return sys.broker;
}
