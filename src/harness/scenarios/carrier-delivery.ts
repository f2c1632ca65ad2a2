/**
 * carrier-delivery — a carrier integrates through the open API alone.
 *
 * Given a carrier with an API key and a webhook receiver of its own,
 * when its back office books an in-home delivery with an Idempotency-Key, sends the very same
 * request again (a retry after a lost answer), and its courier delivers the parcel inside,
 * then there is one delivery, not two (the retry answers the first booking, marked as a
 * replay); the receiver gets every state change — created, in progress, delivered — in order,
 * each with a valid signature; the delivery ends `delivered`, and its proof is there.
 */
import { randomUUID } from 'node:crypto';
import type { Scenario } from '../scenario.ts';
import { WebhookReceiver } from '../webhook-receiver.ts';
import { call, errorCode } from './common-steps.ts';

export const carrierDelivery: Scenario = {
  name: 'carrier-delivery',
  expected:
    'one delivery for a retried booking; webhooks created → in-progress → delivered, all signed right; delivered, with its proof',
  world: { allowLocalEndpoints: true },
  async story({ world, expect }) {
    const key = world.creds.carrier.apiKey;
    const receiver = new WebhookReceiver();
    await receiver.start();
    try {
      const hook = await call(world, 'POST', '/api/carrier/webhooks', key, { url: receiver.url });
      expect.that(hook.status === 201, `the webhook is registered (HTTP ${hook.status})`);
      receiver.secret = (hook.body.secret as string | undefined) ?? '';

      const now = world.sys.clock.now();
      const booking = {
        homeId: world.creds.homeId,
        doorId: world.creds.doorId,
        packageRef: 'PKG-SCENARIO-1',
        windowStart: now - 60_000,
        windowEnd: now + 60 * 60_000,
        placement: 'in-home',
        courierId: world.creds.courier.id,
      };
      const idempotencyKey = randomUUID();
      const book = () =>
        fetch(`${world.sys.url}/api/carrier/deliveries`, {
          method: 'POST',
          headers: {
            authorization: `Bearer ${key}`,
            'content-type': 'application/json',
            'idempotency-key': idempotencyKey,
          },
          body: JSON.stringify(booking),
        });
      const first = await book();
      const firstBody = (await first.json()) as { delivery?: { id: string } };
      const again = await book();
      const againBody = (await again.json()) as { delivery?: { id: string } };
      const deliveryId = firstBody.delivery?.id ?? '';
      expect.that(first.status === 201, `the booking is made (HTTP ${first.status})`);
      expect.that(
        again.status === first.status && againBody.delivery?.id === deliveryId,
        'the retried booking answers the same delivery',
      );
      expect.that(
        again.headers.get('idempotent-replayed') === 'true',
        'the retry is marked as a replay',
      );
      const booked = (
        await world.sys.store.deliveries.listForCarrier(world.creds.carrier.id)
      ).filter((d) => d.packageRef === booking.packageRef).length;
      expect.that(booked === 1, `one delivery exists, not ${booked}`);

      const access = await world.requestAccess(deliveryId);
      expect.that(access.status === 200, `the courier is let in (HTTP ${access.status})`);
      const sessionId = (access.body.session as { id?: string } | undefined)?.id ?? null;
      let session = null;
      if (sessionId !== null) {
        await world.dropParcel();
        await world.requestRelock(sessionId);
        session = await world.waitForState(sessionId, ['completed', 'aborted'], 15_000);
      }
      expect.that(session?.state === 'completed', 'the visit completes');

      await world
        .waitFor(
          () => receiver.forDelivery(deliveryId).some((r) => r.body.type === 'delivery.delivered'),
          15_000,
          'the "delivered" webhook arrives',
        )
        .catch(() => undefined);
      const got = receiver.forDelivery(deliveryId);
      const types = got.map((r) => r.body.type);
      for (const type of ['delivery.created', 'delivery.in-progress', 'delivery.delivered'])
        expect.that(types.includes(type), `the receiver got ${type} (got: ${types.join(', ')})`);
      const order = ['delivery.created', 'delivery.in-progress', 'delivery.delivered'].map((t) =>
        types.indexOf(t),
      );
      expect.that(
        order.every((i, n) => n === 0 || i > (order[n - 1] ?? -1)),
        'the events arrive in the order they happened',
      );
      expect.that(
        got.length > 0 && got.every((r) => r.signatureValid),
        'every webhook is signed with the secret',
      );
      expect.that(new Set(got.map((r) => r.body.id)).size === got.length, 'no event is sent twice');
      const delivery = await call(world, 'GET', `/api/carrier/deliveries/${deliveryId}`, key);
      const status = (delivery.body.delivery as { status?: string } | undefined)?.status;
      expect.that(status === 'delivered', `the delivery is delivered (${status})`);
      const proof = await call(world, 'GET', `/api/carrier/deliveries/${deliveryId}/proof`, key);
      expect.that(
        proof.status === 200,
        `the proof of delivery is there (HTTP ${proof.status} ${errorCode(proof)})`,
      );
      return {
        session: sessionId === null ? null : await world.session(sessionId),
        extra: { deliveryId, webhooks: types, replayed: again.headers.get('idempotent-replayed') },
      };
    } finally {
      await receiver.close();
    }
  },
};
