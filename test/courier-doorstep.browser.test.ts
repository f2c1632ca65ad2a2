/**
 * A doorstep delivery on the courier page, in a real browser (Debian's Chromium) against the
 * real system: the carrier creates it through its API; the courier's list says to leave it
 * outside, the delivery page offers "Left at the door" instead of the slide to unlock, and one
 * tap settles it. The door never moves. The page logs no console error or warning.
 */
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ScenarioWorld } from '../src/harness/scenario-world.ts';
import { DEMO_DOORSTEP } from '../src/server/seed.ts';
import { collectConsoleProblems, launchChromium, screenshot } from './browser.ts';

const WEB_BUILT = existsSync(join(import.meta.dirname, '..', 'web', 'dist', 'index.html'));

let world: ScenarioWorld;
let browser: Browser;
const problems: string[] = [];

beforeAll(async () => {
  // A missing build is a failure here, not a skip (npm run build:web).
  expect(WEB_BUILT, 'web/dist is built (npm run build:web)').toBe(true);
  world = await ScenarioWorld.create();
  browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await world?.close();
});

describe('the courier page, a doorstep delivery', () => {
  it('shows "leave at the door", offers "Left at the door" instead of the slide, and settles it with one tap', async () => {
    const now = world.sys.clock.now();
    const packageRef = `PKG-DOOR-${randomUUID().slice(0, 6).toUpperCase()}`;
    const created = await fetch(`${world.sys.url}/api/carrier/deliveries`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${world.creds.carrier.apiKey}`,
        'content-type': 'application/json',
        'idempotency-key': randomUUID(),
      },
      body: JSON.stringify({
        homeId: world.creds.homeId,
        packageRef,
        windowStart: now,
        windowEnd: now + 3_600_000,
        courierId: world.creds.courier.id,
        placement: 'doorstep',
      }),
    });
    expect(created.status).toBe(201);
    const { delivery } = (await created.json()) as { delivery: { id: string } };

    const ctx = await browser.newContext({
      viewport: { width: 390, height: 844 },
      deviceScaleFactor: 2,
      isMobile: true,
      hasTouch: true,
      geolocation: { latitude: DEMO_DOORSTEP.lat, longitude: DEMO_DOORSTEP.lon, accuracy: 8 },
      permissions: ['geolocation'],
    });
    try {
      const page = await ctx.newPage();
      collectConsoleProblems(page, problems);
      await page.goto(`http://localhost:${world.sys.port}/courier`);
      await page.getByTestId('username').fill(world.creds.courier.username);
      await page.getByTestId('password').fill(world.creds.courier.password);
      await page.getByTestId('sign-in').click();
      const card = page.getByTestId('courier-delivery').filter({ hasText: packageRef });
      await card.waitFor({ timeout: 10_000 });
      expect(await card.innerText()).toContain('leave at the door');
      await screenshot(page, 'courier-doorstep-list');

      const bolt = world.home.lock.bolt();
      await card.getByTestId('at-door').click();
      const button = page.getByTestId('left-at-door');
      await button.waitFor({ timeout: 5_000 });
      expect(await page.getByTestId('swipe-unlock').count()).toBe(0);
      expect(await page.getByTestId('courier-status').innerText()).toContain(
        'the door does not open for it',
      );
      await screenshot(page, 'courier-doorstep-at-door');
      await button.click();
      await page.getByTestId('next-stop').waitFor({ timeout: 5_000 });
      expect(await page.getByTestId('courier-status').innerText()).toContain(
        'the parcel is at the door',
      );
      await screenshot(page, 'courier-doorstep-done');
      expect((await world.sys.store.deliveries.get(delivery.id))?.status).toBe('left-at-door');
      expect(world.home.lock.bolt()).toBe(bolt);

      // Back on the list, it is done, with no way to try again.
      await page.getByTestId('next-stop').click();
      const done = page.getByTestId('courier-delivery').filter({ hasText: packageRef });
      await expect.poll(() => done.count(), { timeout: 5_000 }).toBe(0);
      expect(problems).toEqual([]);
    } finally {
      await ctx.close();
    }
  });
});
