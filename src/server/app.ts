/**
 * `createApp(deps)` builds the Fastify app without listening: the entry point listens, tests
 * call `app.inject()`. Routes live in ./routes by resource; they are thin, and call the
 * orchestrator, the authenticator and the store.
 *
 * Every error answer has the body `{ "error": { "code", "message", "detail"? } }` with a code
 * from the one catalogue (core/errors.ts) and its HTTP status.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import cookie from '@fastify/cookie';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
} from 'fastify';
import type { Clock } from '../core/clock.ts';
import { ERROR_CATALOGUE, ThresholdError, httpStatusOf, type ErrorCode } from '../core/errors.ts';
import { ErrorResponse } from '../protocol/http.ts';
import type { Store } from '../store/index.ts';
import type { AuditLog } from './audit-log.ts';
import type { Authenticator } from './auth.ts';
import type { ClipStore } from './clip-store.ts';
import type { DeviceGateway } from './device-gateway.ts';
import type { EventBus } from './event-bus.ts';
import type { LiveViewService } from './live-view.ts';
import type { Passkeys } from './passkeys.ts';
import type { DeliveryEventLog } from './delivery-events.ts';
import type { EntryRecorder } from './entries.ts';
import type { FixedWindowLimiter } from './rate-limiter.ts';
import type { PinSync } from './pin-sync.ts';
import type { WebhookDispatcher } from './webhook-dispatcher.ts';
import { webhookRoutes } from './routes/webhook-routes.ts';
import { passkeyRoutes } from './routes/passkey-routes.ts';
import { authRoutes } from './routes/auth-routes.ts';
import { carrierRoutes } from './routes/carrier-routes.ts';
import { carrierCourierRoutes } from './routes/carrier-courier-routes.ts';
import { carrierKeyRoutes } from './routes/carrier-key-routes.ts';
import { homeCarrierRoutes } from './routes/home-carrier-routes.ts';
import { courierRoutes } from './routes/courier-routes.ts';
import { entryRoutes } from './routes/entry-routes.ts';
import { eventRoutes } from './routes/event-routes.ts';
import { guestRoutes } from './routes/guest-routes.ts';
import { pinRoutes } from './routes/pin-routes.ts';
import { homeRoutes } from './routes/home-routes.ts';
import { liveRoutes } from './routes/live-routes.ts';
import { pushRoutes, type PushRouteDeps } from './routes/push-routes.ts';
import { sessionRoutes } from './routes/session-routes.ts';
import { webAppRoute } from './routes/web-app-route.ts';
import { metricsRoutes, timeRequests, type MetricsRouteDeps } from './routes/metrics.ts';
import type { SessionOrchestrator } from './session-orchestrator.ts';

/** Everything the HTTP app needs; no container, just arguments. */
export interface AppDeps {
  readonly store: Store;
  readonly orchestrator: SessionOrchestrator;
  readonly gateway: DeviceGateway;
  readonly auth: Authenticator;
  readonly audit: AuditLog;
  readonly clips: ClipStore;
  readonly events: EventBus;
  readonly liveView: LiveViewService;
  /** Keypad PIN sync; without it the PIN routes are absent. */
  readonly pins?: PinSync;
  /** Delivery state changes, in order, announced to the webhook dispatcher. */
  readonly deliveryEvents?: DeliveryEventLog;
  /** Carriers' webhooks (registry, signing, sending); without it the webhook routes are absent. */
  readonly webhooks?: WebhookDispatcher;
  /** Requests per minute per carrier API key (or admin); none: not limited (tests). */
  readonly carrierLimiter?: FixedWindowLimiter;
  /** "Who unlocked": without it the entry routes are not served. */
  readonly entries?: EntryRecorder;
  /** Passkey registration and sign-in; without it the passkey routes are absent. */
  readonly passkeys?: Passkeys;
  /** Set by `threshold demo` only: the position the courier page may offer as "at the door". */
  readonly demo?: { readonly doorstep: { lat: number; lon: number; accuracyM: number } };
  /** Web Push (VAPID key, subscriptions, notifier); without it the /api/push routes are absent. */
  readonly push?: PushRouteDeps;
  readonly clock: Clock;
  /** Set the Secure flag on cookies (behind HTTPS). */
  readonly secureCookies?: boolean;
  /** Where request errors and server events are logged; none when omitted. */
  readonly logger?: FastifyBaseLogger;
  /** Extra counters for /api/stats (e.g. the embedded broker's refusals). */
  readonly extraStats?: () => Record<string, unknown>;
  /** Prometheus metrics: every answer timed, and `GET /metrics` for the scraper's token. */
  readonly metrics?: MetricsRouteDeps;
}

/** Largest accepted request body, bytes. */
export const BODY_LIMIT_BYTES = 16 * 1024;

export type App = FastifyInstance<
  Server,
  IncomingMessage,
  ServerResponse,
  FastifyBaseLogger,
  TypeBoxTypeProvider
>;

function errorBody(code: ErrorCode, message?: string, detail?: Readonly<Record<string, unknown>>) {
  return {
    error: {
      code,
      message: message ?? ERROR_CATALOGUE[code].message,
      ...(detail ? { detail } : {}),
    },
  };
}

