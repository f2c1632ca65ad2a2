/**
 * How the server serves the built web app: pages with a strict Content-Security-Policy and
 * never cached, hashed assets cached for a year and sent compressed when the browser accepts
 * it, client-side routes answered with the app, and API paths never answered with HTML.
 */
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ScenarioWorld } from '../src/harness/scenario-world.ts';
import { CONTENT_SECURITY_POLICY } from '../src/server/routes/web-app-route.ts';

const DIST = join(import.meta.dirname, '..', 'web', 'dist');
let world: ScenarioWorld;

beforeAll(async () => {
  world = await ScenarioWorld.create();
}, 60_000);
afterAll(async () => {
  await world?.close();
});

/** A raw GET (fetch would decompress and hide the encoding). */
function get(
  path: string,
  headers: Record<string, string> = {},
): Promise<{
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}> {
  return new Promise((resolve, reject) => {
    const req = request(`${world.sys.url}${path}`, { headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

describe('serving the web app', () => {
  it.each(['/', '/courier', '/sessions/3f1c2d1e-0000-4000-8000-000000000000', '/settings'])(
    '%s answers with the app, a strict CSP, and no caching',
    async (path) => {
      const r = await get(path);
      expect(r.status).toBe(200);
      expect(r.headers['content-type']).toMatch(/^text\/html/);
      expect(r.headers['content-security-policy']).toBe(CONTENT_SECURITY_POLICY);
      expect(CONTENT_SECURITY_POLICY).toContain("script-src 'self'");
      expect(CONTENT_SECURITY_POLICY).toContain("frame-ancestors 'none'");
      expect(r.headers['x-content-type-options']).toBe('nosniff');
      expect(r.headers['cache-control']).toBe('no-cache');
      expect(r.body.toString()).toBe(readFileSync(join(DIST, 'index.html'), 'utf8'));
    },
  );

  it('sends hashed assets compressed when accepted, cached for a year, the same bytes either way', async () => {
    const html = readFileSync(join(DIST, 'index.html'), 'utf8');
    const script = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    expect(script).toBeDefined();
    const raw = await get(script!);
    expect(raw.status).toBe(200);
    expect(raw.headers['content-encoding']).toBeUndefined();
    expect(raw.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    expect(raw.headers['content-security-policy']).toBe(CONTENT_SECURITY_POLICY);

    const br = await get(script!, { 'accept-encoding': 'br, gzip' });
    expect(br.headers['content-encoding']).toBe('br');
    expect(br.body.length).toBeLessThan(raw.body.length / 2);
    expect(brotliDecompressSync(br.body).equals(raw.body)).toBe(true);

    const gz = await get(script!, { 'accept-encoding': 'gzip' });
    expect(gz.headers['content-encoding']).toBe('gzip');
    expect(gunzipSync(gz.body).equals(raw.body)).toBe(true);
  });

  it('never answers an API path or an unknown file with the app', async () => {
    const api = await get('/api/no-such-route');
    expect(api.status).toBe(404);
    expect(api.headers['content-type']).toMatch(/^application\/json/);
    const file = await get('/assets/no-such-file.js');
    expect(file.status).toBe(404);
    expect(file.headers['content-type']).toMatch(/^application\/json/);
  });
});
