/** The courier at the door: today's deliveries, "I'm at the door", "door closed — lock". */
import type { FastifyPluginAsync } from 'fastify';
import {
  AccessRequestBody,
  DeliveryParams,
  EmptyBody,
  SessionParams,
} from '../../protocol/http.ts';
import type { Position } from '../../core/geo.ts';
import type { AppDeps } from '../app.ts';
import { errorResponses, fail, principalOf, unwrap } from './route-helpers.ts';

/** How long "I'm at the door" waits for the door to open (or the refusal), ms. */
export const ACCESS_WAIT_MS = 12_000;
/** How long "lock" waits for the lock's own confirmation, ms. */
export const RELOCK_WAIT_MS = 8_000;

export const courierRoutes =
  (deps: AppDeps): FastifyPluginAsync =>
  async (app) => {
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
        if (session.state === 'refused' && session.outcome)
          fail(session.outcome.code, session.outcome.message);
        return { session };
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
            ? v.state === 'completed'
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
        if (!v || v.principalId !== p.id) fail('session.not-found');
        return { session: v };
      },
    );
  };
