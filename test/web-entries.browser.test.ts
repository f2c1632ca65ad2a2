/**
 * "Who unlocked" in the web app, in a real browser (Debian's Chromium) against the real system:
 * server, broker, simulated lock (with its keypad), door sensor and camera.
 *
 * 1. The owner's home page lists who came in, live, each the moment it happens: the owner's own
 *    unlock through the page's "Unlock…" dialog, a key turned in the simulated lock, a courier's
 *    visit (with a link to it), and Grandma's keypad code (her name and slot).
 * 2. Three wrong codes on the keypad lock it out; the server's notice shows under the alarm
 *    banner on whatever page is open, stays while the owner moves between pages, and is
 *    dismissed.
 * 3. The settings card "Who unlocked — notifications": the owner picks "Only the people I
 *    choose", ticks Grandma and saves; after a reload the choice is still there, and the API
 *    answers the same.
 *
 * Screenshots go to test-output/screenshots (owner-entries, owner-entry-alerts). No page may log
 * a console error or warning.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EntryAlertsView, EntryView } from '../src/protocol/views.ts';
import { ScenarioWorld } from '../src/harness/scenario-world.ts';
import { collectConsoleProblems, launchChromium, screenshot, SCREENSHOT_DIR } from './browser.ts';

const WEB_BUILT = existsSync(join(import.meta.dirname, '..', 'web', 'dist', 'index.html'));
/** Grandma's keypad code (the test chooses it, so it can type it on the simulated keypad). */
const GRANDMA_CODE = '2468';
const GRANDMA_SLOT = 3;

let world: ScenarioWorld;
let browser: Browser;
let base = '';
let token = '';
let grandmaId = '';
const problems: string[] = [];

/** A JSON request to the API as the owner. */
async function asOwner<T>(method: string, path: string, body?: unknown): Promise<T> {
  const init: RequestInit = { method, headers: { authorization: `Bearer ${token}` } };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers = { ...init.headers, 'content-type': 'application/json' };
  }
  const r = await fetch(`${world.sys.url}${path}`, init);
  expect(r.status, `${method} ${path}`).toBe(200);
  return (await r.json()) as T;
}

beforeAll(async () => {
  // A missing build is a failure here, not a skip.
  expect(WEB_BUILT, 'web/dist is built (npm run build:web)').toBe(true);
  world = await ScenarioWorld.create();
  base = `http://localhost:${world.sys.port}`;
  browser = await launchChromium();
  const signIn = await fetch(`${world.sys.url}/api/auth/sign-in`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(world.creds.owner),
  });
  token = ((await signIn.json()) as { token: string }).token;

  // Grandma: a guest of the home at any time, with a keypad code the lock has confirmed.
  const invite = await asOwner<{ token: string }>(
    'POST',
    `/api/homes/${world.creds.homeId}/invites`,
    { displayName: 'Grandma', doorId: world.creds.doorId, schedule: { kind: 'always' } },
  );
  const accept = await fetch(`${world.sys.url}/api/invites/${invite.token}/accept`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'grandma', password: 'knitting-needles-7' }),
  });
  expect(accept.status).toBe(200);
  grandmaId = ((await accept.json()) as { principal: { id: string } }).principal.id;
  const pinsPath = `/api/homes/${world.creds.homeId}/locks/${world.creds.devices.lock.id}/pins`;
  await asOwner('PUT', `${pinsPath}/${GRANDMA_SLOT}`, {
    principalId: grandmaId,
    name: 'Grandma',
    code: GRANDMA_CODE,
  });
  // expect.poll belongs to tests; here a plain wait, failing with what the lock last said.
  let sync: string | undefined;
  for (const until = Date.now() + 10_000; Date.now() < until;) {
    const { slots } = await asOwner<{ slots: { slot: number; sync: string }[] }>('GET', pinsPath);
    sync = slots.find((s) => s.slot === GRANDMA_SLOT)?.sync;
    if (sync === 'confirmed') break;
    await new Promise((r) => setTimeout(r, 100));
  }
  expect(sync, 'Grandma’s code confirmed by the lock').toBe('confirmed');
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await world?.close();
});

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

/** Waits until the page's lock fact says `state` (the devices' own report, shown live). */
async function lockShows(page: Page, state: 'locked' | 'unlocked'): Promise<void> {
  await expect
    .poll(() => page.getByTestId('lock-state').first().getAttribute('data-state'), {
      timeout: 10_000,
    })
    .toBe(state);
}

/** Locks the door from the page and waits for the lock to confirm. */
async function lockFromPage(page: Page): Promise<void> {
  await page.getByTestId('lock-button').click();
  await expect.poll(() => world.home.lock.bolt(), { timeout: 10_000 }).toBe('locked');
  await lockShows(page, 'locked');
}

