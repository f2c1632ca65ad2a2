/**
 * The owner's choice (household with `manage-delivery-settings`): which carriers may deliver
 * inside this home, and which couriers may never come in whatever their carrier says.
 *
 * A carrier is off until the owner allows it (`undecided` is not allowed). Blocking a carrier
 * or a courier takes effect at once on deliveries already made: the access decision reads the
 * choice at the moment the courier asks, and a visit under way is ended (the door relocks once
 * closed). Unblocking restores what the deliveries allowed, since no grant was spent.
 */
import type { FastifyPluginAsync } from 'fastify';
import { Type } from 'typebox';
import type { Principal } from '../../core/model.ts';
import { EmptyBody, HomeParams, Id } from '../../protocol/http.ts';
import type { HomeCarrierView, HomeCourierView } from '../../protocol/views.ts';
import type { AppDeps } from '../app.ts';
import { endCourierAccess } from './carrier-courier-routes.ts';
import { ownHome } from './home-routes.ts';
import { denyObject, errorResponses, fail, householdWith } from './route-helpers.ts';

/** Couriers a home knows, shown at most (the most recent first). */
export const MAX_KNOWN_COURIERS = 50;

const strict = { additionalProperties: false } as const;
const HomeCarrierParams = Type.Object({ homeId: Id, carrierId: Id }, strict);
const HomeCourierParams = Type.Object({ homeId: Id, courierId: Id }, strict);
const CarrierDecisionRequest = Type.Object(
  { decision: Type.Union([Type.Literal('allowed'), Type.Literal('blocked')]) },
  strict,
);

