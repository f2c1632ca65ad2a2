/**
 * The web app in a real browser (Debian's Chromium), against the real system: server, broker,
 * simulated lock, door sensor and camera.
 *
 * 1. A courier completes a delivery through the courier page (phone-sized, with the browser's
 *    location) while the owner's page shows the session live; afterwards the owner's timeline
 *    shows its coverage and plays its clip.
 * 2. The deauth attack: during a delivery the camera's link is cut; within 3 s the owner's live
 *    view is covered with "offline since …" and the alarm is on screen.
 *
 * Screenshots go to test-output/screenshots. Neither page may log a console error or warning.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ScenarioWorld } from '../src/harness/scenario-world.ts';
import { DEMO_DOORSTEP } from '../src/server/seed.ts';
import { collectConsoleProblems, launchChromium, screenshot } from './browser.ts';

const BIN = join(import.meta.dirname, '..', 'bin', 'threshold.js');
const WEB_BUILT = existsSync(join(import.meta.dirname, '..', 'web', 'dist', 'index.html'));

let world: ScenarioWorld;
let browser: Browser;
let base = '';
const problems: string[] = [];

beforeAll(async () => {
  // The app is built by `npm install` (prepare) and by CI; a missing build is a failure here,
  // not a skip.
  expect(WEB_BUILT, 'web/dist is built (npm run build:web)').toBe(true);
  world = await ScenarioWorld.create();
  // WebAuthn and secure-context APIs need a host name, not an IP address.
  base = `http://localhost:${world.sys.port}`;
  browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await world?.close();
});

async function ownerToken(): Promise<string> {
  const r = await fetch(`${world.sys.url}/api/auth/sign-in`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(world.creds.owner),
  });
  return ((await r.json()) as { token: string }).token;
}

async function ownerPage(): Promise<{ ctx: BrowserContext; page: Page }> {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await ctx.newPage();
  collectConsoleProblems(page, problems);
  await page.goto(`${base}/`);
  await page.getByTestId('username').fill(world.creds.owner.username);
  await page.getByTestId('password').fill(world.creds.owner.password);
  await page.getByTestId('sign-in').click();
  await page.getByTestId('door-card').first().waitFor({ timeout: 10_000 });
  return { ctx, page };
}

async function courierPage(): Promise<{ ctx: BrowserContext; page: Page }> {
  const ctx = await browser.newContext({
    viewport: { width: 390, height: 844 },
    deviceScaleFactor: 2,
    isMobile: true,
    hasTouch: true,
    geolocation: { latitude: DEMO_DOORSTEP.lat, longitude: DEMO_DOORSTEP.lon, accuracy: 8 },
    permissions: ['geolocation'],
  });
  const page = await ctx.newPage();
  collectConsoleProblems(page, problems);
  await page.goto(`${base}/courier`);
  await page.getByTestId('username').fill(world.creds.courier.username);
  await page.getByTestId('password').fill(world.creds.courier.password);
  await page.getByTestId('sign-in').click();
  return { ctx, page };
}

describe('web app', () => {
  it('a courier completes a delivery on the courier page while the owner watches it live; then the owner sees its coverage and clip', async () => {
    const deliveryId = await world.newDelivery();
    const delivery = await world.sys.store.deliveries.get(deliveryId);
    const owner = await ownerPage();
    await expect
      .poll(() => owner.page.getByTestId('live-view').getAttribute('data-live-status'), {
        timeout: 8_000,
      })
      .toBe('live');
    await screenshot(owner.page, 'owner-home');

    const courier = await courierPage();
    const card = courier.page.getByTestId('courier-delivery').filter({
      hasText: delivery!.packageRef,
    });
    await card.waitFor({ timeout: 10_000 });
    await screenshot(courier.page, 'courier-deliveries');
    await card.getByTestId('at-door').click();

    // Swipe to unlock, with a finger's drag from one end to the other.
    const slider = courier.page.getByTestId('swipe-unlock');
    await slider.waitFor({ timeout: 10_000 });
    await screenshot(courier.page, 'courier-at-door');
    const box = (await slider.boundingBox())!;
    await courier.page.mouse.move(box.x + 20, box.y + box.height / 2);
    await courier.page.mouse.down();
    for (let i = 1; i <= 10; i++) {
      await courier.page.mouse.move(
        box.x + 20 + ((box.width - 20) * i) / 10,
        box.y + box.height / 2,
      );
    }
    await courier.page.mouse.up();

    // The door opens: the lock is unlocked for real, and the owner's page says so live.
    await expect.poll(() => world.home.lock.bolt(), { timeout: 12_000 }).toBe('unlocked');
    await expect
      .poll(() => owner.page.getByTestId('lock-state').first().innerText(), { timeout: 5_000 })
      .toMatch(/unlocked/i);
    await courier.page.getByTestId('relock').waitFor({ timeout: 5_000 });
    await screenshot(courier.page, 'courier-door-open');
    await screenshot(owner.page, 'owner-home-during-delivery');

    // The courier goes in, leaves the parcel, comes out, closes the door and taps "lock".
    await world.dropParcel();
    await courier.page.getByTestId('relock').click();
    // "Next stop" only once the lock and the door are both confirmed.
    await courier.page.getByTestId('next-stop').waitFor({ timeout: 15_000 });
    expect(world.home.lock.bolt()).toBe('locked');
    expect(world.home.doorSensor.position()).toBe('closed');
    await screenshot(courier.page, 'courier-done');

    // The owner's timeline: the session, fully covered, with its clip playable.
    await owner.page.goto(`${base}/sessions`);
    const row = owner.page.getByTestId('session-row').first();
    await row.waitFor({ timeout: 10_000 });
    expect(await row.getByTestId('coverage-bar').count()).toBe(1);
    expect(await row.getByTestId('coverage-gap').count()).toBe(0);
    await screenshot(owner.page, 'owner-timeline');
    await row.click();
    const player = owner.page.getByTestId('clip-player');
    await player.waitFor({ timeout: 10_000 });
    const frame = owner.page.getByTestId('clip-frame');
    await expect
      .poll(
        () => frame.evaluate((img) => (img as unknown as { naturalWidth: number }).naturalWidth),
        {
          timeout: 10_000,
        },
      )
      .toBeGreaterThan(0);
    await owner.page.getByTestId('audit-entries').waitFor({ timeout: 10_000 });
    expect(await owner.page.getByTestId('audit-entries').innerText()).toMatch(/session/);
    await screenshot(owner.page, 'owner-session');

    // The downloaded audit log is what `threshold audit verify --file` accepts.
    const [download] = await Promise.all([
      owner.page.waitForEvent('download'),
      owner.page.getByTestId('audit-download').click(),
    ]);
    const file = join(mkdtempSync(join(tmpdir(), 'threshold-export-')), 'audit.json');
    await download.saveAs(file);
    const verify = spawnSync(
      process.execPath,
      [BIN, 'audit', 'verify', '--file', file, '--public-key', world.sys.audit.publicKey, '--json'],
      { encoding: 'utf8', timeout: 30_000 },
    );
    expect(verify.status, verify.stderr).toBe(0);
    expect(JSON.parse(verify.stdout)).toMatchObject({ ok: true });
    const sessionId = /threshold-audit-session-(.+)\.json$/.exec(download.suggestedFilename())?.[1];
    expect(sessionId).toBeDefined();
    const exported = JSON.parse(readFileSync(file, 'utf8')) as { entries: { subject?: string }[] };
    expect(exported.entries.some((e) => e.subject === `session:${sessionId}`)).toBe(true);

    await owner.ctx.close();
    await courier.ctx.close();
    expect(problems).toEqual([]);
  }, 90_000);

  it('deauth: the owner’s live view says "offline since …" and shows the alarm within 3 s of the cut', async () => {
    const owner = await ownerPage();
    await expect
      .poll(() => owner.page.getByTestId('live-view').getAttribute('data-live-status'), {
        timeout: 8_000,
      })
      .toBe('live');

    const { sessionId } = await world.deliverInside();
    expect(sessionId).not.toBeNull();
    world.home.links.camera.cutLink();
    const cutAt = Date.now();
    try {
      await owner.page
        .locator('[data-testid="live-view"][data-live-status="offline"]')
        .waitFor({ timeout: 3_000 });
      await owner.page.getByTestId('alarm-banner').first().waitFor({ timeout: 3_000 });
      const tookMs = Date.now() - cutAt;
      expect(tookMs).toBeLessThan(3_000);
      expect(await owner.page.getByTestId('live-overlay').innerText()).toMatch(
        /offline since \d{1,2}:\d{2}:\d{2}/i,
      );
      expect(await owner.page.getByTestId('alarm-banner').first().innerText()).toMatch(/camera/i);
      await screenshot(owner.page, 'owner-deauth-alarm');

      // The alarm is acknowledged from the page, and the acknowledgement is audited.
      await owner.page.getByTestId('alarm-ack').first().click();
      await expect
        .poll(
          async () =>
            (await world.sys.store.audit.entriesForSubject(`session:${sessionId}`)).some(
              (e) => e.kind === 'alarm.acknowledged',
            ),
          { timeout: 5_000 },
        )
        .toBe(true);
    } finally {
      world.home.links.camera.restoreLink();
    }
    await world.waitForState(sessionId!, ['completed', 'aborted', 'refused'], 20_000);

    // The timeline shows the gap in the session's coverage, in red.
    await owner.page.goto(`${base}/sessions`);
    const row = owner.page.getByTestId('session-row').first();
    await row.waitFor({ timeout: 10_000 });
    await expect
      .poll(() => row.getByTestId('coverage-gap').count(), { timeout: 5_000 })
      .toBeGreaterThan(0);
    const gapColour = await row
      .getByTestId('coverage-gap')
      .first()
      .evaluate(
        (el) =>
          (
            globalThis as unknown as {
              getComputedStyle(e: unknown): { backgroundColor: string };
            }
          ).getComputedStyle(el).backgroundColor,
      );
    const [r = 0, g = 0, b = 0] = (gapColour.match(/\d+/g) ?? []).map(Number);
    expect(r, `the gap is drawn red (${gapColour})`).toBeGreaterThan(150);
    expect(g).toBeLessThan(100);
    expect(b).toBeLessThan(100);
    await screenshot(owner.page, 'owner-timeline-with-gap');
    await owner.ctx.close();
    expect(problems).toEqual([]);
  }, 90_000);

  it('"ask me first": the courier waits, told why; the owner taps "let in" on the prompt; the courier swipes by keyboard alone', async () => {
    const put = await fetch(`${world.sys.url}/api/homes/${world.creds.homeId}/settings`, {
      method: 'PUT',
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${await ownerToken()}`,
      },
      body: JSON.stringify({ inHomeDelivery: true, daysOff: [], askFirst: true, askTimeoutS: 60 }),
    });
    expect(put.status).toBe(200);
    try {
      const deliveryId = await world.newDelivery();
      const delivery = await world.sys.store.deliveries.get(deliveryId);
      const owner = await ownerPage();
      const courier = await courierPage();
      const card = courier.page
        .getByTestId('courier-delivery')
        .filter({ hasText: delivery!.packageRef });
      await card.getByTestId('at-door').click();
      const slider = courier.page.getByTestId('swipe-unlock');
      await slider.waitFor({ timeout: 10_000 });
      await slider.focus();
      await courier.page.keyboard.press('End');

      await expect
        .poll(() => courier.page.getByTestId('courier-status').innerText(), { timeout: 10_000 })
        .toMatch(/waiting for the owner/i);
      await screenshot(courier.page, 'courier-waiting-for-owner');
      const letIn = owner.page.getByTestId('decision-let-in');
      await letIn.waitFor({ timeout: 5_000 });
      await screenshot(owner.page, 'owner-ask-first-prompt');
      expect(world.home.lock.bolt()).toBe('locked');
      await letIn.click();

      await expect.poll(() => world.home.lock.bolt(), { timeout: 12_000 }).toBe('unlocked');
      await courier.page.getByTestId('relock').waitFor({ timeout: 5_000 });
      await courier.page.getByTestId('relock').click();
      await courier.page.getByTestId('next-stop').waitFor({ timeout: 15_000 });
      expect(world.home.lock.bolt()).toBe('locked');
      await owner.ctx.close();
      await courier.ctx.close();
      expect(problems).toEqual([]);
    } finally {
      await fetch(`${world.sys.url}/api/homes/${world.creds.homeId}/settings`, {
        method: 'PUT',
        headers: {
          'content-type': 'application/json',
          authorization: `Bearer ${await ownerToken()}`,
        },
        body: JSON.stringify({
          inHomeDelivery: true,
          daysOff: [],
          askFirst: false,
          askTimeoutS: 60,
        }),
      });
    }
  }, 90_000);

  it('a refused courier reads what to do in plain words (camera offline: leave it at the door)', async () => {
    const deliveryId = await world.newDelivery();
    const delivery = await world.sys.store.deliveries.get(deliveryId);
    world.home.links.camera.cutLink();
    try {
      // The server counts the camera offline once its link is gone (its last will).
      await expect
        .poll(() => world.sys.gateway.liveStatus(world.creds.devices.camera.id)?.online, {
          timeout: 10_000,
        })
        .toBe(false);
      const courier = await courierPage();
      const card = courier.page
        .getByTestId('courier-delivery')
        .filter({ hasText: delivery!.packageRef });
      await card.getByTestId('at-door').click();
      const slider = courier.page.getByTestId('swipe-unlock');
      await slider.waitFor({ timeout: 10_000 });
      await slider.focus();
      await courier.page.keyboard.press('End');
      await expect
        .poll(() => courier.page.getByTestId('courier-status').innerText(), { timeout: 10_000 })
        .toMatch(/camera is offline.*leave the parcel at the door/i);
      await screenshot(courier.page, 'courier-refused-camera-offline');
      expect(world.home.lock.bolt()).toBe('locked');
      await courier.ctx.close();
    } finally {
      world.home.links.camera.restoreLink();
    }
    // A refusal is a 4xx answer by contract, which Chromium logs as a failed resource; nothing else.
    const others = problems.filter(
      (p) => !/Failed to load resource: the server responded with a status of 409/.test(p),
    );
    expect(others).toEqual([]);
    problems.length = 0;
  }, 60_000);

  it('a lock that drops off is shown as unknown with its last report beside it, never as locked', async () => {
    const owner = await ownerPage();
    const lockState = owner.page.getByTestId('lock-state').first();
    await expect
      .poll(() => lockState.getAttribute('data-state'), { timeout: 5_000 })
      .toBe('locked');
    world.home.links.lock.cutLink();
    try {
      await expect
        .poll(() => lockState.getAttribute('data-state'), { timeout: 5_000 })
        .toBe('unknown');
      // The fact and its detail line ("Offline since …").
      const text = await lockState.locator('xpath=..').innerText();
      expect(text).toMatch(/unknown/i);
      expect(text).toMatch(/last reported locked/i);
      expect(text).toMatch(/offline since \d{1,2}:\d{2}:\d{2}/i);
      await screenshot(owner.page, 'owner-lock-offline');
    } finally {
      world.home.links.lock.restoreLink();
    }
    await expect
      .poll(() => lockState.getAttribute('data-state'), { timeout: 10_000 })
      .toBe('locked');
    await owner.ctx.close();
    expect(problems).toEqual([]);
  }, 60_000);
});
