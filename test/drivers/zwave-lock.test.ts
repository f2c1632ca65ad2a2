/**
 * The Z-Wave lock driver over the real zwave-js `Driver`, talking through zwave-js's own mock
 * serial port to its mock controller (`MockController`) and a mock node (`MockNode`) that has
 * Door Lock, User Code, Notification and Supervision command classes.
 *
 * zwave-js's stock mock behaviours answer the interview and the User Code commands; the Door
 * Lock's Operation Set/Get are answered by {@link MockDoorLock} below, a model of a real lock's
 * radio behaviour: it accepts a command (Supervision Success, or Working while its motor runs),
 * then reports by itself with an Access Control notification ("RF lock operation", "Lock
 * jammed", …) and an Operation Report, as locks do; a hand on the thumb-turn, a keypad entry
 * or a jam arrive the same way. "Offline" is a radio that neither acknowledges nor answers,
 * which zwave-js only notices when a transmission fails (the driver's liveness ping).
 *
 * One controller and one node serve the whole file (a zwave-js start and interview takes
 * seconds); each test resets the node and starts a new driver over the shared network.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MockPort } from '@zwave-js/serial/mock';
import {
  MockController,
  MockNode,
  ccCaps,
  createMockZWaveRequestFrame,
  type MockNodeBehavior,
} from '@zwave-js/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  DoorLockCCOperationGet,
  DoorLockCCOperationReport,
  DoorLockCCOperationSet,
  DoorLockMode,
  Duration,
  NodeStatus,
  NotificationCCReport,
  type CommandClass,
  type Driver,
  type ZWaveNode,
} from 'zwave-js';
import {
  createDefaultMockControllerBehaviors,
  createDefaultMockNodeBehaviors,
} from 'zwave-js/Testing';
import type { LockDriverEvent } from '../../src/hub/drivers/driver.ts';
import {
  ZWaveLock,
  boltOfDoorLockMode,
  type ZWaveLockOptions,
} from '../../src/hub/drivers/zwave-lock.ts';
import { ZWaveNetwork, parseSecurityKeys } from '../../src/hub/drivers/zwave-network.ts';
import { createZWaveDriverFactory } from '../../src/hub/drivers/zwave-factory.ts';
import { HubConfigError, parseHubConfig } from '../../src/hub/config.ts';
import { FakeClock } from '../../src/core/clock.ts';
import { expectDriverError, sleep, waitUntil } from './contract-helpers.ts';
import { describeLockDriverContract, type LockDeviceSide } from './lock-contract.ts';

const NODE_ID = 2;
const USERS = 8;
/** Command class ids, as `CommandClasses` in `@zwave-js/core` numbers them. */
const CC = { doorLock: 0x62, userCode: 0x63, notification: 0x71, supervision: 0x6c } as const;
/** Access Control notification events (`@zwave-js/core` notification registry). */
const AC = {
  manualLock: 0x01,
  manualUnlock: 0x02,
  rfLock: 0x03,
  rfUnlock: 0x04,
  keypadUnlock: 0x06,
  jammed: 0x0b,
  keypadDisabled: 0x10,
  codeLimitExceeded: 0x13,
  unlockWithUserCode: 0x22,
  invalidCredential: 0x32,
} as const;
const HANDLES: [boolean, boolean, boolean, boolean] = [true, true, true, true];

/** The lock behind the radio: its bolt, its motor, its radio link. */
class MockDoorLock implements LockDeviceSide {
  mode: 'locked' | 'unlocked' = 'locked';
  jammed = false;
  online = true;
  /** The lock does not report by itself; only an Operation Get tells its bolt. */
  silent = false;
  /** How long the motor runs, ms (0: at once). */
  travelMs = 0;
  refuseNext = false;
  private jamNext = false;
  private holding = false;
  private held: { target: 'locked' | 'unlocked'; cc: CommandClass } | null = null;
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(
    readonly node: MockNode,
    private readonly controller: MockController,
  ) {
    const behaviour: MockNodeBehavior = {
      handleCC: (_controller, _self, cc) => {
        // A lock that is out of range hears nothing and answers nothing.
        if (!this.online) return { action: 'stop' };
        if (cc instanceof DoorLockCCOperationGet) {
          return { action: 'sendCC', cc: this.operationReport() };
        }
        if (cc instanceof DoorLockCCOperationSet) return this.onSet(cc);
        return undefined;
      },
    };
    node.defineBehavior(behaviour);
  }

