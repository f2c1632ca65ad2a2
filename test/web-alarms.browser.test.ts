/**
 * Every alarm type, as the owner sees it in a real browser (Debian's Chromium), raised for real
 * by the running system: server, broker, and the simulated lock, door sensor and camera of the
 * demo home, on the scenarios' short timings (SCENARIO_TIMING).
 *
 * One test per alarm type. Each makes something go wrong at the door during a courier's
 * in-home delivery (the camera's link cut, its picture frozen, heartbeats under a wrong key,
 * the door left open, the bolt jammed, the lock's link cut as it should lock, the bolt thrown
 * into an open door, a visit past its deadline, the bolt drawn back once locked), waits for the
 * server to raise the alarm, and then checks what the signed-in owner reads:
 *
 * - the red banner on top of the page names the alarm in plain words (web/src/words.ts: the
 *   title and the explanation), on the right door and visit, never as a raw code;
 * - "See the visit" opens that visit, which lists the alarm with the same words and what the
 *   server recorded about it;
 * - "Acknowledge" there records the owner's acknowledgement (shown, and in the audit log);
 * - the alarms page keeps it.
 *
 * One world, one browser and one signed-in page serve all nine, one after another: each test
 * puts the door back to rights (link restored, bolt freed, door closed) and waits for its visit
 * to end before the next begins. Screenshots of the owner's page and of the visit with each
 * alarm go to a temporary folder (printed at the end). No page may log a console error or warning.
 */
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, BrowserContext, Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AlarmType } from '../src/core/access-session.ts';
import { ScenarioWorld, sleep } from '../src/harness/scenario-world.ts';
import { createDemoDelivery } from '../src/server/seed.ts';
import { alarmExplanation, alarmLabel } from '../web/src/words.ts';
import { collectConsoleProblems, launchChromium } from './browser.ts';

const WEB_BUILT = existsSync(join(import.meta.dirname, '..', 'web', 'dist', 'index.html'));

/** Registers how to put the door back to rights; run in reverse order, whatever happened. */
type Undo = (restore: () => void | Promise<void>) => void;

/** How one alarm comes about, and what its words must mean. */
interface AlarmCase {
  readonly type: AlarmType;
  /** What happens at the door, in the test's name. */
  readonly story: string;
  /** Words the owner must read in the title or explanation, whatever words.ts says. */
  readonly means: RegExp;
  /** How long the server may take to raise it once caused, ms. Default 10 s. */
  readonly timeoutMs?: number;
  /** Makes it happen during a courier's visit; returns the visit's session. */
  readonly cause: (undo: Undo) => Promise<string>;
}

let world: ScenarioWorld;
let browser: Browser;
let ctx: BrowserContext;
let page: Page;
let base = '';
let ownerToken = '';
let owner = { id: '', displayName: '' };
let doorName = '';
const problems: string[] = [];
const shotsDir = mkdtempSync(join(tmpdir(), 'threshold-web-alarms-'));

const ENDED = ['completed', 'aborted', 'refused'] as const;
/** Every alarm code; none may reach the owner's eyes as such. */
const ALARM_CODES: readonly AlarmType[] = [
  'observation-lost',
  'observation-frozen',
  'observation-forged',
  'door-left-open',
  'lock-jammed',
  'lock-unconfirmed',
  'lock-state-mismatch',
  'session-overrun',
  'unexpected-entry',
];

beforeAll(async () => {
  // The app is built by `npm install` (prepare) and by CI; a missing build is a failure here,
  // not a skip.
  expect(WEB_BUILT, 'web/dist is built (npm run build:web)').toBe(true);
  world = await ScenarioWorld.create();
  base = `http://localhost:${world.sys.port}`;
  const signIn = await fetch(`${world.sys.url}/api/auth/sign-in`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(world.creds.owner),
  });
  const signedIn = (await signIn.json()) as {
    token: string;
    principal: { id: string; displayName: string };
  };
  ownerToken = signedIn.token;
  owner = signedIn.principal;
  const home = (await ownerApi('GET', `/api/homes/${world.creds.homeId}`)) as {
    doors: { doorId: string; name: string }[];
  };
  doorName = home.doors.find((d) => d.doorId === world.creds.doorId)?.name ?? '';
  expect(doorName).not.toBe('');

  browser = await launchChromium();
  ctx = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  page = await ctx.newPage();
  collectConsoleProblems(page, problems);
  await page.goto(`${base}/`);
  await page.getByTestId('username').fill(world.creds.owner.username);
  await page.getByTestId('password').fill(world.creds.owner.password);
  await page.getByTestId('sign-in').click();
  await page.getByTestId('door-card').first().waitFor({ timeout: 15_000 });
}, 90_000);

