/**
 * `GET /metrics`: the server's metrics in the Prometheus text format, for a Prometheus (or any
 * OpenMetrics-compatible scraper) configured with a bearer token.
 *
 * Not public: the answer is given only for `Authorization: Bearer <token>` with the token of
 * `threshold serve --metrics-token-file` (or `THRESHOLD_METRICS_TOKEN_FILE`). A server started
 * without one answers every request 401, whoever asks: a signed-in owner's token or a carrier's
 * API key does not open it, because the metrics count every home on the server. The token is
 * compared in constant time; refusals are not audited (a scraper with a wrong token would
 * otherwise write an entry every few seconds) but are counted in the HTTP metrics.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyPluginAsync } from 'fastify';
import type { App } from '../app.ts';
import type { ServerMetrics } from '../metrics.ts';
import { fail } from './route-helpers.ts';

/** What the metrics route needs. */
export interface MetricsRouteDeps {
  readonly metrics: ServerMetrics;
  /** The bearer token scrapers send; null: metrics are not served to anyone. */
  readonly token: string | null;
}

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/** Whether the Authorization header carries `token` as a bearer token (scheme case-insensitive). */
export function bearerMatches(header: string | undefined, token: string | null): boolean {
  if (token === null || typeof header !== 'string') return false;
  const m = /^Bearer +(\S+) *$/i.exec(header);
  if (!m?.[1]) return false;
  // Equal-length digests, so the comparison's time says nothing about the token.
  return timingSafeEqual(digest(m[1]), digest(token));
}

/**
 * Times every answer of `app` into `metrics`, labelled by the matched route's template (never
 * the path itself, which holds ids and invitation tokens). Added before the routes are.
 */
export function timeRequests(app: App, metrics: ServerMetrics): void {
  app.addHook('onResponse', async (req, reply) => {
    metrics.httpResponse(req.method, req.routeOptions.url, reply.statusCode, reply.elapsedTime);
  });
}

/** The `/metrics` route (see the module comment). */
export const metricsRoutes =
  (deps: MetricsRouteDeps): FastifyPluginAsync =>
  async (app) => {
    app.get(
      '/metrics',
      {
        schema: {
          tags: ['system'],
          summary: 'Metrics in the Prometheus text format (bearer token of --metrics-token-file)',
          security: [{ bearer: [] }],
          response: { 401: { $ref: 'ErrorResponse#' } },
        },
      },
      async (req, reply) => {
        if (!bearerMatches(req.headers.authorization, deps.token)) {
          void reply.header('www-authenticate', 'Bearer realm="threshold-metrics"');
          fail(
            'auth.required',
            'Metrics need the bearer token of `threshold serve --metrics-token-file`.',
          );
        }
        const text = await deps.metrics.text();
        return reply
          .header('content-type', deps.metrics.contentType)
          .header('cache-control', 'no-store')
          .send(text);
      },
    );
  };