  bolt(): 'locked' | 'unlocked' | 'jammed' {
    return this.jammed ? 'jammed' : this.mode;
  }

  /** Back to a locked, reachable, idle lock with an empty keypad. */
  async reset(bolt: 'locked' | 'unlocked', zwaveNode: ZWaveNode): Promise<void> {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    this.mode = bolt;
    this.jammed = false;
    this.jamNext = false;
    this.holding = false;
    this.held = null;
    this.silent = false;
    this.travelMs = 0;
    this.refuseNext = false;
    await this.goOnline();
    for (let slot = 1; slot <= USERS; slot += 1) {
      // The stock User Code behaviour keeps its codes in the node's state under these keys.
      this.node.state.delete(`UserCode_userIdStatus_${slot}`);
      this.node.state.delete(`UserCode_userCode_${slot}`);
    }
    // A jam from an earlier test ends as a real lock ends one: "Lock state" back to idle.
    if (
      zwaveNode.getValue({
        commandClass: CC.notification,
        property: 'Access Control',
        propertyKey: 'Lock state',
      }) === AC.jammed
    ) {
      await this.notify(0x00, Uint8Array.from([AC.jammed]));
    }
    if (zwaveNode.status !== NodeStatus.Alive) {
      // zwave-js still believes the lock is away: let it find out that it is back.
      await waitUntilAsync(() => zwaveNode.ping(), 'the node to be alive again');
    }
  }

  async turnByHand(bolt: 'locked' | 'unlocked'): Promise<void> {
    this.mode = bolt;
    this.jammed = false;
    await this.notify(bolt === 'locked' ? AC.manualLock : AC.manualUnlock);
    await this.report();
  }

  jamNextMove(): void {
    this.jamNext = true;
  }

  holdMovements(): void {
    this.holding = true;
  }

  releaseMovements(): void {
    this.holding = false;
    const held = this.held;
    this.held = null;
    if (held) this.later(0, () => this.finishMove(held.target, held.cc));
  }

  async goOffline(): Promise<void> {
    this.online = false;
    this.node.autoAckControllerFrames = false;
  }

  async goOnline(): Promise<void> {
    this.online = true;
    this.node.autoAckControllerFrames = true;
  }

  async keypadUnlock(slot: number): Promise<void> {
    this.mode = 'unlocked';
    // The event parameters are a User Code Report: CC, command, user id, status, code.
    const code = [...Buffer.from('2468')];
    await this.notify(AC.keypadUnlock, Uint8Array.from([CC.userCode, 0x03, slot, 0x01, ...code]));
    await this.report();
  }

  /** Sends an Access Control notification as the lock's own report. */
  async notify(event: number, parameters?: Uint8Array<ArrayBuffer>): Promise<void> {
    if (!this.online) return;
    const cc = new NotificationCCReport({
      nodeId: this.controller.ownNodeId,
      notificationType: 0x06,
      notificationEvent: event,
      ...(parameters ? { eventParameters: parameters } : {}),
    });
    await this.node.sendToController(createMockZWaveRequestFrame(cc, { ackRequested: false }));
  }

  /** Sends the lock's Operation Report by itself. */
  async report(): Promise<void> {
    if (!this.online || this.silent) return;
    await this.node.sendToController(
      createMockZWaveRequestFrame(this.operationReport(), { ackRequested: false }),
    );
  }

  close(): void {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }

  private operationReport(): DoorLockCCOperationReport {
    const mode = this.mode === 'locked' ? DoorLockMode.Secured : DoorLockMode.Unsecured;
    const moving = this.held ?? this.moving;
    const target = moving
      ? moving.target === 'locked'
        ? DoorLockMode.Secured
        : DoorLockMode.Unsecured
      : mode;
    return new DoorLockCCOperationReport({
      nodeId: this.controller.ownNodeId,
      currentMode: mode,
      targetMode: target,
      duration: new Duration(moving ? Math.ceil(this.travelMs / 1000) : 0, 'seconds'),
      outsideHandlesCanOpenDoor: HANDLES,
      insideHandlesCanOpenDoor: HANDLES,
    });
  }

