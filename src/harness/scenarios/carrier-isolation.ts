/**
 * carrier-isolation — one carrier reaches for another's deliveries.
 *
 * Given carrier A (the demo's ParcelCo) with a delivery and a webhook, and carrier B with an API
 * key and a webhook of its own,
 * when B reads, changes, assigns, cancels and asks the proof of A's delivery, lists deliveries,
 * reads A's webhook log, disables A's webhook and resends A's webhook deliveries,
 * then each reach for an A object answers 404 exactly as an unknown id does, B's lists show
 * nothing of A's, each attempt is on record naming B's key, A's delivery and webhook are
 * unchanged, and B's receiver gets none of A's events.
 */
import { randomUUID } from 'node:crypto';
import type { Scenario } from '../scenario.ts';
import { WebhookReceiver } from '../webhook-receiver.ts';
import { call, errorCode } from './common-steps.ts';

type Method = 'GET' | 'POST' | 'DELETE';

export const carrierIsolation: Scenario = {
  name: 'carrier-isolation',
  expected:
    "carrier B gets 404 (as for unknown ids) for every read or change of A's deliveries and webhooks, each audited; nothing of A's changes or reaches B",
  world: { allowLocalEndpoints: true },
  async story({ world, expect }) {
    const { store, auth } = world.sys;
    const keyA = world.creds.carrier.apiKey;
    await store.principals.createCarrier({ id: 'carrier-rival', name: 'Rival Freight' });
    await store.homes.allowCarrier(world.creds.homeId, 'carrier-rival', world.sys.clock.now());
    const { id: keyIdB, key: keyB } = await auth.createApiKey('carrier-rival');
    const receiverA = new WebhookReceiver();
    const receiverB = new WebhookReceiver();
    await receiverA.start();
    await receiverB.start();
    try {
      const hookA = await call(world, 'POST', '/api/carrier/webhooks', keyA, {
        url: receiverA.url,
      });
      receiverA.secret = (hookA.body.secret as string | undefined) ?? '';
      const webhookIdA = (hookA.body.webhook as { id?: string } | undefined)?.id ?? 'none';
      const hookB = await call(world, 'POST', '/api/carrier/webhooks', keyB, {
        url: receiverB.url,
      });
      receiverB.secret = (hookB.body.secret as string | undefined) ?? '';
      expect.that(hookA.status === 201 && hookB.status === 201, 'both webhooks are registered');

      const now = world.sys.clock.now();
      const created = await call(
        world,
        'POST',
        '/api/carrier/deliveries',
        keyA,
        {
          homeId: world.creds.homeId,
          doorId: world.creds.doorId,
          packageRef: 'PKG-A-1',
          windowStart: now - 60_000,
          windowEnd: now + 60 * 60_000,
          courierId: world.creds.courier.id,
        },
        { 'idempotency-key': randomUUID() },
      );
      const deliveryA = (created.body.delivery as { id?: string } | undefined)?.id ?? 'none';
      expect.that(created.status === 201, `A books a delivery (HTTP ${created.status})`);
      await world
        .waitFor(() => receiverA.received.length > 0, 10_000, 'A hears of it')
        .catch(() => undefined);
      const logA = await call(world, 'GET', `/api/carrier/webhooks/${webhookIdA}/deliveries`, keyA);
      const sendIdA =
        ((logA.body.deliveries as { id: string }[] | undefined) ?? [])[0]?.id ?? 'none';
      const before = JSON.stringify({
        delivery: await store.deliveries.get(deliveryA),
        webhook: await store.db
          .selectFrom('webhooks')
          .selectAll()
          .where('id', '=', webhookIdA)
          .execute(),
      });

      const attempts: {
        what: string;
        method: Method;
        path: string;
        body?: unknown;
        unknown: string;
      }[] = [
        {
          what: "reading A's delivery",
          method: 'GET',
          path: `/api/carrier/deliveries/${deliveryA}`,
          unknown: '/api/carrier/deliveries/nope',
        },
        {
          what: "A's proof of delivery",
          method: 'GET',
          path: `/api/carrier/deliveries/${deliveryA}/proof`,
          unknown: '/api/carrier/deliveries/nope/proof',
        },
        {
          what: "assigning A's delivery",
          method: 'POST',
          path: `/api/carrier/deliveries/${deliveryA}/assign`,
          body: { courierId: world.creds.courier.id },
          unknown: '/api/carrier/deliveries/nope/assign',
        },
        {
          what: "cancelling A's delivery",
          method: 'POST',
          path: `/api/carrier/deliveries/${deliveryA}/cancel`,
          body: {},
          unknown: '/api/carrier/deliveries/nope/cancel',
        },
        {
          what: "A's webhook log",
          method: 'GET',
          path: `/api/carrier/webhooks/${webhookIdA}/deliveries`,
          unknown: '/api/carrier/webhooks/nope/deliveries',
        },
        {
          what: "disabling A's webhook",
          method: 'POST',
          path: `/api/carrier/webhooks/${webhookIdA}/disable`,
          body: {},
          unknown: '/api/carrier/webhooks/nope/disable',
        },
        {
          what: "resending A's webhook delivery",
          method: 'POST',
          path: `/api/carrier/webhook-deliveries/${sendIdA}/resend`,
          body: {},
          unknown: '/api/carrier/webhook-deliveries/nope/resend',
        },
      ];
      const deniedOf = async () => {
        let n = 0;
        for await (const e of store.audit.iterate())
          if (e.kind === 'auth.object-denied' && JSON.stringify(e.actor).includes(keyIdB)) n += 1;
        return n;
      };
      const results: { what: string; status: number; code: string | null; audited: boolean }[] = [];
      for (const a of attempts) {
        const headers = a.method === 'POST' ? { 'idempotency-key': randomUUID() } : {};
        const seen = await deniedOf();
        const r = await call(world, a.method, a.path, keyB, a.body, headers);
        const audited = (await deniedOf()) > seen;
        const u = await call(world, a.method, a.unknown, keyB, a.body, {
          ...(a.method === 'POST' ? { 'idempotency-key': randomUUID() } : {}),
        });
        expect.that(
          r.status === 404 && r.status === u.status && errorCode(r) === errorCode(u),
          `${a.what} answers as an unknown id does (HTTP ${r.status} ${errorCode(r)} vs ${u.status} ${errorCode(u)})`,
        );
        expect.that(audited, `${a.what} is audited, naming B's key`);
        results.push({ what: a.what, status: r.status, code: errorCode(r), audited });
      }

      const listB = await call(world, 'GET', '/api/carrier/deliveries', keyB);
      const listed = (listB.body.deliveries as { id: string }[] | undefined) ?? [];
      expect.that(
        listB.status === 200 && listed.every((d) => d.id !== deliveryA),
        "B's list shows none of A's deliveries",
      );
      const hooksB = await call(world, 'GET', '/api/carrier/webhooks', keyB);
      const hooks = (hooksB.body.webhooks as { id: string }[] | undefined) ?? [];
      expect.that(
        hooks.every((h) => h.id !== webhookIdA),
        "B's webhooks show none of A's",
      );

      const after = JSON.stringify({
        delivery: await store.deliveries.get(deliveryA),
        webhook: await store.db
          .selectFrom('webhooks')
          .selectAll()
          .where('id', '=', webhookIdA)
          .execute(),
      });
      expect.that(after === before, "A's delivery and webhook are unchanged");
      expect.that(
        receiverB.received.every((r) => r.body.data?.delivery?.id !== deliveryA),
        "B's receiver got none of A's events",
      );
      expect.that(receiverA.received.length > 0, "A's receiver got A's event");
      return {
        session: null,
        extra: {
          attempts: results.length,
          refused: results.filter((r) => r.status === 404).length,
          audited: results.filter((r) => r.audited).length,
          results,
        },
      };
    } finally {
      await receiverA.close();
      await receiverB.close();
    }
  },
};
