/**
 * Steps the courier-abuse scenarios share: a carrier booking deliveries and inviting couriers
 * through its own API, a courier asking at the door with a position of their choosing, and the
 * observations that prove a refusal changed nothing (the bolt never moved, no session was
 * started, the grant was not spent, the refusal is on record).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { AuditEntry } from '../../core/audit-chain.ts';
import type { Position } from '../../core/geo.ts';
import type { SessionView } from '../../server/session-orchestrator.ts';
import type { Expectations } from '../scenario.ts';
import { sleep, type ScenarioWorld } from '../scenario-world.ts';
import { call, errorCode, type CallAnswer } from './common-steps.ts';

/** What a carrier's back office sends to book an in-home delivery. */
export interface Booking {
  readonly courierId: string;
  readonly windowStart: number;
  readonly windowEnd: number;
  /** Default: the demo home. */
  readonly homeId?: string;
  /** Default: the home's first door. */
  readonly doorId?: string;
}

/**
 * The carrier holding `apiKey` books an in-home delivery through `POST /api/carrier/deliveries`
 * (with an Idempotency-Key, as the API demands); returns its id. Throws if it is refused: the
 * scenarios attack the courier's side, so a booking that fails is a broken setup, not a finding.
 */
export async function bookDelivery(
  world: ScenarioWorld,
  apiKey: string,
  b: Booking,
): Promise<string> {
  const r = await call(
    world,
    'POST',
    '/api/carrier/deliveries',
    apiKey,
    {
      homeId: b.homeId ?? world.creds.homeId,
      ...(b.doorId === undefined ? {} : { doorId: b.doorId }),
      packageRef: `PKG-${randomBytes(3).toString('hex').toUpperCase()}`,
      windowStart: b.windowStart,
      windowEnd: b.windowEnd,
      courierId: b.courierId,
    },
    { 'idempotency-key': randomUUID() },
  );
  const id = (r.body.delivery as { id?: string } | undefined)?.id;
  if (r.status !== 201 || id === undefined)
    throw new Error(`the carrier's booking was refused: HTTP ${r.status} ${errorCode(r)}`);
  return id;
}

/** A courier who accepted their carrier's invitation and is signed in. */
export interface InvitedCourier {
  readonly id: string;
  readonly token: string;
  readonly username: string;
  readonly password: string;
}

/**
 * The carrier holding `apiKey` invites a courier by link (`couriers:manage`); the courier opens
 * the link, chooses a user name and password, and is signed in. Throws if any step is refused.
 */
export async function inviteCourier(
  world: ScenarioWorld,
  apiKey: string,
  displayName: string,
): Promise<InvitedCourier> {
  const inv = await call(world, 'POST', '/api/carrier/couriers/invites', apiKey, { displayName });
  if (inv.status !== 201)
    throw new Error(`the courier invitation was refused: HTTP ${inv.status} ${errorCode(inv)}`);
  const username = `${displayName.toLowerCase().replace(/[^a-z0-9]+/g, '-')}-${randomBytes(3).toString('hex')}`;
  const password = 'a long enough password';
  const acc = await call(
    world,
    'POST',
    `/api/courier-invites/${String(inv.body.token)}/accept`,
    null,
    {
      username,
      password,
    },
  );
  const id = (acc.body.principal as { id?: string } | undefined)?.id;
  if (acc.status !== 200 || id === undefined)
    throw new Error(
      `accepting the courier invitation failed: HTTP ${acc.status} ${errorCode(acc)}`,
    );
  return { id, token: String(acc.body.token), username, password };
}

/** "I'm at the door" for `deliveryId`, as whoever holds `token`, from `position`. */
export function askAtDoor(
  world: ScenarioWorld,
  token: string | null,
  deliveryId: string,
  position: Position | null,
): Promise<CallAnswer> {
  return call(world, 'POST', `/api/courier/deliveries/${deliveryId}/access`, token, { position });
}

/** The session in an answer to "I'm at the door", if any. */
export function sessionOf(a: CallAnswer): SessionView | null {
  return (a.body.session as SessionView | undefined) ?? null;
}

/** The bolt as the lock itself holds it, and when it last moved (the lock's clock). */
export interface LockMark {
  readonly bolt: string;
  readonly changedAt: number;
}

/** Where the lock stands now. */
export function lockMark(world: ScenarioWorld): LockMark {
  return { bolt: world.home.lock.bolt(), changedAt: world.home.lock.changedAt() };
}

/** Whether the lock has not moved since `before` (same bolt, same last change). */
export function lockUntouched(world: ScenarioWorld, before: LockMark): boolean {
  const now = lockMark(world);
  return now.bolt === before.bolt && now.changedAt === before.changedAt;
}

/** A delivery as the store holds it: what a refused request must leave alone. */
export interface DeliveryMark {
  readonly status: string | null;
  readonly grantUses: number | null;
  readonly grantRevokedAt: number | null;
  readonly sessions: number;
}

/** The delivery's status, its grant's uses and revocation, and how many sessions it had. */
export async function deliveryMark(
  world: ScenarioWorld,
  deliveryId: string,
): Promise<DeliveryMark> {
  const { deliveries, sessions } = world.sys.store;
  const [d, g, s] = await Promise.all([
    deliveries.get(deliveryId),
    deliveries.getGrantForDelivery(deliveryId),
    sessions.findForDelivery(deliveryId),
  ]);
  return {
    status: d?.status ?? null,
    grantUses: g?.uses ?? null,
    grantRevokedAt: g?.revokedAt ?? null,
    sessions: s.length,
  };
}

