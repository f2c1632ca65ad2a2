/**
 * Web Push subscriptions of owners and household members: the VAPID public key a browser
 * subscribes with, and subscribing / unsubscribing a browser. A subscription belongs to the
 * principal who made it and gets the alarms of that principal's home.
 *
 * The endpoint is a URL the browser chose, and the server will later POST to it, so it is
 * checked like any outgoing request target (see `pushEndpointProblem`): https only in
 * production, and never a private, loopback or link-local address.
 */
import { ECDH, randomUUID } from 'node:crypto';
import type { FastifyPluginAsync } from 'fastify';
import { Type, type Static } from 'typebox';
import type {
  PushSubscriptionRepository,
  StoredPushSubscription,
} from '../../store/push-subscription-repository.ts';
import type { AppDeps } from '../app.ts';
import { originOf, type PushNotifier } from '../push-notifier.ts';
import { errorResponses, fail, householdWith } from './route-helpers.ts';

const strict = { additionalProperties: false } as const;

/** A push service URL as the browser's `PushSubscription.endpoint` gives it. */
export const PushEndpoint = Type.String({ minLength: 1, maxLength: 2048 });

/** `POST /api/push/subscriptions`: the JSON of the browser's `PushSubscription`. */
export const PushSubscribeRequest = Type.Object(
  {
    endpoint: PushEndpoint,
    /**
     * When the push service will end the subscription, ms since the epoch, if it says (a
     * DOMHighResTimeStamp, so not necessarily whole). Checked, not stored.
     */
    expirationTime: Type.Optional(
      Type.Union([Type.Number({ minimum: 0, maximum: 7_258_118_400_000 }), Type.Null()]),
    ),
    keys: Type.Object(
      {
        /** The browser's P-256 public key: 65 bytes, base64url (87 characters). */
        p256dh: Type.String({ pattern: '^[A-Za-z0-9_-]{80,100}$' }),
        /** The browser's auth secret: 16 bytes, base64url (22 characters). */
        auth: Type.String({ pattern: '^[A-Za-z0-9_-]{16,32}$' }),
      },
      strict,
    ),
  },
  strict,
);

/** `DELETE /api/push/subscriptions`: which browser to unsubscribe. */
export const PushUnsubscribeRequest = Type.Object({ endpoint: PushEndpoint }, strict);

/** What the push routes need besides {@link AppDeps}. */
export interface PushRouteDeps {
  /** The VAPID public key (base64url) browsers pass as `applicationServerKey`. */
  readonly publicKey: string;
  readonly repo: PushSubscriptionRepository;
  /** Decides which endpoints may be stored (https only in production, no private hosts). */
  readonly notifier: Pick<PushNotifier, 'endpointProblem'>;
  /** Browsers one principal may have subscribed at once; the oldest go. Default 10. */
  readonly maxPerPrincipal?: number;
}

/** Why the browser's keys cannot be used to encrypt a push, or null. */
function keysProblem(p256dh: string, auth: string): string | null {
  const point = Buffer.from(p256dh, 'base64url');
  if (point.length !== 65 || point[0] !== 0x04) {
    return 'keys.p256dh must be an uncompressed P-256 public key (65 bytes, base64url).';
  }
  try {
    // Throws for a point that is not on the curve: every push to it would fail.
    ECDH.convertKey(point, 'prime256v1');
  } catch {
    return 'keys.p256dh is not a point on the P-256 curve.';
  }
  if (Buffer.from(auth, 'base64url').length < 16) {
    return 'keys.auth must be at least 16 bytes (base64url).';
  }
  return null;
}

