/**
 * The deliveries API of a carrier (an API key with the deliveries scopes, or a carrier admin):
 * create a delivery, assign or reassign its courier, cancel it, read it with its history, list
 * them page by page, and fetch the proof of delivery once it is done.
 *
 * Every change is a POST with an `Idempotency-Key` (see ./idempotency.ts). A change and the
 * event that records it in the delivery's history are committed together, then audited, then
 * announced (the webhooks listen). Another carrier's delivery is answered as unknown (404), and
 * the attempt is on record.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import {
  CHECKPOINT_ENTRY_KIND,
  redact,
  type AuditEntry,
  type ExportedAuditEntry,
} from '../../core/audit-chain.ts';
import type { Delivery, DeliveryStatus, Grant, Home } from '../../core/model.ts';
import {
  AssignDeliveryRequest,
  CancelDeliveryRequest,
  CarrierDeliveriesQuery,
  CreateDeliveryRequest,
  DeliveryParams,
  IdempotencyHeaders,
  type AssignDeliveryRequestBody,
  type CancelDeliveryRequestBody,
  type CarrierDeliveriesQueryType,
  type CreateDeliveryRequestBody,
} from '../../protocol/http.ts';
import type { DeliveryProofView } from '../../protocol/views.ts';
import { DeliveryRepository } from '../../store/delivery-repository.ts';
import type { DeliveryEvent } from '../../store/delivery-event-repository.ts';
import type { Database } from '../../store/index.ts';
import type { Kysely } from 'kysely';
import type { AppDeps } from '../app.ts';
import { carrierDeliveryView, DeliveryEventLog, deliveryEventView } from '../delivery-events.ts';
import { carrierOf, type CarrierCaller } from './carrier-auth.ts';
import { idempotent } from './idempotency.ts';
import { errorResponses, fail } from './route-helpers.ts';

/** Longest delivery window, ms. */
export const MAX_WINDOW_MS = 24 * 60 * 60 * 1000;
/** How long a courier's door may stay unlocked in one delivery, ms. */
export const DELIVERY_MAX_OPEN_MS = 5 * 60_000;
/** Deliveries per page of `GET /api/carrier/deliveries` when the carrier does not say. */
export const DEFAULT_PAGE_SIZE = 50;
/** The most deliveries one page may hold. */
export const MAX_PAGE_SIZE = 200;

/**
 * What of an access session the carrier's proof shows whole: the courier's request, the
 * session's steps, what the lock, door sensor and camera reported, alarms, coverage and the
 * outcome. Everything else (the clip's frames, the owner's answers and acknowledgements,
 * keypad events) is redacted to the hashes that keep the chain verifiable.
 */
export const PROOF_SESSION_KINDS: ReadonlySet<string> = new Set([
  'session.requested',
  'session.state',
  'command.sent',
  'command.outcome',
  'device.state',
  'device.availability',
  'heartbeat.rejected',
  'observation.gap',
  'observation.restored',
  'alarm.raised',
  'access.refused',
  'session.coverage',
  'session.ended',
  'recovery.door-secured',
  'recovery.door-unconfirmed',
]);

const wrongState: Record<DeliveryStatus, string> = {
  scheduled: 'The delivery is scheduled.',
  'in-progress': 'The courier is inside with this delivery: it can no longer be changed.',
  delivered: 'The delivery is done: it can no longer be changed.',
  'left-at-door': 'The parcel was left at the door: the delivery can no longer be changed.',
  'needs-review': 'The delivery has ended (it needs review): it can no longer be changed.',
  cancelled: 'The delivery is cancelled.',
};