  private moving: { target: 'locked' | 'unlocked' } | null = null;

  private onSet(cc: DoorLockCCOperationSet) {
    if (this.refuseNext) {
      this.refuseNext = false;
      return { action: 'fail' } as const;
    }
    const target = cc.mode === DoorLockMode.Secured ? 'locked' : 'unlocked';
    if (this.holding) {
      this.held = { target, cc };
      // Supervision "Working": taken, and the motor has not finished.
      return { action: 'ok', durationMs: 10_000 } as const;
    }
    if (this.travelMs > 0) {
      this.moving = { target };
      this.later(this.travelMs, () => this.finishMove(target, cc));
      return { action: 'ok', durationMs: this.travelMs } as const;
    }
    this.later(5, () => this.finishMove(target, null));
    return { action: 'ok' } as const;
  }

  /** The motor stops: the bolt is where it got to, and the lock says so. */
  private async finishMove(
    target: 'locked' | 'unlocked',
    supervised: CommandClass | null,
  ): Promise<void> {
    this.moving = null;
    if (this.jamNext) {
      this.jamNext = false;
      this.jammed = true;
      await this.notify(AC.jammed);
      return;
    }
    this.mode = target;
    this.jammed = false;
    // A supervised command that answered "Working" ends with "Success".
    if (supervised && this.online) await this.node.sendResponse(supervised, { action: 'ok' });
    if (this.silent) return;
    await this.notify(target === 'locked' ? AC.rfLock : AC.rfUnlock);
    await this.report();
  }

  private later(ms: number, run: () => Promise<void>): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      run().catch(() => undefined);
    }, ms);
    timer.unref();
    this.timers.add(timer);
  }
}

/** Polls an async condition (a ping) until it holds. */
async function waitUntilAsync(
  condition: () => Promise<boolean>,
  what: string,
  ms = 10_000,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(50);
  }
}

/** A Z-Wave network on a fresh mock serial port, with a mock controller and one mock lock. */
interface MockNetwork {
  readonly network: ZWaveNetwork;
  readonly driver: Driver;
  readonly zwaveNode: ZWaveNode;
  readonly lock: MockDoorLock;
  close(): Promise<void>;
}

async function openMockNetwork(
  options: { readonly supervision?: boolean } = {},
): Promise<MockNetwork> {
  const cacheDir = mkdtempSync(join(tmpdir(), 'threshold-zwave-'));
  const mockPort = new MockPort();
  let controller: MockController | undefined;
  let lock: MockDoorLock | undefined;
  const network = new ZWaveNetwork({
    port: mockPort.factory(),
    cacheDir,
    securityKeys: {
      S2_AccessControl: '33333333333333333333333333333333',
      S2_Authenticated: '22222222222222222222222222222222',
      S2_Unauthenticated: '11111111111111111111111111111111',
      S0_Legacy: '0102030405060708090a0b0c0d0e0f10',
    },
    openTimeoutMs: 30_000,
    driverOptions: {
      testingHooks: {
        // zwave-js opens the port, then waits for this before it talks to the controller:
        // the mock controller and node must be listening by then.
        onSerialPortOpen: async (serial) => {
          controller = await MockController.create({
            mockPort,
            serial,
            homeId: 0x7e570001,
            ownNodeId: 1,
          });
          controller.defineBehavior(...createDefaultMockControllerBehaviors());
          const node = await MockNode.create({
            id: NODE_ID,
            controller,
            capabilities: {
              // A battery lock's radio: frequently listening (woken by a beam).
              isListening: false,
              isFrequentListening: '1000ms',
              genericDeviceClass: 0x40, // Entry Control
              specificDeviceClass: 0x03, // Secure Keypad Door Lock
              commandClasses: [
                ccCaps({
                  ccId: CC.doorLock,
                  isSupported: true,
                  version: 4,
                  supportedOperationTypes: [0x01],
                  supportedDoorLockModes: [DoorLockMode.Unsecured, DoorLockMode.Secured],
                }),
                ccCaps({ ccId: CC.userCode, isSupported: true, version: 1, numUsers: USERS }),
                ccCaps({
                  ccId: CC.notification,
                  isSupported: true,
                  version: 8,
                  supportsV1Alarm: false,
                  notificationTypesAndEvents: { [0x06]: Object.values(AC) },
                }),
                // Older locks (Z-Wave Plus v1) have no Supervision: a radio ACK is all they say.
                ...(options.supervision === false ? [] : [CC.supervision]),
              ],
            },
          });
          controller.addNode(node);
          node.defineBehavior(...createDefaultMockNodeBehaviors());
          lock = new MockDoorLock(node, controller);
        },
        // Checking for a bootloader only costs time against a mock controller.
        skipFirmwareIdentification: true,
      },
    },
  });
  const driver = await network.acquire();
  const zwaveNode = driver.controller.nodes.get(NODE_ID);
  if (!zwaveNode || !lock || !controller) throw new Error('the mock network did not come up');
  if (!zwaveNode.ready)
    await new Promise<void>((resolve) => zwaveNode.once('ready', () => resolve()));
  const mock = lock;
  const mockController = controller;
  return {
    network,
    driver,
    zwaveNode,
    lock: mock,
    async close() {
      mock.close();
      await network.release();
      mockController.destroy();
      mockPort.destroy();
      rmSync(cacheDir, { recursive: true, force: true });
    },
  };
}

