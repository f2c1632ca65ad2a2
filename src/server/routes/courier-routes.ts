/**
 * The courier at the door: today's deliveries, "I'm at the door", "door closed — lock", and for
 * a parcel meant for the doorstep, "left at the door".
 */
import type { FastifyPluginAsync } from 'fastify';
import {
  AccessRequestBody,
  DeliveryParams,
  EmptyBody,
  SessionParams,
} from '../../protocol/http.ts';
import type { Position } from '../../core/geo.ts';
import { DeliveryRepository } from '../../store/delivery-repository.ts';
import type { AppDeps } from '../app.ts';
import { carrierDeliveryView, DeliveryEventLog } from '../delivery-events.ts';
import { denyObject, errorResponses, fail, principalOf, unwrap } from './route-helpers.ts';

/** How long "I'm at the door" waits for the door to open (or the refusal), ms. */
export const ACCESS_WAIT_MS = 12_000;
/** How long "lock" waits for the lock's own confirmation, ms. */
export const RELOCK_WAIT_MS = 8_000;

export const courierRoutes =
  (deps: AppDeps): FastifyPluginAsync =>
  async (app) => {
    // The system's log, so the carrier's webhooks hear it; a bare app records its own.
    const deliveryEvents = deps.deliveryEvents ?? new DeliveryEventLog(deps.store.db, deps.clock);

    app.get(
      '/api/courier/deliveries',
      {
        schema: {
          tags: ['courier'],
          summary: 'My current deliveries: still to do and not past their window, or under way',
        },
      },
      async (req) => {
        const p = await principalOf(deps, req, ['courier']);
        // Only current work (principle 6): deliveries still to do whose window has not
        // passed, and any under way. Finished or past ones, and their addresses, are not shown.
        const now = deps.clock.now();
        const deliveries = (await deps.store.deliveries.listForCourier(p.id)).filter(
          (d) => d.status === 'in-progress' || (d.status === 'scheduled' && d.windowEnd > now),
        );
        const homes = new Map<string, { name: string; address: string; timeZone: string }>();
        for (const d of deliveries) {
          if (!homes.has(d.homeId)) {
            const h = await deps.store.homes.getHome(d.homeId);
            if (h) homes.set(h.id, { name: h.name, address: h.address, timeZone: h.timeZone });
          }
        }
        return { deliveries: deliveries.map((d) => ({ ...d, home: homes.get(d.homeId) ?? null })) };
      },
    );

    app.post(
      '/api/courier/deliveries/:deliveryId/access',
      {
        schema: {
          tags: ['courier'],
          summary:
            "I'm at the door: ask to open it. Waits until the door is open or the request is refused.",
          params: DeliveryParams,
          body: AccessRequestBody,
          response: errorResponses,
        },
      },
      async (req) => {
        const p = await principalOf(deps, req, ['courier']);
        const { deliveryId } = req.params as { deliveryId: string };
        const { position } = req.body as { position: Position | null };
        const started = unwrap(await deps.orchestrator.requestAccess(p, deliveryId, position));
        const v = await deps.orchestrator.waitWhile(
          started.id,
          ['requested', 'arming', 'unlocking'],
          ACCESS_WAIT_MS,
        );
        const session = v ?? started;
        // Refused, or given up on before the door ever unlocked (the lock never said it
        // opened): no entry, and the person is told why.
        const noEntry =
          session.state === 'refused' ||
          (session.state === 'relocking' && session.unlockedAt === null);
        if (noEntry && session.outcome) fail(session.outcome.code, session.outcome.message);
        return { session };
      },
    );

    app.post(
      '/api/courier/deliveries/:deliveryId/left-at-door',
      {
        schema: {
          tags: ['courier'],
          summary:
            'I left the parcel at the door (a doorstep delivery of mine, still to do, before its window ends)',
          params: DeliveryParams,
          body: EmptyBody,
          response: errorResponses,
        },
      },
      async (req) => {
        const p = await principalOf(deps, req, ['courier']);
        const { deliveryId } = req.params as { deliveryId: string };
        const d = await deps.store.deliveries.get(deliveryId);
        if (!d) fail('delivery.not-found');
        // Another courier's delivery is "not found", and the probe is on record.
        if (d.courierId !== p.id)
          return denyObject(deps, p, 'delivery.not-found', `delivery:${deliveryId}`);
        if ((d.placement ?? 'in-home') !== 'doorstep')
          fail(
            'delivery.wrong-state',
            'This parcel goes inside: use "I\'m at the door" to have the door opened.',
          );
        if (d.status !== 'scheduled')
          fail('delivery.wrong-state', 'This delivery is no longer to do.');
        const now = deps.clock.now();
        if (now >= d.windowEnd) fail('grant.expired');
        // The status and its event in one commit; only from scheduled, so a cancel racing it
        // leaves one of the two, never both.
        const event = await deps.store.db.transaction().execute(async (trx) => {
          if (
            !(await new DeliveryRepository(trx).transition(
              d.id,
              ['scheduled'],
              'left-at-door',
              now,
            ))
          )
            fail('delivery.wrong-state', 'This delivery is no longer to do.');
          return deliveryEvents.record(
            {
              deliveryId: d.id,
              carrierId: d.carrierId,
              type: 'delivery.left-at-door',
              status: 'left-at-door',
              data: { courierId: p.id, placement: 'doorstep' },
            },
            trx,
          );
        });
        await deps.audit.append({
          kind: 'delivery.left-at-door',
          actor: { type: 'principal', id: p.id },
          subject: `home:${d.homeId}`,
          data: { deliveryId: d.id, carrierId: d.carrierId, packageRef: d.packageRef },
        });
        // Signed now, so the carrier's proof of delivery is ready at once.
        await deps.audit.checkpoint();
        deliveryEvents.publish(event);
        return {
          delivery: carrierDeliveryView({ ...d, status: 'left-at-door', updatedAt: now }),
          message: 'Done: the parcel is at the door. You can go to the next stop.',
        };
      },
    );

    app.post(
      '/api/courier/sessions/:sessionId/relock',
      {
        schema: {
          tags: ['courier'],
          summary:
            'Door closed — lock. Waits for the lock’s own confirmation; "confirmed": false if it did not come.',
          params: SessionParams,
          body: EmptyBody,
          response: errorResponses,
        },
      },
      async (req) => {
        const p = await principalOf(deps, req, ['courier']);
        const { sessionId } = req.params as { sessionId: string };
        unwrap(await deps.orchestrator.requestRelock(p, sessionId));
        const v = await deps.orchestrator.waitWhile(sessionId, ['relocking'], RELOCK_WAIT_MS);
        if (!v) fail('session.not-found');
        const confirmed = v.lockConfirmedAt !== null;
        return {
          session: v,
          confirmed,
          message: confirmed
            ? v.door === 'open'
              ? 'The lock says locked, but the door is open: close the door. The owner has been alerted.'
              : v.state === 'completed'
                ? 'Locked and confirmed. You can go to the next stop.'
                : 'Locked; checking the door on camera.'
            : 'Not confirmed: the lock has not said it is locked. Wait here; the owner has been alerted.',
        };
      },
    );

    app.get(
      '/api/courier/sessions/:sessionId',
      {
        schema: {
          tags: ['courier'],
          summary: 'My access session',
          params: SessionParams,
          response: errorResponses,
        },
      },
      async (req) => {
        const p = await principalOf(deps, req, ['courier']);
        const { sessionId } = req.params as { sessionId: string };
        const v = await deps.orchestrator.view(sessionId);
        if (!v) fail('session.not-found');
        if (v.principalId !== p.id)
          return denyObject(deps, p, 'session.not-found', `session:${sessionId}`);
        return { session: v };
      },
    );
  };