afterAll(async () => {
  await ctx?.close();
  await browser?.close();
  await world?.close();
  console.info(`web-alarms screenshots: ${shotsDir}`);
});

/** Calls the API as the owner; throws unless it answers 2xx. */
async function ownerApi(method: 'GET' | 'POST', path: string): Promise<unknown> {
  const r = await fetch(`${world.sys.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${ownerToken}`,
      ...(method === 'POST' ? { 'content-type': 'application/json' } : {}),
    },
    ...(method === 'POST' ? { body: '{}' } : {}),
  });
  if (!r.ok) throw new Error(`${method} ${path}: HTTP ${r.status} ${await r.text()}`);
  return r.json();
}

/** A new delivery for the courier, due now, whose door may stay unlocked `maxOpenMs`. */
async function delivery(maxOpenMs: number): Promise<string> {
  const now = world.sys.clock.now();
  const d = await createDemoDelivery(
    world.sys,
    world.creds.homeId,
    world.creds.doorId,
    world.creds.carrier.id,
    world.creds.courier.id,
    now - 60_000,
    3_600_000,
    maxOpenMs,
  );
  return d.id;
}

/** The courier asks at the door and the door opens; returns the session. */
async function doorOpensFor(deliveryId: string): Promise<string> {
  const access = await world.requestAccess(deliveryId);
  const sessionId = (access.body.session as { id?: string } | undefined)?.id;
  expect(access.status, JSON.stringify(access.body)).toBe(200);
  expect(sessionId).toBeDefined();
  await world.waitForState(sessionId!, ['open'], 15_000);
  return sessionId!;
}

/** A delivery under way: the door opened, the courier left the parcel and closed the door. */
async function parcelInside(): Promise<string> {
  const sessionId = await doorOpensFor(await delivery(world.maxOpenMs));
  await world.dropParcel();
  return sessionId;
}

/** One case per alarm type. */
const CASES: readonly AlarmCase[] = [
  {
    type: 'observation-lost',
    story: 'the camera’s link is cut mid-delivery (deauth)',
    means: /camera/i,
    async cause(undo: Undo) {
      const sessionId = await parcelInside();
      world.home.links.camera.cutLink();
      undo(() => world.home.links.camera.restoreLink());
      return sessionId;
    },
  },
  {
    type: 'observation-frozen',
    story: 'the camera keeps its heartbeats going on a frozen picture',
    means: /frozen|same picture/i,
    async cause(undo: Undo) {
      const sessionId = await parcelInside();
      world.home.camera.freeze();
      undo(() => world.home.camera.unfreeze());
      return sessionId;
    },
  },
  {
    type: 'observation-forged',
    story: 'the camera’s heartbeats arrive under a wrong key (forged)',
    means: /camera/i,
    async cause(undo: Undo) {
      const sessionId = await parcelInside();
      world.home.camera.forge(true);
      undo(() => world.home.camera.forge(false));
      return sessionId;
    },
  },
  {
    type: 'door-left-open',
    story: 'the courier walks off leaving the door open past the visit’s deadline',
    means: /open/i,
    timeoutMs: 15_000,
    async cause(undo: Undo) {
      const sessionId = await doorOpensFor(await delivery(4_000));
      world.home.doorSensor.open();
      undo(() => world.home.doorSensor.close());
      world.home.camera.setPerson(true);
      await sleep(600);
      world.home.camera.setPerson(false);
      return sessionId;
    },
  },
  {
    type: 'lock-jammed',
    story: 'the bolt jams as the courier locks up',
    means: /jam|stuck/i,
    async cause(undo: Undo) {
      const sessionId = await parcelInside();
      const lock = world.home.lock;
      // A stuck bolt jams at every movement until it is freed.
      lock.jam();
      const keepJammed = setInterval(() => lock.jam(), 20);
      undo(() => {
        clearInterval(keepJammed);
        lock.clearJam();
      });
      const relock = world.requestRelock(sessionId);
      undo(async () => void (await relock));
      return sessionId;
    },
  },
  {
    type: 'lock-unconfirmed',
    story: 'the lock’s link is cut as the courier asks to lock',
    means: /confirm/i,
    async cause(undo: Undo) {
      const sessionId = await parcelInside();
      world.home.links.lock.cutLink();
      undo(() => world.home.links.lock.restoreLink());
      const relock = world.requestRelock(sessionId);
      undo(async () => void (await relock));
      return sessionId;
    },
  },
  {
    type: 'lock-state-mismatch',
    story: 'the door swings open again as the bolt is thrown',
    means: /door sensor|door is open/i,
    async cause(undo: Undo) {
      const sessionId = await parcelInside();
      let opened = false;
      const off = world.sys.events.subscribe((e) => {
        if (e.type !== 'session' || e.session.id !== sessionId) return;
        if (e.session.state === 'relocking' && !opened) {
          opened = true;
          world.home.doorSensor.open();
        }
      });
      undo(() => {
        off();
        world.home.doorSensor.close();
      });
      const relock = world.requestRelock(sessionId);
      undo(async () => void (await relock));
      return sessionId;
    },
  },
  {
    type: 'session-overrun',
    story: 'the courier is still inside, door shut behind him, at the visit’s deadline',
    means: /unlocked|too long|longer/i,
    timeoutMs: 15_000,
    // The lock's own deadline is the same 4 s, counted from when its bolt was drawn; it then
    // needs its motor time (300 ms) to report locked, so the server's deadline, counted from
    // the report of the unlock, comes first and raises the alarm with the door shut.
    async cause(undo: Undo) {
      const sessionId = await doorOpensFor(await delivery(4_000));
      world.home.doorSensor.open();
      world.home.camera.setPerson(true);
      undo(() => world.home.camera.setPerson(false));
      await sleep(400);
      world.home.doorSensor.close();
      return sessionId;
    },
  },
  {
    type: 'unexpected-entry',
    story: 'with the camera cut, the bolt is drawn back by hand once the door was locked',
    means: /opened|entry/i,
    async cause(undo: Undo) {
      const sessionId = await parcelInside();
      world.home.links.camera.cutLink();
      undo(() => world.home.links.camera.restoreLink());
      // The camera's silence relocks the door; while the session still waits for a picture of
      // it locked, someone inside turns the thumb-turn.
      await world.waitFor(
        async () => {
          const s = await world.session(sessionId);
          return s.state === 'verifying' && s.lockConfirmedAt !== null;
        },
        10_000,
        'the lock confirmed it locked',
      );
      world.home.lock.turnByHand('unlocked');
      return sessionId;
    },
  },
];