/** Test timing: a dead lock is noticed within a ping's one-second acknowledgement timeout. */
const FAST: Partial<ZWaveLockOptions> = {
  requireSecurityClass: 'none',
  livenessIntervalMs: 200,
  deadProbeIntervalMs: 200,
  checkIntervalMs: 100,
  commandTimeoutMs: 8000,
  startTimeoutMs: 20_000,
};

let mock: MockNetwork;

beforeAll(async () => {
  mock = await openMockNetwork();
}, 30_000);

afterAll(async () => {
  await mock?.close();
});

describeLockDriverContract('zwave-js (mock controller and Door Lock node)', async (options) => {
  await mock.lock.reset(options.bolt ?? 'locked', mock.zwaveNode);
  if (options.online === false) await mock.lock.goOffline();
  const driver = new ZWaveLock({
    id: 'front-door',
    network: mock.network,
    nodeId: NODE_ID,
    ...FAST,
    // The contract registers a listener that throws on purpose; no warning for it.
    onListenerError: () => undefined,
  });
  return {
    driver,
    device: mock.lock,
    reportsManual: true,
    holdsConnections: true,
    heldResources: () => driver.heldResources(),
    close: async () => {
      await driver.stop();
    },
  };
});

describe('ZWaveLock beyond the contract', () => {
  let driver: ZWaveLock | undefined;
  let events: LockDriverEvent[] = [];

  async function started(overrides: Partial<ZWaveLockOptions> = {}): Promise<ZWaveLock> {
    await mock.lock.reset('locked', mock.zwaveNode);
    driver = new ZWaveLock({
      id: 'front-door',
      network: mock.network,
      nodeId: NODE_ID,
      ...FAST,
      ...overrides,
    });
    events = [];
    driver.on((e) => events.push(e));
    await driver.start();
    return driver;
  }

  afterEach(async () => {
    await driver?.stop();
    driver = undefined;
  });

  it('reports wrong codes and a keypad lockout as the lock notifies them', async () => {
    await started();
    events = [];
    await mock.lock.notify(AC.invalidCredential);
    await mock.lock.notify(AC.codeLimitExceeded);
    await mock.lock.notify(AC.keypadDisabled);
    await waitUntil(() => events.length >= 3, 'three keypad events');
    expect(events.map((e) => e.type)).toEqual([
      'keypad-wrong-code',
      'keypad-lockout',
      'keypad-lockout',
    ]);
    expect(events[1]).toMatchObject({ untilMs: null });
  });

  it('reads the slot of "Unlock operation with User Code"', async () => {
    await started();
    events = [];
    await mock.lock.notify(AC.unlockWithUserCode, Uint8Array.from([0x00, 0x05]));
    await waitUntil(() => events.some((e) => e.type === 'keypad-unlocked'), 'the keypad event');
    expect(events).toContainEqual(expect.objectContaining({ type: 'keypad-unlocked', slot: 5 }));
  });

  it('passes a refusal on as device.refused and reports no movement', async () => {
    const lock = await started();
    events = [];
    mock.lock.refuseNext = true;
    await expectDriverError(lock.unlock(), 'device.refused');
    await sleep(300);
    expect(lock.bolt()).toBe('locked');
    expect(events.filter((e) => e.type === 'state')).toEqual([]);
  });

  it('reads the bolt back from a lock that does not report by itself', async () => {
    const lock = await started();
    mock.lock.silent = true;
    await lock.unlock();
    await waitUntil(() => lock.bolt() === 'unlocked', 'the bolt read back');
    expect(
      events.filter((e) => e.type === 'state').map((e) => (e.type === 'state' ? e.bolt : '')),
    ).toEqual(['locked', 'unlocked']);
  });

  it('does not call a slow lock unlocked when it answers "Working", only when it reports', async () => {
    const lock = await started();
    mock.lock.silent = true;
    mock.lock.travelMs = 1500;
    await lock.unlock();
    // Taken: the motor runs; the bolt is still thrown and the driver must say so.
    await sleep(600);
    expect(mock.lock.bolt()).toBe('locked');
    expect(lock.bolt()).toBe('locked');
    // The driver reads the bolt again once the announced travel time has passed.
    await waitUntil(() => lock.bolt() === 'unlocked', 'the bolt after the motor stopped', 6000);
    expect(mock.lock.bolt()).toBe('unlocked');
  });

  it('stores codes on the lock itself (User Code CC), and never reads them back to us', async () => {
    const lock = await started();
    const pins = lock.pins;
    if (!pins) throw new Error('expected a keypad');
    expect(pins.capacity()).toBe(USERS);
    await pins.set(4, '482913');
    expect(mock.lock.node.state.get('UserCode_userCode_4')).toBe('482913');
    expect(await pins.occupied()).toEqual([4]);
    // Reading the slots made the lock send the code; zwave-js must not keep it.
    const codeValue = {
      commandClass: CC.userCode,
      endpoint: 0,
      property: 'userCode',
      propertyKey: 4,
    };
    expect(mock.zwaveNode.getValue({ ...codeValue, property: 'userIdStatus' })).toBe(1);
    expect(mock.zwaveNode.getValue(codeValue)).toBeUndefined();
    await pins.clear(4);
    expect(mock.lock.node.state.get('UserCode_userCode_4')).toBeUndefined();
  });

  it('refuses a lock that was not included with S2 Access Control, and holds nothing', async () => {
    await mock.lock.reset('locked', mock.zwaveNode);
    driver = new ZWaveLock({
      id: 'front-door',
      network: mock.network,
      nodeId: NODE_ID,
      ...FAST,
      requireSecurityClass: 'S2_AccessControl',
    });
    await expectDriverError(driver.start(), 'device.unsupported');
    expect(driver.available()).toBe(false);
    expect(driver.heldResources()).toBe(0);
  });

  it('refuses a node id that is not in the network', async () => {
    driver = new ZWaveLock({ id: 'front-door', network: mock.network, nodeId: 77, ...FAST });
    await expectDriverError(driver.start(), 'device.unavailable');
    expect(driver.heldResources()).toBe(0);
  });

  it('maps every Door Lock mode onto a bolt', () => {
    expect(boltOfDoorLockMode(DoorLockMode.Secured)).toBe('locked');
    expect(boltOfDoorLockMode(DoorLockMode.InsideUnsecured)).toBe('locked');
    expect(boltOfDoorLockMode(DoorLockMode.Unsecured)).toBe('unlocked');
    expect(boltOfDoorLockMode(DoorLockMode.OutsideUnsecuredWithTimeout)).toBe('unlocked');
    expect(boltOfDoorLockMode(DoorLockMode.Unknown)).toBe('unknown');
    expect(boltOfDoorLockMode(undefined)).toBe('unknown');
  });
});