export const pushRoutes =
  (deps: AppDeps, push: PushRouteDeps): FastifyPluginAsync =>
  async (app) => {
    const maxPerPrincipal = push.maxPerPrincipal ?? 10;

    const removed = (
      sub: StoredPushSubscription,
      actor: { type: 'principal' | 'system'; id: string },
      reason: string,
    ) =>
      deps.audit.append({
        kind: 'push.subscription-removed',
        actor,
        subject: `home:${sub.homeId}`,
        data: {
          subscriptionId: sub.id,
          principalId: sub.principalId,
          pushService: originOf(sub.endpoint),
          reason,
        },
      });

    app.get(
      '/api/push/public-key',
      {
        schema: {
          tags: ['push'],
          summary: 'The VAPID public key to subscribe a browser with (base64url)',
          response: { 200: Type.Object({ publicKey: Type.String() }), ...errorResponses },
        },
      },
      async (req) => {
        await householdWith(deps, req, 'view-live');
        return { publicKey: push.publicKey };
      },
    );

    app.post(
      '/api/push/subscriptions',
      {
        schema: {
          tags: ['push'],
          summary: "Subscribe this browser to the home's alarms (the PushSubscription's JSON)",
          body: PushSubscribeRequest,
          response: { 200: Type.Object({ id: Type.String() }), ...errorResponses },
        },
      },
      async (req) => {
        const p = await householdWith(deps, req, 'view-live');
        if (p.homeId === null) fail('auth.forbidden', 'Only members of a home get its alarms.');
        const body = req.body as Static<typeof PushSubscribeRequest>;
        const endpointProblem = push.notifier.endpointProblem(body.endpoint);
        if (endpointProblem !== null) fail('request.invalid', endpointProblem);
        const badKeys = keysProblem(body.keys.p256dh, body.keys.auth);
        if (badKeys !== null) fail('request.invalid', badKeys);
        if (
          body.expirationTime !== undefined &&
          body.expirationTime !== null &&
          body.expirationTime <= deps.clock.now()
        ) {
          fail('request.invalid', 'This push subscription has already expired.');
        }

        const { id, previous } = await push.repo.upsert({
          id: randomUUID(),
          principalId: p.id,
          homeId: p.homeId,
          endpoint: body.endpoint,
          p256dh: body.keys.p256dh,
          auth: body.keys.auth,
          createdAt: deps.clock.now(),
        });
        const actor = { type: 'principal', id: p.id } as const;
        if (previous !== null && previous.homeId !== p.homeId) {
          // The browser now signs in to another household: the old home loses it.
          await removed(previous, actor, 'moved');
        }
        // Browsers re-send their subscription on every visit; only a change is worth a record.
        const changed =
          previous === null ||
          previous.principalId !== p.id ||
          previous.homeId !== p.homeId ||
          previous.p256dh !== body.keys.p256dh ||
          previous.auth !== body.keys.auth;
        if (changed) {
          await deps.audit.append({
            kind: 'push.subscription-added',
            actor,
            subject: `home:${p.homeId}`,
            data: { subscriptionId: id, pushService: originOf(body.endpoint) },
          });
        }
        for (const old of await push.repo.pruneForPrincipal(p.id, maxPerPrincipal, id)) {
          await removed(old, actor, 'too-many');
        }
        return { id };
      },
    );

    app.delete(
      '/api/push/subscriptions',
      {
        schema: {
          tags: ['push'],
          summary: 'Unsubscribe a browser (one this principal subscribed)',
          body: PushUnsubscribeRequest,
          response: { 200: Type.Object({ ok: Type.Literal(true) }), ...errorResponses },
        },
      },
      async (req) => {
        const p = await householdWith(deps, req, 'view-live');
        const { endpoint } = req.body as Static<typeof PushUnsubscribeRequest>;
        const sub = await push.repo.getByEndpoint(endpoint);
        // Someone else's subscription is left alone, and the answer does not say it exists.
        if (sub !== null && sub.principalId === p.id) {
          if (await push.repo.removeByEndpoint(endpoint, p.id)) {
            await removed(sub, { type: 'principal', id: p.id }, 'unsubscribed');
          }
        }
        return { ok: true as const };
      },
    );
  };