/** The owner goes to the home page; the door is back to normal and the camera live. */
async function ownerAtHome(): Promise<void> {
  await clickTopbar('Threshold — home');
  await page.locator('[data-testid="live-view"][data-live-status="live"]').waitFor({
    timeout: 15_000,
  });
  expect(world.home.lock.bolt()).toBe('locked');
  expect(world.home.doorSensor.position()).toBe('closed');
}

/**
 * Clicks a link of the top bar after scrolling up, as a person does: the alarm banner stays
 * stuck to the top of the window, so on a page scrolled down it covers where the bar was.
 */
async function clickTopbar(name: string | RegExp): Promise<void> {
  await page.mouse.move(640, 430);
  await page.mouse.wheel(0, -100_000);
  await expect
    .poll(() => page.evaluate(() => (globalThis as unknown as { scrollY: number }).scrollY), {
      timeout: 5_000,
    })
    .toBe(0);
  await page
    .locator('header')
    .getByRole('link', { name, exact: typeof name === 'string' })
    .click();
}

/** The alarm `type` of `sessionId` within `scope`. */
function alarmIn(scope: Locator | Page, type: AlarmType, sessionId: string): Locator {
  return scope.locator(
    `[data-testid="alarm-item"][data-alarm-type="${type}"][data-session-id="${sessionId}"]`,
  );
}

/**
 * The alarm reads right, never as a raw code: its plain-words title and what happened; in full
 * (the visit, the alarms page) also what to do, and what the server recorded.
 */
async function readsRight(
  item: Locator,
  c: AlarmCase,
  sessionId: string,
  full: boolean,
): Promise<void> {
  const explained = alarmExplanation(c.type);
  expect(explained, `words.ts explains ${c.type}`).not.toBeNull();
  const title = await item.getByTestId('alarm-title').innerText();
  const what = await item.getByTestId('alarm-what').innerText();
  expect(title).toBe(alarmLabel(c.type));
  expect(what).toBe(explained!.what);
  expect(await item.getByTestId('alarm-advice').count()).toBe(full ? 1 : 0);
  if (full) {
    expect(await item.getByTestId('alarm-advice').innerText()).toBe(explained!.advice);
    const raised = world.alarms.find((a) => a.sessionId === sessionId && a.alarm.type === c.type);
    expect(raised).toBeDefined();
    expect(await item.getByTestId('alarm-detail').innerText()).toBe(
      `Recorded: ${raised!.alarm.message}`,
    );
  }
  expect(`${title} ${explained!.what} ${explained!.advice}`).toMatch(c.means);
  const all = await item.innerText();
  for (const code of ALARM_CODES) expect(all, `no raw "${code}"`).not.toContain(code);
}

