/**
 * The API bench's floor (bench/api-throughput.ts): a bare Fastify server with one route of the
 * same shape as the courier's "I'm at the door" — same method and path, the same TypeBox
 * schemas for the path parameters and the body (validated by the same Ajv settings), the same
 * response schema — answering every request with the status and body it is given, doing no
 * work. It runs as its own process, started the way `threshold serve` is (node with the tsx
 * loader) and logging the way it does (pino at `LOG_LEVEL`, default info, to stdout, with
 * Fastify's request logging), so the two differ only by what Threshold does for the request.
 *
 * usage: node bin/run-ts.js bench/api-bare-server.ts --port P --status 403 --body '{"error":…}'
 * It also answers GET /api/health, to say it is up. SIGTERM or SIGINT stops it.
 */
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify from 'fastify';
import pino from 'pino';
import { parseArgs } from 'node:util';
import { AccessRequestBody, DeliveryParams, ErrorResponse } from '../src/protocol/http.ts';
import { BODY_LIMIT_BYTES } from '../src/server/app.ts';
import { errorResponses } from '../src/server/routes/route-helpers.ts';

const { values: args } = parseArgs({
  args: process.argv.slice(2),
  options: {
    port: { type: 'string' },
    status: { type: 'string' },
    body: { type: 'string' },
  },
  strict: true,
});
const port = Number(args.port);
const status = Number(args.status) as keyof typeof errorResponses;
if (!Number.isInteger(port) || !(status in errorResponses) || args.body === undefined) {
  process.stderr.write('usage: api-bare-server.ts --port P --status 4xx --body JSON\n');
  process.exit(2);
}
const body = JSON.parse(args.body) as unknown;

const app = Fastify({
  loggerInstance: pino({ level: process.env.LOG_LEVEL ?? 'info' }),
  bodyLimit: BODY_LIMIT_BYTES,
  // As createApp: unknown fields refused, no coercion.
  ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
}).withTypeProvider<TypeBoxTypeProvider>();
app.addSchema(ErrorResponse);
app.get('/api/health', () => ({ ok: true }));
app.post(
  '/api/courier/deliveries/:deliveryId/access',
  { schema: { params: DeliveryParams, body: AccessRequestBody, response: errorResponses } },
  (_req, reply) => reply.status(status).send(body),
);
await app.listen({ host: '127.0.0.1', port });
const stop = (): void => {
  void app.close().then(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
