/**
 * A carrier's webhooks (scope `webhooks:manage`): register a URL (its signing secret is shown
 * once), list them, disable one, rotate a secret, read a webhook's delivery log, and resend a
 * logged delivery. Another carrier's webhook or log row is answered as if it did not exist, and
 * the attempt is audited. The secret never appears in an answer other than the one that made
 * it, nor in the audit log; the audit log names a webhook's URL by its origin only (a query
 * string may carry the carrier's own token).
 */
import type { FastifyPluginAsync } from 'fastify';
import { Type } from 'typebox';
import { problem, ThresholdError, type ErrorCode } from '../../core/errors.ts';
import { Id } from '../../protocol/http.ts';
import type { WebhookDeliveryView, WebhookPayload, WebhookView } from '../../protocol/views.ts';
import { DELIVERY_EVENT_TYPES } from '../../store/delivery-event-repository.ts';
import type { StoredWebhook, StoredWebhookDelivery } from '../../store/webhook-repository.ts';
import type { AppDeps } from '../app.ts';
import {
  MAX_WEBHOOK_URL_LENGTH,
  MAX_WEBHOOKS_PER_CARRIER,
  type WebhookDispatcher,
} from '../webhook-dispatcher.ts';
import { carrierOf, type CarrierCaller } from './carrier-auth.ts';
import { errorResponses, fail } from './route-helpers.ts';

const strict = { additionalProperties: false } as const;

/** `POST /api/carrier/webhooks`. */
export const CreateWebhookRequest = Type.Object(
  {
    url: Type.String({
      minLength: 1,
      maxLength: MAX_WEBHOOK_URL_LENGTH,
      description: 'https: URL of a public host, without user name or password.',
    }),
    events: Type.Optional(
      Type.Array(
        // One `enum`, so a wrong name is answered "must be equal to one of the allowed values".
        Type.Enum(['*', ...DELIVERY_EVENT_TYPES]),
        {
          minItems: 1,
          maxItems: DELIVERY_EVENT_TYPES.length,
          uniqueItems: true,
          description: 'Delivery event types to get, or ["*"] for all (the default).',
        },
      ),
    ),
  },
  strict,
);

/** `:webhookId`. */
export const WebhookParams = Type.Object({ webhookId: Id }, strict);
/** `:webhookDeliveryId`. */
export const WebhookDeliveryParams = Type.Object({ webhookDeliveryId: Id }, strict);
/** `GET …/deliveries?limit=`. */
export const WebhookDeliveriesQuery = Type.Object(
  {
    limit: Type.Optional(
      Type.String({ pattern: '^[0-9]{1,3}$', description: 'at most this many, 1 to 100' }),
    ),
  },
  strict,
);

/** Log rows listed when no limit is given. */
const DEFAULT_LOG_PAGE = 50;

/** A webhook as its carrier sees it. */
export function webhookView(w: StoredWebhook): WebhookView {
  return {
    id: w.id,
    url: w.url,
    events: w.events,
    createdAt: w.createdAt,
    createdBy: w.createdBy,
    disabledAt: w.disabledAt,
  };
}

/** A log row as its carrier sees it, with the body sent. */
export function webhookDeliveryView(d: StoredWebhookDelivery): WebhookDeliveryView {
  return {
    id: d.id,
    webhookId: d.webhookId,
    eventId: d.eventId,
    eventType: d.eventType,
    status: d.status,
    attempts: d.attempts,
    lastStatusCode: d.lastStatusCode,
    lastError: d.lastError,
    nextAttemptAt: d.nextAttemptAt,
    createdAt: d.createdAt,
    deliveredAt: d.deliveredAt,
    payload: JSON.parse(d.payload) as WebhookPayload,
  };
}

/** The URL's origin, for the audit log. */
function originOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return 'invalid';
  }
}