/** Maps an error of any origin to a catalogue code. */
function classify(err: FastifyError | ThresholdError | Error): {
  code: ErrorCode;
  message?: string;
  detail?: Record<string, unknown>;
} {
  if (err instanceof ThresholdError) {
    return {
      code: err.code,
      message: err.message,
      ...(err.detail ? { detail: { ...err.detail } } : {}),
    };
  }
  const fe = err as FastifyError;
  if (fe.validation) {
    return {
      code: 'request.invalid',
      message:
        `${fe.validationContext ?? 'request'}${fe.validation[0]?.instancePath ?? ''} ${fe.validation[0]?.message ?? 'is invalid'}`.trim(),
      detail: {
        issues: fe.validation
          .slice(0, 5)
          .map((v) => ({ path: v.instancePath, message: v.message, params: v.params })),
      },
    };
  }
  switch (fe.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return { code: 'request.too-large', detail: { limitBytes: BODY_LIMIT_BYTES } };
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return { code: 'request.unsupported-media-type' };
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return { code: 'request.invalid', message: 'The body is not valid JSON.' };
    default:
      break;
  }
  if (err instanceof SyntaxError)
    return { code: 'request.invalid', message: 'The body is not valid JSON.' };
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    return { code: 'request.invalid', message: fe.message };
  }
  return { code: 'internal.error' };
}

export async function createApp(deps: AppDeps): Promise<App> {
  const app = Fastify({
    ...(deps.logger ? { loggerInstance: deps.logger } : { logger: false }),
    bodyLimit: BODY_LIMIT_BYTES,
    // Unknown fields are refused, not silently stripped; "1" is not a number.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
    // The router's own refusals (a path that is not valid percent-encoding, a path segment
    // longer than the router takes) answer in the catalogue's words like every other error.
    frameworkErrors: (err, _req, reply) => {
      const message =
        err.code === 'FST_ERR_MAX_PARAM_LENGTH'
          ? 'A path segment is longer than allowed.'
          : 'The path is not valid URL encoding.';
      // The reply's type is generic over routes that do not exist yet at this point.
      void (reply as unknown as FastifyReply)
        .status(400)
        .send(errorBody('request.invalid', message));
    },
    // Node would refuse an HTTP/1.1 request without a Host header with an empty body; the
    // hook below refuses it in the catalogue's words instead.
    http: { requireHostHeader: false },
    // What Node's HTTP parser refuses never reaches a route: answer it in JSON too.
    clientErrorHandler: (err, socket) => {
      if (!socket.writable) return;
      const tooLarge = (err as { code?: string }).code === 'HPE_HEADER_OVERFLOW';
      const body = JSON.stringify(
        tooLarge
          ? errorBody('request.headers-too-large')
          : errorBody('request.invalid', 'The request could not be read as HTTP.'),
      );
      socket.end(
        `HTTP/1.1 ${tooLarge ? '431 Request Header Fields Too Large' : '400 Bad Request'}\r\n` +
          'Content-Type: application/json; charset=utf-8\r\n' +
          `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
    },
  }).withTypeProvider<TypeBoxTypeProvider>();

  // JSON only: a text/plain body is what any web page can send cross-site without a CORS
  // preflight, so it gets 415 instead of being parsed.
  app.removeContentTypeParser('text/plain');
  app.addSchema(ErrorResponse);
  await app.register(cookie);
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Threshold API',
        description:
          'Owner, courier and carrier API of Threshold. Errors: `{ error: { code, message } }`.',
        version: '0.1.0',
      },
      components: {
        securitySchemes: {
          bearer: {
            type: 'http',
            scheme: 'bearer',
            description: 'A sign-in token, or a carrier API key (thk_…).',
          },
          cookie: { type: 'apiKey', in: 'cookie', name: 'threshold_session' },
        },
      },
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });

  app.addHook('onRequest', async (req, reply) => {
    if (req.raw.httpVersionMajor === 1 && req.raw.httpVersionMinor >= 1 && !req.headers.host)
      return reply.status(400).send(errorBody('request.invalid', 'A Host header is required.'));
  });

  app.setErrorHandler((err: FastifyError, req, reply) => {
    const c = classify(err);
    const status = httpStatusOf(c.code);
    if (status >= 500) req.log.error({ err }, 'request failed');
    // A rate limit says when to come back, in the header clients and proxies read.
    const retryAfterS = c.detail?.retryAfterS;
    if (status === 429 && typeof retryAfterS === 'number')
      void reply.header('retry-after', String(retryAfterS));
    void reply.status(status).send(errorBody(c.code, c.message, c.detail));
  });
  app.setNotFoundHandler((req, reply) => {
    void reply
      .status(404)
      .send(
        errorBody('request.not-found', `No route ${req.method} ${req.url.split('?')[0] ?? ''}.`),
      );
  });

  if (deps.metrics) {
    // Before any route, so every route's answers are timed.
    timeRequests(app, deps.metrics.metrics);
    await app.register(metricsRoutes(deps.metrics));
  }
  app.get('/api/health', { schema: { tags: ['system'], summary: 'Liveness' } }, () => ({
    ok: true,
  }));
  app.get(
    '/api/config',
    {
      schema: {
        tags: ['system'],
        summary: 'What the web app needs to know before sign-in (demo mode and its doorstep)',
      },
    },
    () => ({ demo: deps.demo ?? null }),
  );

  await app.register(authRoutes(deps));
  if (deps.passkeys) await app.register(passkeyRoutes(deps, deps.passkeys));
  await app.register(homeRoutes(deps));
  await app.register(sessionRoutes(deps));
  await app.register(liveRoutes(deps));
  await app.register(guestRoutes(deps));
  await app.register(pinRoutes(deps));
  await app.register(entryRoutes(deps));
  if (deps.push) await app.register(pushRoutes(deps, deps.push));
  await app.register(courierRoutes(deps));
  await app.register(carrierRoutes(deps));
  if (deps.webhooks) await app.register(webhookRoutes(deps, deps.webhooks));
  await app.register(carrierKeyRoutes(deps));
  await app.register(carrierCourierRoutes(deps));
  await app.register(homeCarrierRoutes(deps));
  await app.register(eventRoutes(deps));
  await app.register(webAppRoute(deps));
  return app;
}
