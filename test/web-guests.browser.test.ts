/**
 * Guests and keypad codes in the web app, in a real browser (Debian's Chromium) against the real
 * system: server, broker, simulated lock, door sensor and camera.
 *
 * The owner invites Grandma on the Guests page and reads the link, shown once; Grandma opens it
 * in another browser, chooses a user name and password, lands on her guest page, slides the door
 * open (the simulated lock really unlocks), comes in and locks it behind her. The owner gives her
 * a keypad code, sees the lock confirm it, and the code opens the simulated lock. Then the owner
 * revokes her: her page says so and has no swipe, and her keypad slot is emptied.
 *
 * Then the owner invites a neighbour with "Camera must record each entry" turned off: the
 * neighbour's page says entries are not recorded, she lets herself in with the camera offline,
 * and the owner's guests page, timeline and visit page say "Not recorded" (no red coverage).
 *
 * Screenshots go to test-output/screenshots. No page may log a console error or warning.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ScenarioWorld } from '../src/harness/scenario-world.ts';
import { collectConsoleProblems, launchChromium, screenshot, SCREENSHOT_DIR } from './browser.ts';

const WEB_BUILT = existsSync(join(import.meta.dirname, '..', 'web', 'dist', 'index.html'));

let world: ScenarioWorld;
let browser: Browser;
let base = '';
const problems: string[] = [];

beforeAll(async () => {
  // A missing build is a failure here, not a skip.
  expect(WEB_BUILT, 'web/dist is built (npm run build:web)').toBe(true);
  world = await ScenarioWorld.create();
  base = `http://localhost:${world.sys.port}`;
  browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await world?.close();
});

/** Drags the swipe-to-unlock handle from one end to the other, as a finger would. */
async function swipe(page: Page): Promise<void> {
  const slider = page.getByTestId('swipe-unlock');
  await slider.waitFor({ timeout: 10_000 });
  const box = (await slider.boundingBox())!;
  await page.mouse.move(box.x + 20, box.y + box.height / 2);
  await page.mouse.down();
  for (let i = 1; i <= 10; i++) {
    await page.mouse.move(box.x + 20 + ((box.width - 20) * i) / 10, box.y + box.height / 2);
  }
  await page.mouse.up();
}