export const carrierRoutes =
  (deps: AppDeps): FastifyPluginAsync =>
  async (app) => {
    // The system's log, so the webhooks hear what happens here; a bare app records its own.
    const events = deps.deliveryEvents ?? new DeliveryEventLog(deps.store.db, deps.clock);
    const publish = (list: readonly DeliveryEvent[]): void => {
      for (const e of list) events.publish(e);
    };

    /** The carrier's own delivery, or 404 (for another carrier's, audited: a probe). */
    const ownDelivery = async (
      req: FastifyRequest,
      caller: CarrierCaller,
      deliveryId: string,
    ): Promise<Delivery> => {
      const d = await deps.store.deliveries.get(deliveryId);
      if (d && d.carrierId === caller.carrierId) return d;
      if (d) {
        await deps.audit.append({
          kind: 'auth.object-denied',
          actor: caller.actor,
          subject: `delivery:${deliveryId}`,
          data: {
            role: 'carrier',
            carrierId: caller.carrierId,
            route: req.routeOptions.url ?? req.url,
            answered: 'delivery.not-found',
          },
        });
      }
      return fail('delivery.not-found');
    };

    /**
     * A courier the carrier may send to `home`: one of its own, not revoked, not blocked by the
     * home's owner. Another carrier's courier is refused exactly as an unknown id is.
     */
    const assignable = async (carrierId: string, courierId: string, home: Home): Promise<void> => {
      const courier = await deps.store.principals.get(courierId);
      if (!courier || courier.role !== 'courier' || courier.carrierId !== carrierId)
        fail('auth.forbidden', 'That courier is not one of yours.');
      if (await deps.store.principals.isDisabled(courierId))
        fail('auth.forbidden', 'That courier’s access has been revoked; assign another.');
      if (await deps.store.homes.isCourierBlocked(home.id, courierId))
        fail('courier.blocked', 'The owner of this home has blocked that courier; assign another.');
    };

    /** No courier at the door for this delivery right now (its session would be cut short). */
    const notAtTheDoor = async (d: Delivery): Promise<void> => {
      const running = (await deps.store.sessions.findForDelivery(d.id)).some(
        (s) => s.endedAt === null,
      );
      if (running)
        fail(
          'delivery.wrong-state',
          'The courier is at the door for this delivery right now; try again once they are done.',
        );
    };

    /** The grant that lets `courierId` in for an in-home delivery, for its window, once. */
    const grantFor = (d: Delivery, courierId: string): Grant => ({
      id: randomUUID(),
      kind: 'delivery',
      principalId: courierId,
      homeId: d.homeId,
      doorId: d.doorId,
      deliveryId: d.id,
      validFrom: d.windowStart,
      validUntil: d.windowEnd,
      maxUses: 1,
      uses: 0,
      maxOpenMs: DELIVERY_MAX_OPEN_MS,
      requiresRecording: true,
      requiresPresence: true,
      revokedAt: null,
    });

    const record = (
      db: Kysely<Database>,
      d: Delivery,
      type: DeliveryEvent['type'],
      status: DeliveryStatus,
      data: Record<string, unknown>,
    ): Promise<DeliveryEvent> =>
      events.record({ deliveryId: d.id, carrierId: d.carrierId, type, status, data }, db);

    app.post(
      '/api/carrier/deliveries',
      {
        schema: {
          tags: ['carrier'],
          summary:
            'Create a delivery, in-home or at the doorstep (scope deliveries:write; Idempotency-Key required)',
          headers: IdempotencyHeaders,
          body: CreateDeliveryRequest,
          response: errorResponses,
        },
      },
      async (req, reply) => {
        const caller = await carrierOf(deps, req, 'deliveries:write');
        const body = req.body as CreateDeliveryRequestBody;
        const carrierId = caller.carrierId;
        let created: DeliveryEvent[] = [];
        let delivery: Delivery | null = null;
        const sent = await idempotent(deps, req, reply, carrierId, async (claim) => {
          const placement = body.placement ?? 'in-home';
          const home = await deps.store.homes.getHome(body.homeId);
          if (!home) fail('home.not-found');
          if (placement === 'in-home') {
            // A home that has not allowed this carrier in is indistinguishable from no home.
            if (!(await deps.store.homes.isCarrierAllowed(home.id, carrierId)))
              fail('home.not-found');
            if (!home.inHomeDelivery) fail('delivery.in-home-disabled');
          } else if ((await deps.store.homes.carrierDecision(home.id, carrierId)) === 'blocked') {
            // A blocked carrier may not even leave parcels at the door, and learns no more.
            fail('home.not-found');
          }
          const doors = await deps.store.homes.listDoors(home.id);
          const door = body.doorId ? doors.find((x) => x.id === body.doorId) : doors[0];
          if (!door) fail('door.not-found');
          const now = deps.clock.now();
          if (body.windowEnd <= body.windowStart)
            fail('delivery.window-invalid', 'windowEnd must be after windowStart.');
          if (body.windowEnd <= now)
            fail('delivery.window-invalid', 'The window has already passed.');
          if (body.windowEnd - body.windowStart > MAX_WINDOW_MS)
            fail('delivery.window-invalid', 'A window may be at most 24 hours.');
          if (body.courierId) await assignable(carrierId, body.courierId, home);
          const d: Delivery = {
            id: randomUUID(),
            carrierId,
            homeId: home.id,
            doorId: door.id,
            packageRef: body.packageRef,
            windowStart: body.windowStart,
            windowEnd: body.windowEnd,
            courierId: body.courierId ?? null,
            status: 'scheduled',
            createdAt: now,
            placement,
            updatedAt: now,
          };
          const answer = { status: 201, body: { delivery: carrierDeliveryView(d) } };
          // The delivery, its grant, its first event and the answer a retry gets: one commit.
          created = await deps.store.db.transaction().execute(async (trx) => {
            const deliveries = new DeliveryRepository(trx);
            await deliveries.create(d);
            // A doorstep parcel needs no way in.
            if (d.courierId && placement === 'in-home')
              await deliveries.createGrant(grantFor(d, d.courierId));
            const e = await record(trx, d, 'delivery.created', 'scheduled', {
              courierId: d.courierId,
              placement,
            });
            await claim?.answer(trx, answer);
            return [e];
          });
          delivery = d;
          // Recorded before the answer leaves: a 201 the carrier got is in the audit log.
          await deps.audit.append({
            kind: 'delivery.created',
            actor: caller.actor,
            subject: `home:${d.homeId}`,
            data: {
              deliveryId: d.id,
              carrierId: d.carrierId,
              packageRef: d.packageRef,
              placement: d.placement ?? 'in-home',
              windowStart: d.windowStart,
              windowEnd: d.windowEnd,
              courierId: d.courierId,
            },
          });
          return answer;
        });
        if (delivery) publish(created);
        return sent;
      },
    );

    app.post(
      '/api/carrier/deliveries/:deliveryId/assign',
      {
        schema: {
          tags: ['carrier'],
          summary:
            'Assign or reassign the courier of a scheduled delivery: the previous courier’s access ends at once (scope deliveries:write; Idempotency-Key required)',
          headers: IdempotencyHeaders,
          params: DeliveryParams,
          body: AssignDeliveryRequest,
          response: errorResponses,
        },
      },
      async (req, reply) => {
        const caller = await carrierOf(deps, req, 'deliveries:write');
        const { deliveryId } = req.params as { deliveryId: string };
        const { courierId } = req.body as AssignDeliveryRequestBody;
        const before = await ownDelivery(req, caller, deliveryId);
        let done: { d: Delivery; previous: string | null; revoked: string[] } | null = null;
        let settled: DeliveryEvent[] = [];
        const sent = await idempotent(deps, req, reply, caller.carrierId, async (claim) => {
          const d = await ownDelivery(req, caller, deliveryId);
          if (d.status !== 'scheduled') fail('delivery.wrong-state', wrongState[d.status]);
          const now = deps.clock.now();
          if (d.windowEnd <= now)
            fail('delivery.window-invalid', 'The delivery window has passed; create a new one.');
          const home = await deps.store.homes.getHome(d.homeId);
          if (!home) fail('delivery.not-found');
          await assignable(caller.carrierId, courierId, home);
          await notAtTheDoor(d);
          const after: Delivery = { ...d, courierId, updatedAt: now };
          const answer = { status: 200, body: { delivery: carrierDeliveryView(after) } };
          if (d.courierId === courierId) {
            // Already theirs: nothing changes, and no event says otherwise.
            return answer;
          }
          const result = await deps.store.db.transaction().execute(async (trx) => {
            const deliveries = new DeliveryRepository(trx);
            // Still scheduled at the moment of the change, or nothing changes.
            if (!(await deliveries.reassign(d.id, courierId, now)))
              fail('delivery.wrong-state', 'The delivery has just started or ended.');
            const revoked = await deliveries.revokeGrantsOfDelivery(d.id, now);
            if ((d.placement ?? 'in-home') === 'in-home')
              await deliveries.createGrant(grantFor(d, courierId));
            const e = await record(trx, d, 'delivery.assigned', 'scheduled', {
              courierId,
              previousCourierId: d.courierId,
            });
            await claim?.answer(trx, answer);
            return { revoked, e };
          });
          settled = [result.e];
          done = { d: after, previous: d.courierId, revoked: result.revoked };
          // A session that slipped in under the old grant ends now (its door stays shut), and
          // the change is recorded before the answer leaves.
          for (const g of result.revoked) await deps.orchestrator.grantRevoked(g);
          await deps.audit.append({
            kind: 'delivery.assigned',
            actor: caller.actor,
            subject: `home:${before.homeId}`,
            data: {
              deliveryId,
              carrierId: caller.carrierId,
              courierId,
              previousCourierId: d.courierId,
              revokedGrants: result.revoked,
            },
          });
          return answer;
        });
        if (done) publish(settled);
        return sent;
      },
    );

    app.post(
      '/api/carrier/deliveries/:deliveryId/cancel',
      {
        schema: {
          tags: ['carrier'],
          summary:
            'Cancel a delivery that has not started: the courier’s access ends at once (scope deliveries:write; Idempotency-Key required)',
          headers: IdempotencyHeaders,
          params: DeliveryParams,
          body: CancelDeliveryRequest,
          response: errorResponses,
        },
      },
      async (req, reply) => {
        const caller = await carrierOf(deps, req, 'deliveries:write');
        const { deliveryId } = req.params as { deliveryId: string };
        const { reason } = req.body as CancelDeliveryRequestBody;
        const before = await ownDelivery(req, caller, deliveryId);
        let revoked: string[] | null = null;
        let settled: DeliveryEvent[] = [];
        const sent = await idempotent(deps, req, reply, caller.carrierId, async (claim) => {
          const d = await ownDelivery(req, caller, deliveryId);
          if (d.status !== 'scheduled') fail('delivery.wrong-state', wrongState[d.status]);
          await notAtTheDoor(d);
          const now = deps.clock.now();
          const after: Delivery = { ...d, status: 'cancelled', updatedAt: now };
          const answer = { status: 200, body: { delivery: carrierDeliveryView(after) } };
          const result = await deps.store.db.transaction().execute(async (trx) => {
            const deliveries = new DeliveryRepository(trx);
            if (!(await deliveries.transition(d.id, ['scheduled'], 'cancelled', now)))
              fail('delivery.wrong-state', 'The delivery has just started or ended.');
            const grants = await deliveries.revokeGrantsOfDelivery(d.id, now);
            const e = await record(trx, d, 'delivery.cancelled', 'cancelled', {
              ...(reason === undefined ? {} : { reason }),
            });
            await claim?.answer(trx, answer);
            return { grants, e };
          });
          settled = [result.e];
          revoked = result.grants;
          // Running visits end, and the cancellation is recorded, before the answer leaves.
          for (const g of result.grants) await deps.orchestrator.grantRevoked(g);
          await deps.audit.append({
            kind: 'delivery.cancelled',
            actor: caller.actor,
            subject: `home:${before.homeId}`,
            data: {
              deliveryId,
              carrierId: caller.carrierId,
              ...(reason === undefined ? {} : { reason }),
              revokedGrants: result.grants,
            },
          });
          return answer;
        });
        if (revoked) publish(settled);
        return sent;
      },
    );

    app.get(
      '/api/carrier/deliveries/:deliveryId',
      {
        schema: {
          tags: ['carrier'],
          summary: 'One of my deliveries, with its history of events (scope deliveries:read)',
          params: DeliveryParams,
          response: errorResponses,
        },
      },
      async (req) => {
        const caller = await carrierOf(deps, req, 'deliveries:read');
        const { deliveryId } = req.params as { deliveryId: string };
        const d = await ownDelivery(req, caller, deliveryId);
        const history = await events.listForDelivery(d.id);
        return { delivery: carrierDeliveryView(d), events: history.map(deliveryEventView) };
      },
    );

    app.get(
      '/api/carrier/deliveries',
      {
        schema: {
          tags: ['carrier'],
          summary:
            'My deliveries, newest first, a page at a time; `next` continues (scope deliveries:read)',
          querystring: CarrierDeliveriesQuery,
          response: errorResponses,
        },
      },
      async (req) => {
        const caller = await carrierOf(deps, req, 'deliveries:read');
        const q = req.query as CarrierDeliveriesQueryType;
        const limit = q.limit === undefined ? DEFAULT_PAGE_SIZE : Number(q.limit);
        if (limit < 1 || limit > MAX_PAGE_SIZE)
          fail('request.invalid', `"limit" must be 1 to ${MAX_PAGE_SIZE}.`);
        let after: Delivery | undefined;
        if (q.after !== undefined) {
          const d = await deps.store.deliveries.get(q.after);
          // Another carrier's id is as unknown here as an id that never existed.
          if (!d || d.carrierId !== caller.carrierId)
            fail('request.invalid', '"after" names no delivery of yours: pass the `next` you got.');
          after = d;
        }
        const page = await deps.store.deliveries.pageForCarrier(caller.carrierId, {
          limit,
          ...(q.status === undefined ? {} : { status: q.status }),
          ...(after === undefined ? {} : { after }),
        });
        return { deliveries: page.deliveries.map(carrierDeliveryView), next: page.next };
      },
    );

    app.get(
      '/api/carrier/deliveries/:deliveryId/proof',
      {
        schema: {
          tags: ['carrier'],
          summary:
            'Proof of delivery: outcome, times, camera coverage and a signed receipt from the audit log that `threshold audit verify --file` checks; never video (scope deliveries:read)',
          params: DeliveryParams,
          response: errorResponses,
        },
      },
      async (req) => {
        const caller = await carrierOf(deps, req, 'deliveries:read');
        const { deliveryId } = req.params as { deliveryId: string };
        const d = await ownDelivery(req, caller, deliveryId);
        return proofOf(deps, d);
      },
    );
  };