describe('who unlocked in the web app', () => {
  it('every unlock appears live in "Who came in": the owner’s through the Unlock… dialog, a key turned in the lock, a courier’s visit', async () => {
    const { ctx, page } = await ownerPage();
    const card = page.getByTestId('entries-card');
    await card.getByTestId('entries-empty').waitFor({ timeout: 10_000 });
    expect(await card.getByTestId('entries-empty').innerText()).toBe('Nobody has come in yet.');
    const entries = card.getByTestId('entry');

    // The owner unlocks through the page's own dialog; the entry arrives live, highlighted.
    await page.getByTestId('unlock-button').click();
    await page.getByTestId('unlock-dialog-confirm').click();
    await expect.poll(() => world.home.lock.bolt(), { timeout: 10_000 }).toBe('unlocked');
    const remote = entries.and(page.locator('[data-method="remote"]'));
    await remote.waitFor({ timeout: 5_000 });
    const remoteText = await remote.innerText();
    expect(remoteText).toMatch(/from the app/i);
    expect(remoteText).toContain('Alex');
    expect(remoteText).toMatch(/\b\d{2}:\d{2}:\d{2}\b/);
    expect(await remote.getAttribute('class')).toContain('entry-new');
    expect(await remote.getByRole('link').count()).toBe(0);
    await lockFromPage(page);

    // A key in the simulated lock: nobody can be named, and the entry says so.
    world.home.lock.turnByHand('unlocked');
    const manual = entries.and(page.locator('[data-method="manual"]'));
    await manual.waitFor({ timeout: 5_000 });
    expect(await manual.innerText()).toMatch(/key or thumb-turn/i);
    world.home.lock.turnByHand('locked');
    await lockShows(page, 'locked');

    // A courier's visit: "with the app at the door", with a link to the visit.
    const { sessionId } = await world.deliverInside();
    expect(sessionId).not.toBeNull();
    await world.requestRelock(sessionId!);
    await world.waitForState(sessionId!, ['completed'], 20_000);
    const app = entries.and(page.locator('[data-method="app"]'));
    await app.waitFor({ timeout: 5_000 });
    expect(await app.innerText()).toMatch(/app at the door/i);
    expect(await app.getByRole('link', { name: 'See the visit' }).getAttribute('href')).toBe(
      `/sessions/${sessionId}`,
    );

    // Three entries, newest first, each once (the visit reports its unlock in every later
    // event): the page and the API agree.
    const listed = await asOwner<{ entries: EntryView[] }>(
      'GET',
      `/api/homes/${world.creds.homeId}/entries?limit=10`,
    );
    expect(listed.entries.map((e) => e.method)).toEqual(['app', 'manual', 'remote']);
    await expect
      .poll(async () =>
        Promise.all((await entries.all()).map((el) => el.getAttribute('data-entry-id'))),
      )
      .toEqual(listed.entries.map((e) => e.id));
    await ctx.close();
    expect(problems).toEqual([]);
  }, 90_000);

  it('Grandma’s keypad code appears live as her entry, with its slot', async () => {
    const { ctx, page } = await ownerPage();
    const entries = page.getByTestId('entries-card').getByTestId('entry');
    await entries.first().waitFor({ timeout: 10_000 });
    expect(world.home.lock.enterCode(GRANDMA_CODE)).toMatchObject({ result: 'unlocked' });
    const pin = entries.and(page.locator('[data-method="pin"]'));
    await pin.waitFor({ timeout: 5_000 });
    const pinText = await pin.innerText();
    expect(pinText).toContain('Grandma');
    expect(pinText).toContain(`Keypad · slot ${GRANDMA_SLOT}`);
    expect(await pin.getAttribute('class')).toContain('entry-new');
    const [newest] = (
      await asOwner<{ entries: EntryView[] }>(
        'GET',
        `/api/homes/${world.creds.homeId}/entries?limit=1`,
      )
    ).entries;
    expect(newest).toMatchObject({ method: 'pin', principalId: grandmaId, slot: GRANDMA_SLOT });
    await lockShows(page, 'unlocked');
    await lockFromPage(page);
    await ctx.close();
    expect(problems).toEqual([]);
  }, 60_000);

  it('a keypad lockout notice shows on the page that is open, stays from page to page, and is dismissed', async () => {
    const { ctx, page } = await ownerPage();
    const card = page.getByTestId('entries-card');
    // The notice is an event only: the page listens before the codes are typed. A key turned
    // in the lock shows as a *new* entry only once its event reached the page.
    world.home.lock.turnByHand('unlocked');
    await card.locator('.entry-new[data-method="manual"]').waitFor({ timeout: 10_000 });
    world.home.lock.turnByHand('locked');
    await lockShows(page, 'locked');

    // Three wrong codes lock the keypad out; the notice shows on the page that is open...
    await page.getByRole('link', { name: 'Timeline', exact: true }).click();
    await page.getByTestId('session-row').first().waitFor({ timeout: 10_000 });
    expect(await page.getByTestId('notice').count()).toBe(0);
    for (const wrong of ['0000', '0001', '0002']) world.home.lock.enterCode(wrong);
    const notice = page.getByTestId('notice');
    await notice.waitFor({ timeout: 5_000 });
    expect(await notice.innerText()).toMatch(/too many wrong codes on the keypad/i);
    expect(await page.getByTestId('notices').getAttribute('role')).toBe('status');
    // ...and stays while the owner goes back home (it is not stored anywhere to fetch again).
    await page.getByRole('link', { name: 'Home', exact: true }).click();
    await card.waitFor({ timeout: 5_000 });
    expect(await page.getByTestId('notice').count()).toBe(1);
    await card.getByTestId('entry').first().waitFor({ timeout: 5_000 });
    await expect.poll(() => page.locator('.entry-new').count(), { timeout: 10_000 }).toBe(0);
    await screenshot(page, 'owner-entries');
    // The same at phone width, for people to look at: the links and notice must not overflow.
    await page.setViewportSize({ width: 390, height: 844 });
    await screenshot(page, 'owner-entries-phone');
    await page.setViewportSize({ width: 1280, height: 860 });

    await page.getByTestId('notice-dismiss').click();
    expect(await page.getByTestId('notice').count()).toBe(0);
    // The keyboard's place is not lost with the button: the page's main region has the focus.
    const focused = await page.evaluate(
      () =>
        (globalThis as unknown as { document: { activeElement: { id: string } | null } }).document
          .activeElement?.id,
    );
    expect(focused).toBe('main');
    await ctx.close();
    expect(problems).toEqual([]);
  }, 60_000);

  it('the owner chooses to be told only of Grandma’s entries: saved, kept after a reload, and the API agrees', async () => {
    const alertsPath = `/api/homes/${world.creds.homeId}/entry-alerts`;
    const before = await asOwner<{ alerts: EntryAlertsView }>('GET', alertsPath);
    // The owner's default, before any choice: every entry.
    expect(before.alerts).toMatchObject({ mode: 'all', chosen: false });

    const { ctx, page } = await ownerPage();
    await page.getByRole('link', { name: 'Settings', exact: true }).click();
    const card = page.getByTestId('entry-alerts');
    await card.getByTestId('entry-alerts-mode-all').waitFor({ timeout: 10_000 });
    expect(await card.getByTestId('entry-alerts-mode-all').isChecked()).toBe(true);
    // The people are asked for only with "Only the people I choose".
    expect(await card.getByTestId('entry-alerts-people').count()).toBe(0);

    await card.getByLabel('Only the people I choose').check();
    const grandma = card.getByRole('checkbox', { name: /Grandma/ });
    await grandma.waitFor();
    expect(await grandma.isChecked()).toBe(false);
    await grandma.check();
    await card.getByTestId('entry-alerts-save').click();
    await expect
      .poll(() => card.getByTestId('entry-alerts-status').innerText(), { timeout: 5_000 })
      .toBe('Saved.');

    const after = await asOwner<{ alerts: EntryAlertsView }>('GET', alertsPath);
    expect(after.alerts).toMatchObject({ mode: 'chosen', people: [grandmaId], chosen: true });

    await page.reload();
    await card.getByTestId('entry-alerts-mode-chosen').waitFor({ timeout: 10_000 });
    expect(await card.getByTestId('entry-alerts-mode-chosen').isChecked()).toBe(true);
    expect(await card.getByRole('checkbox', { name: /Grandma/ }).isChecked()).toBe(true);
    mkdirSync(SCREENSHOT_DIR, { recursive: true });
    await card.screenshot({ path: join(SCREENSHOT_DIR, 'owner-entry-alerts.png') });

    // Keyboard alone: to "None" with the arrow keys, saved with Enter.
    await card.getByTestId('entry-alerts-mode-chosen').focus();
    await page.keyboard.press('ArrowDown');
    expect(await card.getByTestId('entry-alerts-mode-off').isChecked()).toBe(true);
    await page.keyboard.press('Enter');
    await expect
      .poll(() => card.getByTestId('entry-alerts-status').innerText(), { timeout: 5_000 })
      .toBe('Saved.');
    expect((await asOwner<{ alerts: EntryAlertsView }>('GET', alertsPath)).alerts.mode).toBe('off');
    await ctx.close();
    expect(problems).toEqual([]);
  }, 60_000);
});
