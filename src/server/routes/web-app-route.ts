/**
 * The web app: the owner and courier pages, built by Vite into `web/dist` and served from
 * here. Assets under `/assets/` have content hashes in their names and are cached for a year;
 * every other page path answers with `index.html` (the app routes on the client), never cached.
 *
 * Every answer of this route carries a strict Content-Security-Policy: scripts and styles
 * from this origin only, no framing, no plugins.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import type { AppDeps } from '../app.ts';

/** Where `npm run build:web` writes the app. */
export const WEB_DIST_DIR = fileURLToPath(new URL('../../../web/dist/', import.meta.url));

export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data: blob:",
  "connect-src 'self'",
  "worker-src 'self'",
  "manifest-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const NOT_BUILT_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Threshold</title></head>
<body style="font: 16px/1.5 system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; padding: 0 1.25rem">
<h1>Threshold is running, but its web app is not built</h1>
<p>Run <code>npm run build:web</code> (it also runs on <code>npm install</code>) and reload this page.</p>
<p>The JSON API is described at <a href="/docs">/docs</a>.</p>
</body></html>`;

function secure(reply: FastifyReply): FastifyReply {
  return reply
    .header('content-security-policy', CONTENT_SECURITY_POLICY)
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'no-referrer')
    .header('permissions-policy', 'camera=(), microphone=(), geolocation=(self)');
}

export const webAppRoute =
  (_deps: AppDeps, distDir: string = WEB_DIST_DIR): FastifyPluginAsync =>
  async (app) => {
    const built = existsSync(`${distDir}/index.html`);
    if (built) {
      await app.register(fastifyStatic, {
        root: distDir,
        prefix: '/',
        wildcard: false,
        index: false,
        // The build writes .br and .gz copies beside each text file (vite.config.ts).
        preCompressed: true,
        setHeaders: (res, path) => {
          res.header('content-security-policy', CONTENT_SECURITY_POLICY);
          res.header('x-content-type-options', 'nosniff');
          res.header(
            'cache-control',
            path.includes('/assets/') ? 'public, max-age=31536000, immutable' : 'no-cache',
          );
        },
      });
    }
    // The app's own pages: `/`, `/courier`, `/sessions/…` and so on.
    const page = async (_req: unknown, reply: FastifyReply) => {
      secure(reply).header('cache-control', 'no-cache');
      if (!built) return reply.type('text/html; charset=utf-8').send(NOT_BUILT_PAGE);
      return reply.type('text/html; charset=utf-8').sendFile('index.html');
    };
    app.get('/', { schema: { hide: true } }, page);
    for (const prefix of [
      '/courier',
      '/home',
      '/sessions',
      '/settings',
      '/alarms',
      '/sign-in',
      '/guests',
      '/guest',
      '/invite',
      '/courier-invite',
    ]) {
      app.get(prefix, { schema: { hide: true } }, page);
      app.get(`${prefix}/*`, { schema: { hide: true } }, page);
    }
  };