/** Acknowledges, as the owner, whatever of the visit's alarms is still unacknowledged. */
async function ackTheRest(sessionId: string): Promise<void> {
  const list = (await ownerApi('GET', `/api/homes/${world.creds.homeId}/alarms`)) as {
    alarms: { sessionId: string; type: string; acknowledged: unknown }[];
  };
  for (const a of list.alarms.filter((x) => x.sessionId === sessionId && !x.acknowledged))
    await ownerApi('POST', `/api/sessions/${sessionId}/alarms/${a.type}/ack`);
}

describe('the owner’s web app shows each alarm type', () => {
  for (const c of CASES) {
    it(`${c.type}: ${c.story}`, async () => {
      await ownerAtHome();
      const undos: (() => void | Promise<void>)[] = [];
      let sessionId: string | null = null;
      try {
        sessionId = await c.cause((f) => undos.push(f));
        await world.waitForAlarm(sessionId, c.type, c.timeoutMs ?? 10_000);

        // The banner, on top of the page the owner has open, without a reload.
        const banner = page.getByTestId('alarm-banner');
        const inBanner = alarmIn(banner, c.type, sessionId);
        await inBanner.waitFor({ timeout: 10_000 });
        await readsRight(inBanner, c, sessionId, false);
        await expect
          .poll(() => inBanner.getByTestId('alarm-where').innerText(), { timeout: 10_000 })
          .toMatch(new RegExp(`· ${doorName} · since \\d{1,2}:\\d{2}:\\d{2}$`));
        expect(await banner.getAttribute('class')).not.toMatch(/calm/);
        await page.screenshot({ path: join(shotsDir, `alarm-${c.type}.png`), fullPage: true });

        // "See the visit": the same alarm, the same words, what to do and what was recorded.
        await inBanner.getByRole('link', { name: 'See the visit' }).click();
        await page.waitForURL(`**/sessions/${sessionId}`);
        const main = page.locator('main');
        await expect
          .poll(() => main.getByRole('heading', { level: 1 }).innerText(), { timeout: 10_000 })
          .toContain(doorName);
        const onVisit = alarmIn(main, c.type, sessionId);
        await onVisit.waitFor({ timeout: 10_000 });
        await readsRight(onVisit, c, sessionId, true);
        expect(await onVisit.getByRole('link', { name: 'See the visit' }).count()).toBe(0);
        await page.screenshot({ path: join(shotsDir, `visit-${c.type}.png`), fullPage: true });

        // Acknowledged from the visit: shown there and in the banner, and on the audit record.
        await onVisit.getByTestId('alarm-ack-page').click();
        await expect
          .poll(() => onVisit.innerText(), { timeout: 10_000 })
          .toContain(`Acknowledged by ${owner.displayName}`);
        await expect
          .poll(() => inBanner.getByTestId('alarm-acked').innerText(), { timeout: 10_000 })
          .toMatch(new RegExp(`^Acknowledged by ${owner.displayName} at \\d{1,2}:\\d{2}`));
        const acks = (await world.sys.store.audit.entriesForSubject(`session:${sessionId}`)).filter(
          (e) => e.kind === 'alarm.acknowledged' && e.data.alarm === c.type,
        );
        expect(acks.map((e) => e.actor)).toEqual([{ type: 'principal', id: owner.id }]);

        // The alarms page keeps it, acknowledged.
        await clickTopbar(/^Alarms/);
        await page.waitForURL('**/alarms');
        const onAlarms = alarmIn(main, c.type, sessionId);
        await onAlarms.waitFor({ timeout: 10_000 });
        await readsRight(onAlarms, c, sessionId, true);
        expect(await onAlarms.getByTestId('alarm-ack-page').count()).toBe(0);
      } finally {
        for (const undo of undos.reverse()) await undo();
        if (sessionId !== null) {
          await world.waitForState(sessionId, ENDED, 30_000);
          // Alarms raised on the way (observation-lost after a forgery, …) are not this test's:
          // acknowledge them so the next test's banner shows its own alarm alone.
          await ackTheRest(sessionId);
        }
      }
      const hide = page.getByTestId('alarm-banner').getByRole('button', { name: 'Hide' });
      await hide.waitFor({ timeout: 10_000 });
      await hide.click();
      await page.getByTestId('alarm-banner').waitFor({ state: 'detached', timeout: 10_000 });
      expect(problems).toEqual([]);
    }, 120_000);
  }
});