describe('a lock without Supervision (its radio acknowledgement is the acceptance)', () => {
  let plain: MockNetwork;
  let driver: ZWaveLock | undefined;

  beforeAll(async () => {
    plain = await openMockNetwork({ supervision: false });
  }, 30_000);

  afterAll(async () => {
    await plain?.close();
  });

  afterEach(async () => {
    await driver?.stop();
    driver = undefined;
  });

  it('reports the bolt only when the lock does, never when the command was acknowledged', async () => {
    await plain.lock.reset('locked', plain.zwaveNode);
    const lock = new ZWaveLock({
      id: 'back-door',
      network: plain.network,
      nodeId: NODE_ID,
      ...FAST,
    });
    driver = lock;
    const states: string[] = [];
    lock.on((e) => {
      if (e.type === 'state') states.push(e.bolt);
    });
    await lock.start();
    plain.lock.holdMovements();
    await lock.unlock();
    await sleep(300);
    // zwave-js's setValue would have set currentMode to the target here; the driver must not.
    expect(lock.bolt()).toBe('locked');
    plain.lock.releaseMovements();
    await waitUntil(() => lock.bolt() === 'unlocked', 'the lock to report the bolt drawn');
    expect(states).toEqual(['locked', 'unlocked']);
  });

  it('reads the bolt back when the lock does not report by itself', async () => {
    await plain.lock.reset('unlocked', plain.zwaveNode);
    const lock = new ZWaveLock({
      id: 'back-door',
      network: plain.network,
      nodeId: NODE_ID,
      ...FAST,
    });
    driver = lock;
    await lock.start();
    plain.lock.silent = true;
    await lock.lock();
    await waitUntil(() => lock.bolt() === 'locked', 'the bolt read back');
  });
});

