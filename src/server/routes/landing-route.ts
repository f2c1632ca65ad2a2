/**
 * `/`: a small page saying what is running and where to go, until the web app (owner and
 * courier faces) is served here.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { AppDeps } from '../app.ts';

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Threshold</title>
<style>
  body { font: 16px/1.5 system-ui, sans-serif; margin: 0; background: #f6f7f9; color: #1b1f24; }
  main { max-width: 40rem; margin: 3rem auto; padding: 0 1.25rem; }
  h1 { font-size: 1.6rem; margin-bottom: .25rem; }
  .card { background: #fff; border: 1px solid #d9dde3; border-radius: 10px; padding: 1rem 1.25rem; margin: 1rem 0; }
  code { background: #eef0f3; padding: .1rem .3rem; border-radius: 4px; }
  a { color: #0b57d0; }
</style>
</head>
<body>
<main>
  <h1>Threshold is running</h1>
  <p>Let people into a home without handing them a key, and prove what happened at the door.</p>
  <div class="card">
    <strong>API</strong>: the owner, courier and carrier JSON API is described at <a href="/docs">/docs</a>.
    Sign in with <code>POST /api/auth/sign-in</code>; the demo prints its owner and courier credentials
    when it starts (and keeps them in <code>data/demo-credentials.json</code>).
  </div>
  <div class="card">
    <strong>Live events</strong>: <code>GET /api/events</code> streams session changes, alarms and device status
    (server-sent events) to a signed-in owner.
  </div>
  <div class="card">
    <strong>Prove it</strong>: <code>npx threshold scenario --all</code> replays the camera-jamming attacks
    against a fresh system; <code>npx threshold audit verify</code> checks the audit log.
  </div>
</main>
</body>
</html>
`;

export const landingRoute =
  (_deps: AppDeps): FastifyPluginAsync =>
  async (app) => {
    app.get('/', { schema: { hide: true } }, async (_req, reply) =>
      reply.type('text/html; charset=utf-8').send(PAGE),
    );
  };
