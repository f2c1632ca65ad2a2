/** A carrier's systems create deliveries with an API key and read their status. */
import { randomUUID } from 'node:crypto';
import type { FastifyPluginAsync } from 'fastify';
import { Type } from 'typebox';
import type { Delivery, Grant } from '../../core/model.ts';
import {
  CreateDeliveryRequest,
  DeliveryParams,
  type CreateDeliveryRequestBody,
} from '../../protocol/http.ts';
import type { AppDeps } from '../app.ts';
import { errorResponses, fail, principalOf } from './route-helpers.ts';

/** Longest delivery window, ms. */
export const MAX_WINDOW_MS = 24 * 60 * 60 * 1000;
/** How long a courier's door may stay unlocked in one delivery, ms. */
export const DELIVERY_MAX_OPEN_MS = 5 * 60_000;

export const carrierRoutes =
  (deps: AppDeps): FastifyPluginAsync =>
  async (app) => {
    app.post(
      '/api/carrier/deliveries',
      {
        schema: {
          tags: ['carrier'],
          summary: 'Create an in-home delivery (API key)',
          body: CreateDeliveryRequest,
          response: {
            201: Type.Object({ delivery: Type.Record(Type.String(), Type.Unknown()) }),
            ...errorResponses,
          },
        },
      },
      async (req, reply) => {
        const p = await principalOf(deps, req, ['carrier']);
        const body = req.body as CreateDeliveryRequestBody;
        const carrierId = p.carrierId;
        if (!carrierId) fail('auth.forbidden');
        const home = await deps.store.homes.getHome(body.homeId);
        // A home that has not allowed this carrier is indistinguishable from no home.
        if (!home || !(await deps.store.homes.isCarrierAllowed(home.id, carrierId)))
          fail('home.not-found');
        if (!home.inHomeDelivery) fail('delivery.in-home-disabled');
        const doors = await deps.store.homes.listDoors(home.id);
        const door = body.doorId ? doors.find((d) => d.id === body.doorId) : doors[0];
        if (!door) fail('door.not-found');
        const now = deps.clock.now();
        if (body.windowEnd <= body.windowStart)
          fail('delivery.window-invalid', 'windowEnd must be after windowStart.');
        if (body.windowEnd <= now)
          fail('delivery.window-invalid', 'The window has already passed.');
        if (body.windowEnd - body.windowStart > MAX_WINDOW_MS)
          fail('delivery.window-invalid', 'A window may be at most 24 hours.');
        if (body.courierId) {
          const courier = await deps.store.principals.get(body.courierId);
          if (!courier || courier.role !== 'courier' || courier.carrierId !== carrierId)
            fail('auth.forbidden', 'That courier is not one of yours.');
        }
        const delivery: Delivery = {
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
        };
        await deps.store.deliveries.create(delivery);
        if (delivery.courierId) {
          const grant: Grant = {
            id: randomUUID(),
            kind: 'delivery',
            principalId: delivery.courierId,
            homeId: home.id,
            doorId: door.id,
            deliveryId: delivery.id,
            validFrom: delivery.windowStart,
            validUntil: delivery.windowEnd,
            maxUses: 1,
            uses: 0,
            maxOpenMs: DELIVERY_MAX_OPEN_MS,
            requiresRecording: true,
            requiresPresence: true,
            revokedAt: null,
          };
          await deps.store.deliveries.createGrant(grant);
        }
        await deps.audit.append({
          kind: 'delivery.created',
          actor: { type: 'principal', id: p.id },
          subject: `home:${home.id}`,
          data: {
            deliveryId: delivery.id,
            packageRef: delivery.packageRef,
            windowStart: delivery.windowStart,
            windowEnd: delivery.windowEnd,
            courierId: delivery.courierId,
          },
        });
        void reply.code(201);
        return { delivery };
      },
    );

    app.get(
      '/api/carrier/deliveries/:deliveryId',
      {
        schema: {
          tags: ['carrier'],
          summary: 'One of my deliveries',
          params: DeliveryParams,
          response: errorResponses,
        },
      },
      async (req) => {
        const p = await principalOf(deps, req, ['carrier']);
        const { deliveryId } = req.params as { deliveryId: string };
        const d = await deps.store.deliveries.get(deliveryId);
        if (!d || d.carrierId !== p.carrierId) fail('delivery.not-found');
        return { delivery: d };
      },
    );

    app.get(
      '/api/carrier/deliveries',
      { schema: { tags: ['carrier'], summary: 'My deliveries' } },
      async (req) => {
        const p = await principalOf(deps, req, ['carrier']);
        return {
          deliveries: p.carrierId ? await deps.store.deliveries.listForCarrier(p.carrierId) : [],
        };
      },
    );
  };
