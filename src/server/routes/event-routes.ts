/**
 * Server-sent events for the web app: session changes, alarms and device status of the
 * signed-in principal's home, as they happen.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { AppDeps } from '../app.ts';
import { principalOf } from './route-helpers.ts';

/** A comment line every this many ms keeps proxies from closing an idle stream. */
const KEEPALIVE_MS = 15_000;

export const eventRoutes =
  (deps: AppDeps): FastifyPluginAsync =>
  async (app) => {
    app.get(
      '/api/events',
      {
        schema: {
          tags: ['events'],
          summary: 'Live events (text/event-stream): session, alarm, device',
        },
      },
      async (req, reply) => {
        const p = await principalOf(deps, req, ['owner', 'member', 'courier']);
        reply.hijack();
        const res = reply.raw;
        const headers = {
          'content-type': 'text/event-stream',
          'cache-control': 'no-store',
          connection: 'keep-alive',
        };
        // HEAD (Fastify answers it with this handler): the headers, and no stream to wait for.
        if (req.method === 'HEAD') {
          res.writeHead(200, headers);
          res.end();
          return;
        }
        res.writeHead(200, headers);
        res.write(': connected\n\n');
        const off = deps.events.subscribe(
          (e) => {
            const visible =
              p.role === 'courier'
                ? e.type === 'session' && e.session.principalId === p.id
                : e.homeId === p.homeId;
            if (visible) res.write(`event: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`);
            // Other replicas' events too: the app may be connected to any replica.
          },
          { relayed: true },
        );
        const keepalive = setInterval(() => res.write(': keepalive\n\n'), KEEPALIVE_MS);
        keepalive.unref();
        req.raw.on('close', () => {
          off();
          clearInterval(keepalive);
        });
      },
    );
  };