export const webhookRoutes =
  (deps: AppDeps, webhooks: WebhookDispatcher): FastifyPluginAsync =>
  async (app) => {
    const repo = webhooks.repo;

    /**
     * Refuses an object that is not the caller's carrier's, answering as if it did not exist,
     * and audits the attempt (as `denyObject` does for people), naming the key that tried.
     */
    const denyObject = async (
      caller: CarrierCaller,
      code: ErrorCode,
      object: string,
    ): Promise<never> => {
      await deps.audit.append({
        kind: 'auth.object-denied',
        actor: caller.actor,
        subject: object,
        data: { role: 'carrier', carrierId: caller.carrierId, answered: code },
      });
      throw ThresholdError.from(problem(code));
    };

    /** The caller's carrier's webhook, or 404 (unknown and someone else's alike). */
    const ownWebhook = async (caller: CarrierCaller, webhookId: string) => {
      const w = await repo.get(webhookId);
      if (!w) fail('webhook.not-found');
      if (w.carrierId !== caller.carrierId)
        return denyObject(caller, 'webhook.not-found', `webhook:${webhookId}`);
      return w;
    };

    const audit = (
      caller: CarrierCaller,
      kind: string,
      w: StoredWebhook,
      data: Record<string, unknown> = {},
    ) =>
      deps.audit.append({
        kind,
        actor: caller.actor,
        subject: `webhook:${w.id}`,
        data: { carrierId: w.carrierId, urlOrigin: originOf(w.url), ...data },
      });

    app.post(
      '/api/carrier/webhooks',
      {
        schema: {
          tags: ['carrier'],
          summary: 'Register a webhook; its signing secret is in this answer only',
          body: CreateWebhookRequest,
          response: {
            201: Type.Object({
              webhook: Type.Record(Type.String(), Type.Unknown()),
              secret: Type.String(),
            }),
            ...errorResponses,
          },
        },
      },
      async (req, reply) => {
        const caller = await carrierOf(deps, req, 'webhooks:manage');
        const body = req.body as { url: string; events?: string[] };
        const events = body.events ?? ['*'];
        if (events.includes('*') && events.length > 1)
          fail('request.invalid', 'events is either ["*"] or a list of event types, not both.');
        const urlProblem = await webhooks.registrationProblem(body.url);
        if (urlProblem !== null) fail('webhook.url-refused', urlProblem);
        const made = await webhooks.register({
          carrierId: caller.carrierId,
          url: body.url,
          events,
          createdBy: caller.actor.id,
        });
        if (!made)
          fail(
            'webhook.limit-reached',
            `At most ${MAX_WEBHOOKS_PER_CARRIER} active webhooks per carrier; disable one first.`,
          );
        await audit(caller, 'webhook.created', made.webhook, { events });
        void reply.code(201);
        return { webhook: webhookView(made.webhook), secret: made.secret };
      },
    );

    app.get(
      '/api/carrier/webhooks',
      {
        schema: {
          tags: ['carrier'],
          summary: 'My webhooks, disabled ones included, newest first',
          response: errorResponses,
        },
      },
      async (req) => {
        const caller = await carrierOf(deps, req, 'webhooks:manage');
        return { webhooks: (await repo.listForCarrier(caller.carrierId)).map(webhookView) };
      },
    );

    app.post(
      '/api/carrier/webhooks/:webhookId/disable',
      {
        schema: {
          tags: ['carrier'],
          summary: 'Disable a webhook: it gets nothing more, its pending deliveries are given up',
          params: WebhookParams,
          response: errorResponses,
        },
      },
      async (req) => {
        const caller = await carrierOf(deps, req, 'webhooks:manage');
        const { webhookId } = req.params as { webhookId: string };
        const w = await ownWebhook(caller, webhookId);
        // Disabling twice answers the same and records once: a retried request is harmless.
        if (await webhooks.disable(w.id)) await audit(caller, 'webhook.disabled', w);
        const now = await repo.get(w.id);
        return { webhook: webhookView(now ?? w) };
      },
    );

    app.post(
      '/api/carrier/webhooks/:webhookId/rotate-secret',
      {
        schema: {
          tags: ['carrier'],
          summary: 'A new signing secret for a webhook, in this answer only; the old one stops',
          params: WebhookParams,
          response: errorResponses,
        },
      },
      async (req) => {
        const caller = await carrierOf(deps, req, 'webhooks:manage');
        const { webhookId } = req.params as { webhookId: string };
        const w = await ownWebhook(caller, webhookId);
        const secret = await webhooks.rotateSecret(w.id);
        if (secret === null) fail('webhook.disabled');
        await audit(caller, 'webhook.secret-rotated', w);
        return { webhook: webhookView(w), secret };
      },
    );

    app.get(
      '/api/carrier/webhooks/:webhookId/deliveries',
      {
        schema: {
          tags: ['carrier'],
          summary: "A webhook's delivery log, newest first (bodies included)",
          params: WebhookParams,
          querystring: WebhookDeliveriesQuery,
          response: errorResponses,
        },
      },
      async (req) => {
        const caller = await carrierOf(deps, req, 'webhooks:manage');
        const { webhookId } = req.params as { webhookId: string };
        const q = req.query as { limit?: string };
        const limit = q.limit === undefined ? DEFAULT_LOG_PAGE : Number(q.limit);
        if (!(limit >= 1 && limit <= 100)) fail('request.invalid', 'limit is 1 to 100.');
        const w = await ownWebhook(caller, webhookId);
        return {
          deliveries: (await repo.listDeliveries(w.id, limit)).map(webhookDeliveryView),
        };
      },
    );

    app.post(
      '/api/carrier/webhook-deliveries/:webhookDeliveryId/resend',
      {
        schema: {
          tags: ['carrier'],
          summary:
            'Send a logged delivery again, the same body signed afresh, as a new row of the log',
          params: WebhookDeliveryParams,
          response: {
            202: Type.Object({ delivery: Type.Record(Type.String(), Type.Unknown()) }),
            ...errorResponses,
          },
        },
      },
      async (req, reply) => {
        const caller = await carrierOf(deps, req, 'webhooks:manage');
        const { webhookDeliveryId } = req.params as { webhookDeliveryId: string };
        const d = await repo.getDelivery(webhookDeliveryId);
        if (!d) fail('webhook.delivery-not-found');
        if (d.carrierId !== caller.carrierId)
          return denyObject(
            caller,
            'webhook.delivery-not-found',
            `webhook-delivery:${webhookDeliveryId}`,
          );
        const w = await ownWebhook(caller, d.webhookId);
        const copy = await webhooks.resend(d);
        if (copy === null) fail('webhook.disabled');
        await audit(caller, 'webhook.resent', w, {
          webhookDeliveryId: copy.id,
          resentFrom: d.id,
          eventId: d.eventId,
        });
        void reply.code(202);
        return { delivery: webhookDeliveryView(copy) };
      },
    );
  };