describe('ZWaveNetwork', () => {
  it('rejects malformed, unknown and reused network keys', () => {
    expect(() => parseSecurityKeys({ S2_AccessControl: 'abc' })).toThrow(/32 hex digits/);
    expect(() => parseSecurityKeys({ S2_AccessControl: 'zz'.repeat(16) })).toThrow(/32 hex digits/);
    expect(() => parseSecurityKeys({ S3: '00'.repeat(16) } as never)).toThrow(
      /unknown security key/,
    );
    expect(() =>
      parseSecurityKeys({ S2_AccessControl: 'ab'.repeat(16), S2_Authenticated: 'AB'.repeat(16) }),
    ).toThrow(/its own key/);
    expect(parseSecurityKeys({ S2_AccessControl: '0f'.repeat(16) }).S2_AccessControl).toEqual(
      new Uint8Array(16).fill(0x0f),
    );
  });

  it('leaves a lock unavailable while its controller cannot be opened, and retries', async () => {
    const cacheDir = mkdtempSync(join(tmpdir(), 'threshold-zwave-'));
    /** Counts the attempts to open the controller. */
    class CountingNetwork extends ZWaveNetwork {
      attempts = 0;
      override acquire(): Promise<Driver> {
        this.attempts += 1;
        return super.acquire();
      }
    }
    // Nothing listens on this port: like a ser2net box that is switched off.
    const network = new CountingNetwork({
      port: 'tcp://127.0.0.1:9',
      cacheDir,
      openTimeoutMs: 800,
    });
    const lock = new ZWaveLock({ id: 'front-door', network, nodeId: NODE_ID, ...FAST });
    const seen: LockDriverEvent[] = [];
    lock.on((e) => seen.push(e));
    try {
      await lock.start();
      expect(lock.available()).toBe(false);
      expect(lock.bolt()).toBe('unknown');
      expect(seen).toEqual([
        expect.objectContaining({ type: 'availability', available: false }),
        expect.objectContaining({ type: 'state', bolt: 'unknown' }),
      ]);
      await expectDriverError(lock.lock(), 'device.unavailable');
      await waitUntil(() => network.attempts >= 2, 'a second attempt to open the controller');
      expect(network.driver).toBeNull();
    } finally {
      await lock.stop();
      rmSync(cacheDir, { recursive: true, force: true });
    }
    expect(lock.heldResources()).toBe(0);
  });

  it('opens once for several locks and closes the controller when the last one stops', async () => {
    const second = await openMockNetwork();
    try {
      const a = new ZWaveLock({ id: 'a', network: second.network, nodeId: NODE_ID, ...FAST });
      const b = new ZWaveLock({ id: 'b', network: second.network, nodeId: NODE_ID, ...FAST });
      await a.start();
      await b.start();
      expect(a.bolt()).toBe('locked');
      expect(b.bolt()).toBe('locked');
      await a.stop();
      // The test's own share and b's keep it open.
      expect(second.driver.ready).toBe(true);
      await b.unlock();
      await waitUntil(() => b.bolt() === 'unlocked', 'b to see the bolt drawn');
      await b.stop();
      expect(second.driver.ready).toBe(true);

      // The controller fails under a running lock (zwave-js gives up on a stick that went
      // away): the lock says it is unreachable, without being asked.
      const c = new ZWaveLock({ id: 'c', network: second.network, nodeId: NODE_ID, ...FAST });
      const seen: LockDriverEvent[] = [];
      c.on((e) => seen.push(e));
      await c.start();
      expect(c.available()).toBe(true);
      seen.length = 0;
      await second.driver.destroy();
      await waitUntil(() => seen.length >= 2, 'the lock to notice');
      expect(seen).toEqual([
        expect.objectContaining({ type: 'availability', available: false }),
        expect.objectContaining({ type: 'state', bolt: 'unknown' }),
      ]);
      await expectDriverError(c.unlock(), 'device.unavailable');
      await c.stop();
    } finally {
      await second.close();
    }
    expect(second.network.driver).toBeNull();
    expect(second.driver.ready).toBe(false);
  });
});