/** See {@link DeliveryProofView}; 409 `delivery.proof-not-ready` until it can be proven. */
async function proofOf(deps: AppDeps, d: Delivery): Promise<DeliveryProofView> {
  if (d.status === 'scheduled' || d.status === 'in-progress')
    fail('delivery.proof-not-ready', 'The delivery has not finished yet.');
  if (d.status === 'cancelled')
    fail('delivery.proof-not-ready', 'The delivery was cancelled: there is nothing to prove.');

  // Oldest first, each with its entries in the log.
  const sessions = (await deps.store.sessions.findForDelivery(d.id)).reverse();
  const bySession = new Map<string, AuditEntry[]>();
  for (const s of sessions)
    bySession.set(s.id, await deps.store.audit.entriesForSubject(`session:${s.id}`));
  for (const entries of bySession.values()) {
    if (!entries.some((e) => e.kind === 'session.ended'))
      fail('delivery.proof-not-ready', 'An access session of this delivery has not ended yet.');
  }
  const homeSubject = `home:${d.homeId}`;
  const ofThisDelivery = (e: AuditEntry): boolean =>
    e.kind.startsWith('delivery.') && e.data.deliveryId === d.id;
  const leftAtDoor = (await deps.store.audit.entriesForSubject(homeSubject)).filter(
    (e) => ofThisDelivery(e) && e.kind === 'delivery.left-at-door',
  );
  const sessionEntries = [...bySession.values()].flat();
  // The receipt runs from the first record of the delivery at the door to the first signed
  // checkpoint after its last conclusion (each session's end, or the courier's "left it").
  const firstSeq = Math.min(...[...sessionEntries, ...leftAtDoor].map((e) => e.seq));
  const lastSeq = Math.max(
    ...[...sessionEntries.filter((e) => e.kind === 'session.ended'), ...leftAtDoor].map(
      (e) => e.seq,
    ),
  );
  if (!Number.isFinite(firstSeq) || !Number.isFinite(lastSeq))
    fail('delivery.proof-not-ready', 'There is no record of this delivery at the door.');
  const checkpoints = await deps.store.audit.listCheckpoints();
  const closing = checkpoints.find((c) => c.seq >= lastSeq);
  if (!closing)
    fail(
      'delivery.proof-not-ready',
      'The record of this delivery is not signed yet; retry in a few seconds.',
    );
  const piece = await deps.store.audit.getRange(firstSeq, closing.seq + 1);
  if (piece.at(-1)?.kind !== CHECKPOINT_ENTRY_KIND)
    fail(
      'delivery.proof-not-ready',
      'The record of this delivery is not signed yet; retry in a few seconds.',
    );

  const sessionSubjects = new Set(sessions.map((s) => `session:${s.id}`));
  const keep = (e: AuditEntry): boolean =>
    e.subject === 'audit' ||
    (sessionSubjects.has(e.subject) && PROOF_SESSION_KINDS.has(e.kind)) ||
    (e.subject === homeSubject && ofThisDelivery(e)) ||
    (e.subject === `delivery:${d.id}` && e.kind === 'access.refused');
  const entries: ExportedAuditEntry[] = piece.map((e) => (keep(e) ? e : redact(e)));

  const last = sessions.at(-1);
  const lastEntries = last ? (bySession.get(last.id) ?? []) : [];
  const ended = lastEntries.find((e) => e.kind === 'session.ended');
  const outcome = ended?.data.outcome as { code?: unknown; message?: unknown } | null | undefined;
  const coverage = lastEntries.find((e) => e.kind === 'session.coverage')?.data;
  const gaps = Array.isArray(coverage?.gaps)
    ? (coverage.gaps as { startMs?: unknown; endMs?: unknown }[])
    : [];
  const num = (v: unknown): number | null => (typeof v === 'number' ? v : null);
  return {
    format: 'threshold-delivery-proof/v1',
    delivery: carrierDeliveryView(d),
    outcome: {
      status: d.status,
      code: typeof outcome?.code === 'string' ? outcome.code : null,
      message: typeof outcome?.message === 'string' ? outcome.message : null,
    },
    times: {
      windowStart: d.windowStart,
      windowEnd: d.windowEnd,
      requestedAt: lastEntries.find((e) => e.kind === 'session.requested')?.at ?? null,
      unlockedAt:
        lastEntries.find((e) => e.kind === 'session.state' && e.data.to === 'open')?.at ?? null,
      lockConfirmedAt: num(ended?.data.lockConfirmedAt),
      endedAt: ended?.at ?? leftAtDoor.at(-1)?.at ?? null,
    },
    coverage: coverage
      ? {
          ratio: num(coverage.ratio) ?? 0,
          startMs: num(coverage.startMs),
          endMs: num(coverage.endMs),
          gaps: gaps.length,
          gapMs: gaps.reduce((sum, g) => sum + ((num(g.endMs) ?? 0) - (num(g.startMs) ?? 0)), 0),
        }
      : null,
    sessionIds: sessions.map((s) => s.id),
    publicKey: deps.audit.publicKey,
    fromSeq: firstSeq,
    toSeq: closing.seq + 1,
    entries,
    checkpoints: checkpoints.filter((c) => c.seq >= firstSeq && c.seq <= closing.seq + 1),
  };
}
