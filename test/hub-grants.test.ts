/**
 * The hub's offline grant list end to end: a real embedded broker on loopback, a real hub
 * started from a YAML config with a memory lock, and the test acting as the control plane with
 * the server's own broker identity (it publishes signed grant lists, retained, and sends signed
 * commands, as `threshold serve` does). The list's key is one the test made.
 *
 * - a courier's unlock opens only on a fresh list that names its grant (the list may come a
 *   moment after the command); a stale list, no list or a grant not listed is refused with the
 *   reason, the bolt does not move, and the refusal reaches the control plane as a hub fact;
 * - the household's unlock does not depend on the list;
 * - with the broker stopped (the control plane unreachable), a guest's keypad code whose
 *   command window has closed still opens in the window the list gives it, and stops at the
 *   list's horizon.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { startEmbeddedBroker, type EmbeddedBroker } from '../src/broker/embedded-broker.ts';
import { serverMqttCredentials } from '../src/broker/server-credentials.ts';
import { silentLogger } from '../src/devices/device-connection.ts';
import { loadHubConfig } from '../src/hub/config.ts';
import type { MemoryLock } from '../src/hub/drivers/memory.ts';
import { Hub } from '../src/hub/hub.ts';
import { deriveDeviceKey, sign } from '../src/protocol/device-auth.ts';
import type {
  CommandMessage,
  DeviceEventMessage,
  ReplyMessage,
} from '../src/protocol/device-messages.ts';
import type { ListedDeliveryMessage, ListedPinMessage } from '../src/protocol/grant-list.ts';
import { pinDigest } from '../src/protocol/pin-digest.ts';
import { systemClock } from '../src/protocol/system-clock.ts';
import { deviceTopic } from '../src/protocol/topics.ts';
import { payloadOf, testGrantSigner } from './grant-lists.ts';

const HOME = 'home-1';
const LOCK = 'lock-1';
const GRANT = 'grant-delivery-1';
/** The hub's default bound, 15 min. */
const MAX_AGE_MS = 900_000;

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function until(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function delivery(grantId = GRANT): ListedDeliveryMessage {
  const now = Date.now();
  return {
    grantId,
    deliveryId: 'delivery-1',
    courierId: 'courier-1',
    fromMs: now - 60_000,
    untilMs: now + 3_600_000,
  };
}

/**
 * A broker, the test as its control plane, and a hub for one memory lock with a keypad, whose
 * config names the test's grant key. `beforeHub` runs before the hub starts (a retained list).
 */
async function homeWithHub(beforeHub?: (cp: ControlPlane) => Promise<void>) {
  const master = randomBytes(32);
  const broker = await startEmbeddedBroker({
    masterKey: master,
    lookupDevice: (id) => (id === LOCK ? { homeId: HOME } : undefined),
    server: serverMqttCredentials(master),
  });
  cleanups.push(() => broker.close());
  const lockKey = deriveDeviceKey(master, LOCK);
  const cp = await controlPlane(broker, master, lockKey);
  await beforeHub?.(cp);

  const dir = mkdtempSync(join(tmpdir(), 'threshold-hub-grants-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const configPath = join(dir, 'hub.yaml');
  writeFileSync(
    configPath,
    `controlPlane:
  url: ${broker.url}
  grantKey: ${cp.signer.publicKey}
homeId: ${HOME}
dataDir: ./hub-data
devices:
  - id: ${LOCK}
    kind: lock
    secret: ${lockKey.toString('base64url')}
    driver: memory
    options: { motorDelayMs: 100, pinCapacity: 10 }
`,
    { mode: 0o600 },
  );
  const config = loadHubConfig(configPath);
  expect(config.warnings).toEqual([]);
  const hub = new Hub({
    config,
    clock: systemClock,
    logger: silentLogger,
    link: { reconnectPeriodMs: 200 },
  });
  cleanups.push(() => hub.stop());
  await hub.start();
  await hub.waitUntilConnected(10_000);
  const lock = hub.driver(LOCK) as MemoryLock;
  const book = hub.grantBook(LOCK);
  return { broker, cp, hub, lock, book, lockKey };
}

type ControlPlane = Awaited<ReturnType<typeof controlPlane>>;

/** The server's side: signed commands, their replies, the lock's events, retained lists. */
async function controlPlane(broker: EmbeddedBroker, master: Buffer, lockKey: Buffer) {
  const signer = testGrantSigner({ homeId: HOME, lockId: LOCK });
  const { username, password } = serverMqttCredentials(master);
  const client = await mqtt.connectAsync(broker.url, {
    clientId: `${username}-grants-test`,
    username,
    password,
    reconnectPeriod: 0,
  });
  cleanups.push(() => client.endAsync(true));
  const replies = new Map<string, ReplyMessage>();
  const events: DeviceEventMessage[] = [];
  const replyTopic = deviceTopic(HOME, LOCK, 'reply');
  const eventTopic = deviceTopic(HOME, LOCK, 'event');
  client.on('message', (topic, payload) => {
    if (topic === replyTopic) {
      const reply = JSON.parse(payload.toString()) as ReplyMessage;
      replies.set(reply.id, reply);
    } else if (topic === eventTopic) {
      events.push(JSON.parse(payload.toString()) as DeviceEventMessage);
    }
  });
  await client.subscribeAsync([replyTopic, eventTopic], { qos: 1 });
  let version = 0;
  return {
    signer,
    events,
    /** Publishes the lock's list, retained, issued `agoMs` ago; resolves with its version. */
    async publishList(
      fields: {
        deliveries?: ListedDeliveryMessage[];
        pins?: ListedPinMessage[];
        horizonMs?: number;
      },
      agoMs = 0,
    ): Promise<number> {
      version += 1;
      const issuedAtMs = Date.now() - agoMs;
      const signed = signer.list({
        version,
        issuedAtMs,
        horizonMs: fields.horizonMs ?? issuedAtMs + 3_600_000,
        deliveries: fields.deliveries ?? [],
        pins: fields.pins ?? [],
      });
      await client.publishAsync(deviceTopic(HOME, LOCK, 'grants'), payloadOf(signed), {
        qos: 1,
        retain: true,
      });
      return version;
    },
    /** Sends a signed command to the lock; resolves with the reply. */
    async send(
      fields: Omit<CommandMessage, 'id' | 'nonce' | 'issuedAt' | 'expiresAt' | 'mac'>,
      timeoutMs = 10_000,
    ): Promise<ReplyMessage> {
      const topic = deviceTopic(HOME, LOCK, 'command');
      const now = Date.now();
      const command = sign<CommandMessage>(lockKey, topic, {
        id: randomBytes(12).toString('base64url'),
        nonce: randomBytes(18).toString('base64url'),
        issuedAt: now,
        expiresAt: now + 30_000,
        ...fields,
      });
      await client.publishAsync(topic, Buffer.from(JSON.stringify(command)), { qos: 1 });
      await until(() => replies.has(command.id), timeoutMs, `the reply to ${fields.action}`);
      return replies.get(command.id)!;
    },
  };
}

const courierUnlock = (grantId = GRANT) =>
  ({
    action: 'unlock',
    sessionId: 'session-1',
    accessKind: 'courier',
    grantId,
    relockAfterMs: 60_000,
  }) as const;

describe('the hub checks courier unlocks against its grant list', () => {
  it('opens for a courier on a fresh list naming the grant, taken from the retained topic at connection', async () => {
    let published = 0;
    const { cp, lock, book } = await homeWithHub(async (cp) => {
      published = await cp.publishList({ deliveries: [delivery()] });
    });
    await until(() => book.current()?.version === published, 5_000, 'the hub holds the list');
    expect(await cp.send(courierUnlock())).toMatchObject({
      status: 'ok',
      data: { bolt: 'unlocked' },
    });
    expect(lock.actualBolt()).toBe('unlocked');
  }, 30_000);

  it('refuses a courier on a stale list, keeps the bolt thrown, and tells the control plane why', async () => {
    const { cp, lock, book } = await homeWithHub();
    const v = await cp.publishList({ deliveries: [delivery()] }, MAX_AGE_MS + 12_000);
    await until(() => book.current()?.version === v, 5_000, 'the hub holds the list');
    const reply = await cp.send(courierUnlock());
    expect(reply).toMatchObject({ status: 'error', error: { code: 'grants.stale' } });
    const message = reply.status === 'error' ? reply.error.message : '';
    expect(message).toMatch(/^courier unlock refused: grant list 91[23] s old \(bound 900 s\)$/);
    await sleep(300);
    expect(lock.actualBolt()).toBe('locked');
    // The hub's log carries the refusal to the control plane, signed by the lock.
    await until(
      () => cp.events.some((e) => e.name === 'hub.observed'),
      5_000,
      'the refusal reaches the control plane',
    );
    const fact = cp.events.find((e) => e.name === 'hub.observed')!;
    expect(JSON.parse(fact.detail!)).toMatchObject({ session: 'session-1', why: message });

    // The household's own unlock does not depend on the list.
    expect(
      await cp.send({ action: 'unlock', accessKind: 'household', relockAfterMs: 60_000 }),
    ).toMatchObject({ status: 'ok', data: { bolt: 'unlocked' } });
    expect(lock.actualBolt()).toBe('unlocked');
  }, 30_000);

  it('without any list, waits a moment, then refuses: grants.none', async () => {
    const { cp, lock } = await homeWithHub();
    const sent = Date.now();
    expect(await cp.send(courierUnlock())).toMatchObject({
      status: 'error',
      error: { code: 'grants.none' },
    });
    expect(Date.now() - sent).toBeGreaterThanOrEqual(2_900);
    expect(lock.actualBolt()).toBe('locked');
  }, 30_000);

  it('refuses a grant the list does not name after waiting, and opens when the list naming it comes during the wait', async () => {
    const { cp, lock, book } = await homeWithHub();
    const v = await cp.publishList({ deliveries: [delivery('grant-other')] });
    await until(() => book.current()?.version === v, 5_000, 'the hub holds the list');
    const sent = Date.now();
    expect(await cp.send(courierUnlock())).toMatchObject({
      status: 'error',
      error: { code: 'grants.not-listed' },
    });
    expect(Date.now() - sent).toBeGreaterThanOrEqual(2_900);
    expect(lock.actualBolt()).toBe('locked');

    // The control plane books the delivery a moment after sending the unlock.
    const answer = cp.send(courierUnlock());
    await sleep(800);
    expect(lock.actualBolt()).toBe('locked');
    await cp.publishList({ deliveries: [delivery('grant-other'), delivery()] });
    expect(await answer).toMatchObject({ status: 'ok', data: { bolt: 'unlocked' } });
    expect(lock.actualBolt()).toBe('unlocked');
  }, 30_000);
});

describe('guests keep coming in while the control plane is unreachable', () => {
  it("a guest's code opens in its listed window after its command window closed, and stops at the horizon", async () => {
    const { broker, cp, hub, lock, book, lockKey } = await homeWithHub();
    const t0 = Date.now();
    // The list the control plane sent last: the guest's next visit, and a horizon soon after.
    const listed: ListedPinMessage = {
      slot: 2,
      digest: pinDigest(lockKey, 2, '482915'),
      holder: 'guest',
      principalId: 'guest-1',
      windows: [{ fromMs: t0 + 4_000, untilMs: t0 + 60_000 }],
    };
    const v = await cp.publishList({ pins: [listed], horizonMs: t0 + 7_000 });
    await until(() => book.current()?.version === v, 5_000, 'the hub holds the list');
    // The code, written with a short command window (the control plane's lease).
    expect(
      await cp.send({
        action: 'pin.set',
        slot: 2,
        code: '482915',
        name: 'Sam',
        fromMs: t0,
        untilMs: t0 + 2_000,
      }),
    ).toMatchObject({ status: 'ok' });

    // The control plane goes away for good.
    await broker.close();
    await until(() => !hub.isConnected(), 5_000, 'the hub notices');
    const typed = async (atMs: number) => {
      await sleep(t0 + atMs - Date.now());
      return lock.enterCode('482915');
    };
    expect(await typed(1_000)).toBe('unlocked');
    // Between the command window and the listed one: the code is off the lock.
    expect(await typed(3_000)).toBe('wrong-code');
    expect(await typed(5_000)).toBe('unlocked');
    expect(hub.isConnected()).toBe(false);
    // Past the list's horizon nothing in it lets anyone in.
    expect(await typed(7_500)).toBe('wrong-code');
    expect(lock.pins!.codeIn(2)).toBeUndefined();
  }, 30_000);
});