describe('driver: zwave in a hub config', () => {
  const KEY_A = 'A1'.repeat(16);
  const KEY_B = 'B2'.repeat(16);
  const config = (options: string): string => `
controlPlane: { url: mqtt://127.0.0.1:1883 }
homeId: home-1
devices:
  - id: front-lock
    kind: lock
    secret: ${'a'.repeat(43)}
    driver: zwave
    options: ${options}
`;
  const drivers = () => new Map([['zwave', createZWaveDriverFactory()]]);
  const problemsOf = (options: string): readonly string[] => {
    try {
      parseHubConfig(config(options), { baseDir: tmpdir(), drivers: drivers() });
      return [];
    } catch (err) {
      if (err instanceof HubConfigError) return err.problems;
      throw err;
    }
  };

  it('reads a lock on a stick with its network keys', () => {
    const parsed = parseHubConfig(
      config(`{ port: /dev/ttyUSB0, nodeId: 5, securityKeys: { S2_AccessControl: ${KEY_A} } }`),
      { baseDir: tmpdir(), drivers: drivers() },
    );
    expect(parsed.devices[0]?.options).toMatchObject({ port: '/dev/ttyUSB0', nodeId: 5 });
  });

  it('names the key of every mistake', () => {
    expect(problemsOf('{ port: /dev/ttyUSB0, nodeId: 0 }')).toEqual([
      expect.stringMatching(/^devices\[0\]\.options\.nodeId/),
    ]);
    expect(
      problemsOf('{ port: /dev/ttyUSB0, nodeId: 5, securityKeys: { S2_AccessControl: abc } }'),
    ).toEqual([expect.stringMatching(/^devices\[0\]\.options\.securityKeys\.S2_AccessControl/)]);
    expect(
      problemsOf(`{ port: /dev/ttyUSB0, nodeId: 5, securityKeys: { S3: ${KEY_A} } }`).join(),
    ).toMatch(/S3/);
    expect(problemsOf('{ port: /dev/ttyUSB0, nodeId: 5, pin: 1234 }').join()).toMatch(/pin/);
    expect(problemsOf('{ nodeId: 5 }').join()).toMatch(/port/);
  });

  it('opens one network per controller, and refuses two devices that disagree about it', async () => {
    const factory = createZWaveDriverFactory();
    const ctx = (id: string) => ({
      id,
      kind: 'lock' as const,
      clock: new FakeClock(0),
      logger: {
        debug: () => undefined,
        info: () => undefined,
        warn: () => undefined,
        error: () => undefined,
      },
      configDir: tmpdir(),
      doorPosition: null,
    });
    const a = factory.create(ctx('a'), { port: 'tcp://127.0.0.1:9', nodeId: 5 });
    const b = factory.create(ctx('b'), { port: 'tcp://127.0.0.1:9', nodeId: 6 });
    expect(a).toBeInstanceOf(ZWaveLock);
    expect((a as unknown as { network: unknown }).network).toBe(
      (b as unknown as { network: unknown }).network,
    );
    expect(() =>
      factory.create(ctx('c'), {
        port: 'tcp://127.0.0.1:9',
        nodeId: 7,
        securityKeys: { S2_AccessControl: KEY_B },
      }),
    ).toThrow(/same securityKeys/);
    await a.stop();
    await b.stop();
  });
});