/** The audit log's newest sequence number: entries after it are what happened since. */
export async function auditHead(world: ScenarioWorld): Promise<number> {
  await world.sys.audit.drain();
  return (await world.sys.store.audit.last())?.seq ?? 0;
}

/** Every audit entry appended after `seq`, in order. */
export async function auditSince(world: ScenarioWorld, seq: number): Promise<AuditEntry[]> {
  await world.sys.audit.drain();
  const last = (await world.sys.store.audit.last())?.seq ?? 0;
  return last > seq ? world.sys.store.audit.getRange(seq + 1, last) : [];
}

/** The `command.sent` entries to the lock among `entries`: each one a reason the bolt may move. */
export function lockCommands(world: ScenarioWorld, entries: readonly AuditEntry[]): AuditEntry[] {
  const lockId = world.creds.devices.lock.id;
  return entries.filter((e) => e.kind === 'command.sent' && e.data.device === lockId);
}

/** One refused attempt at the door, as the report shows it. */
export interface RefusedAttempt {
  readonly what: string;
  readonly status: number;
  readonly code: string | null;
  readonly audited: boolean;
  /** From sending the request to its refusal, ms: how long the attacker waited to be told no. */
  readonly answeredMs: number;
}

/** What a refused "I'm at the door" must answer, and how it must be on record. */
export interface RefusalExpected {
  readonly what: string;
  readonly status: number;
  readonly code: string;
  /** The audit entry kind the refusal must leave, naming `actorId` (null: none is claimed). */
  readonly audit: 'access.refused' | 'auth.object-denied' | null;
  readonly actorId: string;
}

/**
 * Makes one attempt and checks the refusal changed nothing: the answer is `status` `code`, the
 * lock did not move and got no command, the delivery (if given) kept its status, grant and
 * sessions, and the refusal is on record as `audit`, naming the caller.
 */
export async function expectRefusedUntouched(
  world: ScenarioWorld,
  expect: Expectations,
  want: RefusalExpected,
  attempt: () => Promise<CallAnswer>,
  deliveryId: string | null,
): Promise<RefusedAttempt> {
  const lock = lockMark(world);
  const before = deliveryId === null ? null : await deliveryMark(world, deliveryId);
  const head = await auditHead(world);
  const sent = Date.now();
  const r = await attempt();
  const answeredMs = Date.now() - sent;
  const code = errorCode(r);
  expect.that(
    r.status === want.status && code === want.code,
    `${want.what}: refused ${want.status} ${want.code} (HTTP ${r.status} ${code})`,
  );
  expect.that(
    lockUntouched(world, lock),
    `${want.what}: the lock did not move (bolt ${world.home.lock.bolt()}, was ${lock.bolt})`,
  );
  const fresh = await auditSince(world, head);
  const commands = lockCommands(world, fresh);
  expect.that(
    commands.length === 0,
    `${want.what}: no command went to the lock (${commands.map((c) => String(c.data.action)).join(', ') || 'none'})`,
  );
  if (deliveryId !== null && before !== null) {
    const after = await deliveryMark(world, deliveryId);
    expect.that(
      JSON.stringify(after) === JSON.stringify(before),
      `${want.what}: the delivery is unchanged (${JSON.stringify(before)} → ${JSON.stringify(after)})`,
    );
  }
  let audited = false;
  if (want.audit !== null) {
    audited = fresh.some(
      (e) =>
        e.kind === want.audit &&
        e.actor.id === want.actorId &&
        (want.audit !== 'access.refused' || e.data.code === want.code),
    );
    expect.that(
      audited,
      `${want.what}: the refusal is on record as ${want.audit} naming ${want.actorId} (saw: ${
        fresh.map((e) => `${e.kind}/${e.actor.id}`).join(', ') || 'nothing'
      })`,
    );
  }
  return { what: want.what, status: r.status, code, audited, answeredMs };
}

/**
 * A whole in-home visit by the courier holding `token`: the door opens (checked), they walk in,
 * leave the parcel, walk out, ask to lock, and the session completes on the lock's own word.
 * Returns the finished session, or null if the door did not open.
 */
export async function courierVisit(
  world: ScenarioWorld,
  expect: Expectations,
  token: string,
  deliveryId: string,
  position: Position,
  who: string,
): Promise<SessionView | null> {
  const access = await askAtDoor(world, token, deliveryId, position);
  const opened = sessionOf(access);
  expect.that(
    access.status === 200 && opened?.state === 'open',
    `the door opens for ${who} (HTTP ${access.status} ${errorCode(access) ?? opened?.state})`,
  );
  if (access.status !== 200 || opened === null || opened.state !== 'open') return null;
  await world.dropParcel();
  const relock = await call(world, 'POST', `/api/courier/sessions/${opened.id}/relock`, token, {});
  expect.that(
    relock.status === 200 && relock.body.confirmed === true,
    `${who}'s "door closed — lock" is confirmed by the lock (HTTP ${relock.status} ${errorCode(relock) ?? String(relock.body.confirmed)})`,
  );
  const done = await world.waitForState(opened.id, ['completed', 'aborted', 'refused'], 10_000);
  expect.that(done.state === 'completed', `${who}'s visit completes (was ${done.state})`);
  expect.that(world.home.lock.bolt() === 'locked', `the door is locked after ${who}'s visit`);
  return done;
}

/** Resolves once the server's clock has passed `at` (ms), plus a small margin. */
export async function untilServerTime(
  world: ScenarioWorld,
  at: number,
  marginMs = 50,
): Promise<void> {
  const wait = at + marginMs - world.sys.clock.now();
  if (wait > 0) await sleep(wait);
}
