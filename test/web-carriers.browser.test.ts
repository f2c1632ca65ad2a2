/**
 * Carriers in the web app, in a real browser (Debian's Chromium) against the real system.
 *
 * The owner opens Settings, blocks the demo carrier (its courier is then refused at the door),
 * allows it again, allows a second carrier, and blocks and unblocks the demo courier. A carrier
 * admin invites a courier; the courier opens the link on a phone, chooses a user name and
 * password, and lands on the courier page, signed in.
 *
 * Screenshots go to test-output/screenshots. No page may log a console error or warning.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ScenarioWorld } from '../src/harness/scenario-world.ts';
import { collectConsoleProblems, launchChromium, screenshot } from './browser.ts';

const WEB_BUILT = existsSync(join(import.meta.dirname, '..', 'web', 'dist', 'index.html'));

let world: ScenarioWorld;
let browser: Browser;
let base = '';
const problems: string[] = [];
const BIRCH = { id: 'carrier-birch-express', name: 'Birch Express' };

beforeAll(async () => {
  // A missing build is a failure here, not a skip.
  expect(WEB_BUILT, 'web/dist is built (npm run build:web)').toBe(true);
  world = await ScenarioWorld.create();
  await world.sys.store.principals.createCarrier(BIRCH);
  base = `http://localhost:${world.sys.port}`;
  browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await world?.close();
});

function carrierRow(page: Page, id: string) {
  return page.locator(`[data-testid="carrier-row"][data-carrier-id="${id}"]`);
}

async function decisionShown(page: Page, id: string): Promise<string | null> {
  return carrierRow(page, id).getAttribute('data-decision');
}

describe('carriers in the web app', () => {
  it('the owner blocks and allows carriers, and blocks and unblocks a courier, in Settings', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const owner = await ctx.newPage();
    collectConsoleProblems(owner, problems);
    await owner.goto(`${base}/`);
    await owner.getByTestId('username').fill(world.creds.owner.username);
    await owner.getByTestId('password').fill(world.creds.owner.password);
    await owner.getByTestId('sign-in').click();
    await owner.getByTestId('door-card').first().waitFor({ timeout: 10_000 });
    await owner.getByRole('link', { name: 'Settings', exact: true }).click();
    await owner.getByTestId('carriers-settings').waitFor({ timeout: 10_000 });
    const parcelco = world.creds.carrier.id;
    await carrierRow(owner, parcelco).waitFor({ timeout: 10_000 });
    expect(await decisionShown(owner, parcelco)).toBe('allowed');
    expect(await decisionShown(owner, BIRCH.id)).toBe('undecided');
    await expect(carrierRow(owner, BIRCH.id).innerText()).resolves.toMatch(
      /Birch Express[\s\S]*Not allowed yet/,
    );
    await screenshot(owner, 'owner-carriers');

    // Block ParcelCo: the page and the server say so, and its courier is refused at the door.
    await owner.getByRole('button', { name: 'Block ParcelCo' }).click();
    await expect.poll(() => decisionShown(owner, parcelco), { timeout: 5_000 }).toBe('blocked');
    await expect(owner.getByTestId('carriers-status').innerText()).resolves.toBe(
      'ParcelCo is blocked: its couriers cannot open your door.',
    );
    expect(await world.sys.store.homes.carrierDecision(world.creds.homeId, parcelco)).toBe(
      'blocked',
    );
    expect(
      await world.sys.store.homes.ownersRefusal(
        world.creds.homeId,
        parcelco,
        world.creds.courier.id,
      ),
    ).toBe('carrier-not-allowed');
    await screenshot(owner, 'owner-carriers-blocked');

    // Allow it again, and allow Birch Express.
    await owner.getByRole('button', { name: 'Allow ParcelCo' }).click();
    await expect.poll(() => decisionShown(owner, parcelco), { timeout: 5_000 }).toBe('allowed');
    await owner.getByRole('button', { name: 'Allow Birch Express' }).click();
    await expect.poll(() => decisionShown(owner, BIRCH.id), { timeout: 5_000 }).toBe('allowed');
    expect(await world.sys.store.homes.isCarrierAllowed(world.creds.homeId, BIRCH.id)).toBe(true);
    expect(await world.sys.store.homes.isCarrierAllowed(world.creds.homeId, parcelco)).toBe(true);

    // The demo courier has delivered here: block, then unblock.
    const courierRow = owner.locator(
      `[data-testid="courier-row"][data-courier-id="${world.creds.courier.id}"]`,
    );
    await expect(courierRow.getAttribute('data-blocked')).resolves.toBe('false');
    await courierRow.getByTestId('courier-block').click();
    await expect
      .poll(() => courierRow.getAttribute('data-blocked'), { timeout: 5_000 })
      .toBe('true');
    expect(
      await world.sys.store.homes.isCourierBlocked(world.creds.homeId, world.creds.courier.id),
    ).toBe(true);
    await screenshot(owner, 'owner-courier-blocked');
    await courierRow.getByTestId('courier-unblock').click();
    await expect
      .poll(() => courierRow.getAttribute('data-blocked'), { timeout: 5_000 })
      .toBe('false');
    expect(
      await world.sys.store.homes.isCourierBlocked(world.creds.homeId, world.creds.courier.id),
    ).toBe(false);
    await ctx.close();
  }, 60_000);

  it('a courier opens the invitation link on a phone, chooses a password and lands on the courier page', async () => {
    const signIn = await fetch(`${world.sys.url}/api/auth/sign-in`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        username: world.creds.carrierAdmin.username,
        password: world.creds.carrierAdmin.password,
      }),
    });
    const { token } = (await signIn.json()) as { token: string };
    const made = await fetch(`${world.sys.url}/api/carrier/couriers/invites`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ displayName: 'Robin' }),
    });
    expect(made.status).toBe(201);
    const { path } = (await made.json()) as { path: string };
    expect(path).toMatch(/^\/courier-invite\/[A-Za-z0-9_-]{43}$/);

    const ctx = await browser.newContext({
      viewport: { width: 390, height: 844 },
      deviceScaleFactor: 2,
      isMobile: true,
      hasTouch: true,
    });
    const phone = await ctx.newPage();
    collectConsoleProblems(phone, problems);
    await phone.goto(`${base}${path}`);
    await phone.getByTestId('courier-invite-username').waitFor({ timeout: 10_000 });
    await expect(phone.getByTestId('courier-invite-page').innerText()).resolves.toMatch(
      /ParcelCo invites you to deliver, Robin/,
    );
    await screenshot(phone, 'courier-invite-page');
    await phone.getByTestId('courier-invite-username').fill('robin');
    await phone.getByTestId('courier-invite-password').fill('parcels-by-bike');
    await phone.getByTestId('courier-invite-accept').click();

    await phone.waitForURL(`${base}/courier`, { timeout: 10_000 });
    await phone.getByText('No deliveries to make right now.').waitFor({ timeout: 10_000 });
    await screenshot(phone, 'courier-invite-accepted');
    const robin = await world.sys.store.principals.getByUsername('robin');
    expect(robin?.principal).toMatchObject({
      role: 'courier',
      carrierId: world.creds.carrier.id,
      displayName: 'Robin',
    });

    // The link worked once: opened again, it says so in plain words.
    const again = await ctx.newPage();
    collectConsoleProblems(again, problems);
    await again.goto(`${base}${path}`);
    await expect(
      again.getByTestId('courier-invite-error').innerText({ timeout: 10_000 }),
    ).resolves.toMatch(/used, withdrawn or has expired/);
    await ctx.close();
    // The used link's 410 is the one failed request the browser may report.
    expect(
      problems.filter(
        (p) => !/Failed to load resource: the server responded with a status of 410/.test(p),
      ),
    ).toEqual([]);
  }, 60_000);
});