export const homeCarrierRoutes =
  (deps: AppDeps): FastifyPluginAsync =>
  async (app) => {
    const person = async (id: string): Promise<{ id: string; displayName: string }> => ({
      id,
      displayName: (await deps.store.principals.get(id))?.displayName ?? id,
    });

    const courierView = async (homeId: string, courier: Principal): Promise<HomeCourierView> => {
      const blocked = (await deps.store.homes.listBlockedCouriers(homeId)).find(
        (b) => b.courierId === courier.id,
      );
      const carrier =
        courier.carrierId === null
          ? null
          : await deps.store.principals.getCarrier(courier.carrierId);
      return {
        id: courier.id,
        displayName: courier.displayName,
        carrier,
        blocked: blocked ? { at: blocked.blockedAt, by: await person(blocked.blockedBy) } : null,
      };
    };

    /**
     * A courier this home knows (one who has or had a delivery here), or 404: an unknown id as
     * such, anyone else's id audited as a probe.
     */
    const knownCourier = async (p: Principal, homeId: string, id: string): Promise<Principal> => {
      const c = await deps.store.principals.get(id);
      if (!c) fail('courier.not-found');
      const known =
        c.role === 'courier' &&
        ((await deps.store.homes.hasCourierServed(homeId, id)) ||
          (await deps.store.homes.isCourierBlocked(homeId, id)));
      if (!known) return denyObject(deps, p, 'courier.not-found', `principal:${id}`);
      return c;
    };

    app.get(
      '/api/homes/:homeId/carriers',
      {
        schema: {
          tags: ['homes'],
          summary:
            'Every carrier on this server and this home’s decision: allowed, blocked or undecided (not allowed)',
          params: HomeParams,
          response: errorResponses,
        },
      },
      async (req) => {
        const p = await householdWith(deps, req, 'manage-delivery-settings');
        const { homeId } = req.params as { homeId: string };
        await ownHome(deps, p, homeId);
        const [carriers, decisions] = await Promise.all([
          deps.store.principals.listCarriers(),
          deps.store.homes.listCarrierDecisions(homeId),
        ]);
        const byCarrier = new Map(decisions.map((d) => [d.carrierId, d]));
        const views: HomeCarrierView[] = [];
        for (const c of carriers) {
          const d = byCarrier.get(c.id);
          views.push({
            id: c.id,
            name: c.name,
            decision: d?.decision ?? 'undecided',
            decidedAt: d?.decidedAt ?? null,
            decidedBy: d?.decidedBy ? await person(d.decidedBy) : null,
          });
        }
        return { carriers: views };
      },
    );

    app.put(
      '/api/homes/:homeId/carriers/:carrierId',
      {
        schema: {
          tags: ['homes'],
          summary:
            'Allow a carrier to deliver inside, or block it; blocking ends its visit under way and its deliveries can no longer open the door',
          params: HomeCarrierParams,
          body: CarrierDecisionRequest,
          response: errorResponses,
        },
      },
      async (req) => {
        const p = await householdWith(deps, req, 'manage-delivery-settings');
        const { homeId, carrierId } = req.params as { homeId: string; carrierId: string };
        const { decision } = req.body as { decision: 'allowed' | 'blocked' };
        await ownHome(deps, p, homeId);
        const carrier = await deps.store.principals.getCarrier(carrierId);
        if (!carrier) fail('carrier.not-found');
        const now = deps.clock.now();
        const before = await deps.store.homes.decideCarrier(homeId, carrierId, decision, now, p.id);
        await deps.audit.append({
          kind: 'carrier.decided',
          actor: { type: 'principal', id: p.id },
          subject: `home:${homeId}`,
          data: { carrierId, decision, before },
        });
        if (decision === 'blocked') {
          // Deliveries already made can no longer open the door (the access decision reads the
          // choice); a visit under way ends now.
          const couriers = new Set<string>();
          for (const d of await deps.store.deliveries.listForHome(homeId)) {
            if (d.carrierId === carrierId && d.courierId !== null) couriers.add(d.courierId);
          }
          for (const id of couriers) {
            await endCourierAccess(deps, id, now, { homeId, revoke: false });
          }
        }
        const after = (await deps.store.homes.listCarrierDecisions(homeId)).find(
          (d) => d.carrierId === carrierId,
        );
        return {
          carrier: {
            id: carrier.id,
            name: carrier.name,
            decision: after?.decision ?? 'undecided',
            decidedAt: after?.decidedAt ?? null,
            decidedBy: after?.decidedBy ? await person(after.decidedBy) : null,
          } satisfies HomeCarrierView,
        };
      },
    );

    app.get(
      '/api/homes/:homeId/blocked-couriers',
      {
        schema: {
          tags: ['homes'],
          summary:
            'Couriers blocked at this home, and the others who have had a delivery here (most recent first)',
          params: HomeParams,
          response: errorResponses,
        },
      },
      async (req) => {
        const p = await householdWith(deps, req, 'manage-delivery-settings');
        const { homeId } = req.params as { homeId: string };
        await ownHome(deps, p, homeId);
        const blockedIds = (await deps.store.homes.listBlockedCouriers(homeId)).map(
          (b) => b.courierId,
        );
        const served = await deps.store.homes.listCouriersServed(homeId, MAX_KNOWN_COURIERS);
        const views = async (ids: readonly string[]): Promise<HomeCourierView[]> => {
          const out: HomeCourierView[] = [];
          for (const id of ids) {
            const c = await deps.store.principals.get(id);
            if (c) out.push(await courierView(homeId, c));
          }
          return out;
        };
        return {
          blocked: await views(blockedIds),
          others: await views(served.filter((id) => !blockedIds.includes(id))),
        };
      },
    );

    app.post(
      '/api/homes/:homeId/couriers/:courierId/block',
      {
        schema: {
          tags: ['homes'],
          summary:
            'Block a courier who has had a delivery here: whatever their carrier says, they cannot open this door (a visit under way ends)',
          params: HomeCourierParams,
          body: EmptyBody,
          response: errorResponses,
        },
      },
      async (req) => {
        const p = await householdWith(deps, req, 'manage-delivery-settings');
        const { homeId, courierId } = req.params as { homeId: string; courierId: string };
        await ownHome(deps, p, homeId);
        const courier = await knownCourier(p, homeId, courierId);
        const now = deps.clock.now();
        const newly = await deps.store.homes.blockCourier(homeId, courier.id, now, p.id);
        await deps.audit.append({
          kind: 'courier.blocked',
          actor: { type: 'principal', id: p.id },
          subject: `home:${homeId}`,
          data: { courierId: courier.id, carrierId: courier.carrierId, alreadyBlocked: !newly },
        });
        await endCourierAccess(deps, courier.id, now, { homeId, revoke: false });
        return { courier: await courierView(homeId, courier) };
      },
    );

    app.post(
      '/api/homes/:homeId/couriers/:courierId/unblock',
      {
        schema: {
          tags: ['homes'],
          summary: 'Lift a courier’s block at this home',
          params: HomeCourierParams,
          body: EmptyBody,
          response: errorResponses,
        },
      },
      async (req) => {
        const p = await householdWith(deps, req, 'manage-delivery-settings');
        const { homeId, courierId } = req.params as { homeId: string; courierId: string };
        await ownHome(deps, p, homeId);
        const courier = await knownCourier(p, homeId, courierId);
        const lifted = await deps.store.homes.unblockCourier(homeId, courier.id);
        await deps.audit.append({
          kind: 'courier.unblocked',
          actor: { type: 'principal', id: p.id },
          subject: `home:${homeId}`,
          data: { courierId: courier.id, wasBlocked: lifted },
        });
        return { courier: await courierView(homeId, courier) };
      },
    );
  };