describe('guests in the web app', () => {
  it('the owner invites Grandma, she accepts and lets herself in; a keypad code works; revoking her ends it all', async () => {
    // The owner, at a desktop.
    const ownerCtx = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    const owner = await ownerCtx.newPage();
    collectConsoleProblems(owner, problems);
    await owner.goto(`${base}/`);
    await owner.getByTestId('username').fill(world.creds.owner.username);
    await owner.getByTestId('password').fill(world.creds.owner.password);
    await owner.getByTestId('sign-in').click();
    await owner.getByTestId('door-card').first().waitFor({ timeout: 10_000 });
    await owner.getByRole('link', { name: 'Guests', exact: true }).click();
    expect(new URL(owner.url()).pathname).toBe('/guests');

    // Invite Grandma, at any time; the link is shown once.
    await owner.getByTestId('invite-name').fill('Grandma');
    await owner.getByTestId('invite-kind-always').check();
    await owner.getByTestId('invite-submit').click();
    const linkInput = owner.getByTestId('invite-link');
    await linkInput.waitFor({ timeout: 10_000 });
    const link = await linkInput.inputValue();
    expect(link).toMatch(new RegExp(`^${base}/invite/[A-Za-z0-9_-]{43}$`));
    await expect
      .poll(() => owner.getByTestId('guest-invite').filter({ hasText: 'Grandma' }).count(), {
        timeout: 5_000,
      })
      .toBe(1);
    await screenshot(owner, 'owner-guests-invited');

    // Grandma, on her phone, opens the link: no sign-in, the offer in words.
    const guestCtx = await browser.newContext({
      viewport: { width: 390, height: 844 },
      deviceScaleFactor: 2,
      isMobile: true,
      hasTouch: true,
    });
    const guest = await guestCtx.newPage();
    collectConsoleProblems(guest, problems);
    await guest.goto(link);
    await guest.getByTestId('invite-username').waitFor({ timeout: 10_000 });
    await expect(guest.getByTestId('invite-page').innerText()).resolves.toMatch(/Grandma/);
    await expect(guest.getByTestId('invite-when').innerText()).resolves.toBe('Any time');
    await screenshot(guest, 'invite-page');
    await guest.getByTestId('invite-username').fill('grandma');
    await guest.getByTestId('invite-password').fill('tea-at-four-o-clock');
    await guest.getByTestId('invite-accept').click();

    // She lands on her guest page, signed in.
    await guest.getByTestId('guest-page').waitFor({ timeout: 10_000 });
    expect(new URL(guest.url()).pathname).toBe('/guest');
    await expect(guest.getByTestId('guest-when').innerText()).resolves.toBe('Any time');
    await guest.getByTestId('swipe-unlock').waitFor({ timeout: 10_000 });
    await screenshot(guest, 'guest-page');

    // She slides the door open: the real lock unlocks.
    await swipe(guest);
    await expect.poll(() => world.home.lock.bolt(), { timeout: 12_000 }).toBe('unlocked');
    await guest.getByTestId('guest-relock').waitFor({ timeout: 5_000 });
    await screenshot(guest, 'guest-door-open');
    await world.dropParcel();
    await guest.getByTestId('guest-relock').click();
    await guest
      .locator('[data-testid="guest-access"][data-session-state="completed"]')
      .waitFor({ timeout: 15_000 });
    await expect(guest.getByTestId('guest-status').innerText()).resolves.toMatch(
      /Locked and confirmed/,
    );
    expect(world.home.lock.bolt()).toBe('locked');
    await screenshot(guest, 'guest-done');

    // The owner sees Grandma as a guest, one entry used, and gives her a keypad code.
    await owner.reload();
    const grandma = owner.getByTestId('guest-grant').filter({ hasText: 'Grandma' });
    await grandma.waitFor({ timeout: 10_000 });
    await expect(grandma.innerText()).resolves.toMatch(/1 entry so far/);
    await expect(grandma.getByTestId('guest-now').innerText()).resolves.toBe('May come in now');
    await owner.getByTestId('pin-person').selectOption({ label: 'Grandma' });
    await owner.getByTestId('pin-give').click();
    const code = await owner.getByTestId('pin-code').innerText({ timeout: 10_000 });
    expect(code).toMatch(/^[0-9]{6}$/);
    const slot = owner.getByTestId('pin-slot').filter({ hasText: 'Grandma' });
    await expect
      .poll(() => slot.getByTestId('pin-sync').innerText(), { timeout: 15_000 })
      .toBe('Confirmed by the lock');
    await screenshot(owner, 'owner-guests');
    const slotNumber = Number(await slot.getAttribute('data-slot'));
    expect(slotNumber).toBeGreaterThanOrEqual(1);

    // The code opens the simulated lock.
    expect(world.home.lock.enterCode(code)).toEqual({ result: 'unlocked', slot: slotNumber });
    await expect.poll(() => world.home.lock.bolt(), { timeout: 5_000 }).toBe('unlocked');

    // The owner revokes Grandma, after confirming.
    await grandma.getByTestId('guest-revoke').click();
    await owner.getByTestId('revoke-dialog-confirm').click();
    await expect
      .poll(() => grandma.getByTestId('guest-now').innerText(), { timeout: 10_000 })
      .toBe('Revoked');
    expect(await grandma.getByTestId('guest-revoke').count()).toBe(0);

    // Her slot is emptied, confirmed by the lock; the code opens nothing any more.
    const emptied = owner.locator(`[data-testid="pin-slot"][data-slot="${slotNumber}"]`);
    await expect
      .poll(() => emptied.getByTestId('pin-sync').innerText(), { timeout: 20_000 })
      .toBe('Empty — confirmed by the lock');
    expect(world.home.lock.enterCode(code).result).toBe('wrong-code');
    // The code, shown once, is gone with the slot.
    expect(await owner.getByTestId('pin-code').count()).toBe(0);
    await screenshot(owner, 'owner-guests-revoked');
    await owner.setViewportSize({ width: 390, height: 844 });
    await screenshot(owner, 'owner-guests-phone');
    // The weekly form, with a second slot, at phone width.
    await owner.getByTestId('invite-kind-weekly').check();
    await owner.getByTestId('invite-add-slot').click();
    await owner.getByTestId('invite-slot-0-sat').click();
    await owner.getByTestId('invite-form').screenshot({
      path: join(SCREENSHOT_DIR, 'owner-invite-weekly-phone.png'),
    });
    // A date range that has already ended: the server's problem is shown next to its field, and
    // no invitation is made.
    const before = await owner.getByTestId('guest-invite').count();
    await owner.getByTestId('invite-name').fill('Nobody');
    await owner.getByTestId('invite-kind-date-range').check();
    await owner.getByTestId('invite-from').fill('2020-01-01T10:00');
    await owner.getByTestId('invite-until').fill('2020-01-02T10:00');
    await owner.getByTestId('invite-submit').click();
    const fieldError = owner.getByTestId('invite-form').locator('.field-error');
    await fieldError.first().waitFor({ timeout: 5_000 });
    expect(await fieldError.first().innerText()).toMatch(/\S/);
    expect(await owner.getByTestId('invite-until').getAttribute('aria-invalid')).toBe('true');
    expect(await owner.getByTestId('guest-invite').count()).toBe(before);
    expect(await owner.getByTestId('invite-link').count()).toBe(0);
    await owner.getByTestId('invite-form').screenshot({
      path: join(SCREENSHOT_DIR, 'owner-invite-problems-phone.png'),
    });

    // Her page says so, and offers no swipe.
    await guest.reload();
    await guest.getByTestId('guest-page').waitFor({ timeout: 10_000 });
    await expect
      .poll(() => guest.getByTestId('guest-grant-now').innerText(), { timeout: 10_000 })
      .toBe('Revoked');
    await expect(guest.getByTestId('guest-status').innerText()).resolves.toBe(
      'Your access was withdrawn.',
    );
    expect(await guest.getByTestId('swipe-unlock').count()).toBe(0);
    await screenshot(guest, 'guest-revoked');

    await guestCtx.close();
    await ownerCtx.close();
    // The refused invitation (422) is the one failed request the browser may report.
    const others = problems.filter(
      (p) => !/Failed to load resource: the server responded with a status of 422/.test(p),
    );
    expect(others).toEqual([]);
  }, 120_000);

  it('a neighbour invited without recording lets herself in with the camera offline; every page says "Not recorded"', async () => {
    const seen: string[] = [];
    const ownerCtx = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    const owner = await ownerCtx.newPage();
    collectConsoleProblems(owner, seen);
    await owner.goto(`${base}/guests`);
    await owner.getByTestId('username').fill(world.creds.owner.username);
    await owner.getByTestId('password').fill(world.creds.owner.password);
    await owner.getByTestId('sign-in').click();
    await owner.getByTestId('invite-form').waitFor({ timeout: 10_000 });

    // Recording is on unless the owner turns it off; the form says what off means.
    const recording = owner.getByTestId('invite-recording');
    expect(await recording.isChecked()).toBe(true);
    await expect(owner.getByTestId('invite-form').innerText()).resolves.toMatch(
      /Camera must record each entry[\s\S]*not recorded[\s\S]*lock and the door are still checked/,
    );
    await owner.getByTestId('invite-name').fill('Neighbour');
    await owner.getByTestId('invite-kind-always').check();
    await recording.uncheck();
    await expect(owner.getByTestId('invite-summary').innerText()).resolves.toMatch(
      /^Entries are not recorded/,
    );
    await owner.getByTestId('invite-form').screenshot({
      path: join(SCREENSHOT_DIR, 'owner-invite-unrecorded.png'),
    });
    await owner.getByTestId('invite-submit').click();
    const linkInput = owner.getByTestId('invite-link');
    await linkInput.waitFor({ timeout: 10_000 });
    const link = await linkInput.inputValue();
    const pendingRow = owner.getByTestId('guest-invite').filter({ hasText: 'Neighbour' });
    await pendingRow.waitFor({ timeout: 5_000 });
    await expect(pendingRow.innerText()).resolves.toMatch(/Not recorded/);
    // The next invitation starts recorded again.
    await owner.getByRole('button', { name: 'Done' }).click();
    expect(await owner.getByTestId('invite-recording').isChecked()).toBe(true);

    // The neighbour accepts; her page says plainly her entries are not recorded.
    const guestCtx = await browser.newContext({
      viewport: { width: 390, height: 844 },
      isMobile: true,
      hasTouch: true,
    });
    const guest = await guestCtx.newPage();
    collectConsoleProblems(guest, seen);
    await guest.goto(link);
    await guest.getByTestId('invite-username').fill('neighbour');
    await guest.getByTestId('invite-password').fill('across-the-street');
    await guest.getByTestId('invite-accept').click();
    await guest.getByTestId('guest-page').waitFor({ timeout: 10_000 });
    await expect(guest.getByTestId('guest-recording').innerText()).resolves.toBe(
      'Your entries are not recorded: the camera is not switched on for you.',
    );

    // The camera goes offline; her grant does not need it, so the door opens all the same.
    const cameraId = world.creds.devices.camera.id;
    world.home.links.camera.cutLink();
    try {
      await expect
        .poll(() => world.sys.gateway.liveStatus(cameraId)?.online, { timeout: 10_000 })
        .toBe(false);
      await swipe(guest);
      await expect.poll(() => world.home.lock.bolt(), { timeout: 12_000 }).toBe('unlocked');
      await guest.getByTestId('guest-relock').waitFor({ timeout: 5_000 });
      await world.dropParcel();
      await guest.getByTestId('guest-relock').click();
      await guest
        .locator('[data-testid="guest-access"][data-session-state="completed"]')
        .waitFor({ timeout: 15_000 });
      expect(world.home.lock.bolt()).toBe('locked');
      await screenshot(guest, 'guest-unrecorded-done');
    } finally {
      world.home.links.camera.restoreLink();
    }

    // The owner's guests page: "Not recorded" beside the neighbour.
    await owner.reload();
    const neighbour = owner.getByTestId('guest-grant').filter({ hasText: 'Neighbour' });
    await neighbour.waitFor({ timeout: 10_000 });
    await expect(neighbour.getByTestId('guest-recording').innerText()).resolves.toBe(
      'Not recorded',
    );
    await expect(neighbour.innerText()).resolves.toMatch(/1 entry so far/);

    // The timeline: the newest visit is hers, "Not recorded" in grey, not a red bar.
    await owner.getByRole('link', { name: 'Timeline', exact: true }).click();
    const row = owner.getByTestId('session-row').first();
    await row.waitFor({ timeout: 10_000 });
    await expect(row.innerText()).resolves.toMatch(/Neighbour/);
    const bar = row.getByTestId('coverage-bar');
    expect(await bar.getAttribute('data-recorded')).toBe('false');
    expect(await row.locator('.coverage-gap').count()).toBe(0);
    await expect(row.innerText()).resolves.toMatch(/Not recorded/);
    await row.click();
    await owner.getByTestId('session-not-recorded').waitFor({ timeout: 10_000 });
    expect(await owner.locator('[data-testid="coverage-bar"][data-recorded="false"]').count()).toBe(
      1,
    );
    await expect(owner.locator('.proofs').innerText()).resolves.not.toMatch(/Camera proved/);
    await screenshot(owner, 'owner-session-unrecorded');

    await guestCtx.close();
    await ownerCtx.close();
    expect(seen).toEqual([]);
  }, 120_000);
});
