/**
 * The home hub (`threshold hub`): for each configured device a driver (the device people own)
 * and a {@link DeviceLink} to the control plane with that device's id and secret, joined by the
 * device's bridge (bridges.ts), so the control plane sees the device exactly as it sees a
 * simulated one. Per door a {@link DoorGuard} enforces deadlines, the dead-man's switch and the
 * cut-off rule without the control plane, and one {@link HubLog} keeps what the hub did and saw
 * (alarms, relocks, cut-offs, facts observed while cut off) until the broker acknowledged it.
 *
 * The hub starts whether or not the control plane is reachable: enforcement is local, and the
 * links keep trying.
 *
 * Each lock has a {@link GrantBook}: the control plane's signed offline grant list for it,
 * received over the lock's own link and kept in `<dataDir>/grants-<lock>.json`. The lock's
 * bridge checks courier unlocks against it, and the lock's keypad slots stay on the lock while
 * it lists them (pin-book.ts), so guests keep coming in while the internet is down.
 *
 * With a `homeAssistant` block in its config the hub also publishes every door, read-only, to
 * Home Assistant's broker (home-assistant.ts): the bolt and the door as the drivers report
 * them, the camera as the hub's own watchdog sees it, and the door's active hub alarms. That
 * broker being away never delays or stops enforcement.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Clock } from '../core/clock.ts';
import type { DeviceLogger } from '../devices/device-connection.ts';
import { CameraBridge, DoorSensorBridge, LockBridge } from './bridges.ts';
import type { HubConfig, HubDeviceConfig, HubDoorConfig } from './config.ts';
import { DRIVERS, type DriverRegistry } from './driver-registry.ts';
import type {
  CameraDriver,
  ContactDriver,
  Driver,
  DriverPosition,
  LockDriver,
} from './drivers/driver.ts';
import { factDetail, HubLog, HubLogPump, type HubEventName } from './hub-log.ts';
import { DeviceLink } from '../devices/device-link.ts';
import {
  HomeAssistantBridge,
  type HomeAssistantAlarm,
  type HomeAssistantCameraStatus,
  type HomeAssistantDoor,
  type HomeAssistantDoorState,
  type HomeAssistantLockCommand,
  type HomeAssistantSource,
} from './home-assistant.ts';
import { GrantBook } from './grant-book.ts';
import { DoorGuard } from './local-guard.ts';
import { PinBook } from './pin-book.ts';

/** Settings of a {@link Hub}. */
export interface HubOptions {
  readonly config: HubConfig;
  readonly clock: Clock;
  readonly logger: DeviceLogger;
  /** Drivers by name. Default the build's {@link DRIVERS}. */
  readonly drivers?: DriverRegistry;
  /** Link settings (tests shorten them). */
  readonly link?: { readonly reconnectPeriodMs?: number; readonly reportIntervalMs?: number };
  /** Retries of "lock once closed", ms. Default 2 000. */
  readonly relockRetryMs?: number;
  /** Home Assistant bridge settings (tests shorten them). */
  readonly homeAssistant?: { readonly reconnectPeriodMs?: number };
}

/**
 * How often the Home Assistant view of every door is looked at again, ms: the guard has no
 * change signal of its own (a session armed or disarmed, the watchdog going live), so those
 * reach Home Assistant within this time. The bridge publishes only what changed.
 */
const HA_REFRESH_MS = 1_000;

/** The hub's own alarms, shown in Home Assistant while their condition lasts. */
const HA_ALARMS: Readonly<Partial<Record<HubEventName, string>>> = {
  'hub.dead-man': "The hub's dead-man's switch tripped: the camera stopped or froze",
  'hub.cut-off': 'The hub ended a session: the control plane was unreachable',
  'hub.relock-failed': 'The hub could not throw the bolt',
};

/** One active alarm, with the session it was raised for. */
interface ActiveAlarm extends HomeAssistantAlarm {
  readonly sessionId: string | null;
}

/** Facts observed while cut off, at most this many per outage of a door (a flapping sensor). */
const MAX_OBSERVED_PER_OUTAGE = 200;

interface DoorParts {
  readonly config: HubDoorConfig;
  readonly guard: DoorGuard;
  readonly links: readonly DeviceLink[];
  up: boolean;
  /** Whether its links were ever all up: before that the hub is starting, not cut off. */
  everUp: boolean;
  observedThisOutage: number;
  /** The hub's alarms active at this door, by event name (Home Assistant shows them). */
  readonly alarms: Map<string, ActiveAlarm>;
  /** Called after anything Home Assistant shows of this door may have changed. */
  readonly changed: Set<() => void>;
}

/** See the module comment. */
export class Hub {
  readonly config: HubConfig;
  /** The hub's local log. */
  readonly log: HubLog;
  private readonly o: HubOptions;
  private readonly drivers = new Map<string, Driver>();
  private readonly links = new Map<string, DeviceLink>();
  private readonly doors = new Map<string, DoorParts>();
  private readonly lockBridges = new Map<string, LockBridge>();
  private readonly cameraBridges = new Map<string, CameraBridge>();
  private readonly stoppers: (() => void)[] = [];
  private readonly pinBooks: PinBook[] = [];
  private readonly grantBooks = new Map<string, GrantBook>();
  private readonly pump: HubLogPump;
  private readonly homeAssistant: HomeAssistantBridge | null;
  private cancelHaRefresh: (() => void) | undefined;
  private stopping: Promise<void> | undefined;

  /** Builds every part; nothing connects until {@link Hub.start}. */
  constructor(options: HubOptions) {
    this.o = options;
    const { config, clock, logger } = options;
    this.config = config;
    mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
    const firstLock = config.doors[0]?.lock ?? config.devices.find((d) => d.kind === 'lock')?.id;
    const opened = HubLog.open(
      join(config.dataDir, 'hub-log.jsonl'),
      clock,
      firstLock ?? config.devices[0]!.id,
    );
    if (opened.broken !== null)
      logger.error(opened.broken, 'the local log did not verify: kept aside, a new one begun');
    this.log = opened.log;
    this.pump = new HubLogPump(
      this.log,
      (fact) => {
        const link = this.links.get(fact.deviceId) ?? this.links.get(firstLock ?? '');
        if (link === undefined) return Promise.resolve(false);
        return link.publishEventAcked({ name: fact.name, detail: factDetail(fact) });
      },
      (err) => logger.warn({ err: String(err) }, 'local log: sending failed'),
    );

    // Drivers first (a camera's picture may follow its door's sensor), then links and bridges.
    const doorOf = new Map<string, HubDoorConfig>();
    for (const door of config.doors) {
      for (const id of [door.lock, door.doorSensor, door.camera]) if (id) doorOf.set(id, door);
    }
    const ordered = [...config.devices].sort((a, b) => rank(a) - rank(b));
    for (const device of ordered) this.drivers.set(device.id, this.buildDriver(device, doorOf));
    // Before the links, which feed them from their first connection.
    for (const device of config.devices)
      if (device.kind === 'lock') this.grantBooks.set(device.id, this.buildGrantBook(device));
    for (const device of config.devices) this.links.set(device.id, this.buildLink(device));

    const guards = new Map<string, DoorGuard>();
    const doorList: HubDoorConfig[] = [...config.doors];
    // A lock in no door still gets its deadlines enforced: a door of its own, without sensor.
    for (const d of config.devices)
      if (d.kind === 'lock' && !doorOf.has(d.id))
        doorList.push({
          id: d.id,
          name: d.id,
          lock: d.id,
          doorSensor: null,
          camera: null,
          relockMs: 30_000,
        });
    for (const door of doorList) {
      const guard = this.buildGuard(door);
      guards.set(door.id, guard);
      const links = [door.lock, door.doorSensor, door.camera].flatMap((id) =>
        id === null ? [] : [this.links.get(id)!],
      );
      const parts: DoorParts = {
        config: door,
        guard,
        links,
        up: false,
        everUp: false,
        observedThisOutage: 0,
        alarms: new Map(),
        changed: new Set(),
      };
      this.doors.set(door.id, parts);
      for (const link of links) {
        this.stoppers.push(link.onLinkChange(() => this.linkChanged(parts)));
      }
      this.watchWhileCutOff(parts);
    }
    for (const device of config.devices) {
      const door =
        doorOf.get(device.id) ?? (device.kind === 'lock' ? this.doorOfLock(device.id) : undefined);
      const guard = door === undefined ? null : (guards.get(door.id) ?? null);
      this.buildBridge(device, guard, door);
    }
    for (const link of this.links.values()) {
      this.stoppers.push(
        link.onLinkChange((up) => {
          if (up) void this.pump.kick();
        }),
      );
    }
    this.homeAssistant = this.buildHomeAssistant();
  }

  /** Starts every driver and link; resolves once the drivers started (links keep trying). */
  async start(): Promise<void> {
    // Said at every start, not only by `--check`: a hub without a grant key lets no courier in.
    for (const warning of this.config.warnings) this.o.logger.warn({}, warning);
    const results = await Promise.allSettled([...this.drivers.values()].map((d) => d.start()));
    results.forEach((r, i) => {
      if (r.status === 'rejected') {
        const id = [...this.drivers.keys()][i];
        this.o.logger.error(
          { deviceId: id, err: r.reason instanceof Error ? r.reason.message : String(r.reason) },
          'driver did not start: the device stays unknown until it does',
        );
      }
    });
    for (const pins of this.pinBooks) pins.start();
    for (const link of this.links.values()) link.connect();
    const ha = this.homeAssistant;
    if (ha !== null && this.stopping === undefined) {
      // Not awaited: Home Assistant's broker being away must not hold up local enforcement; the
      // bridge keeps trying and publishes everything when it connects.
      ha.start().catch((err: unknown) =>
        this.o.logger.warn(
          { broker: this.config.homeAssistant?.broker, err: String(err) },
          'home assistant broker not reachable yet: trying again',
        ),
      );
      this.scheduleHaRefresh();
    }
  }

  /** Whether the Home Assistant bridge is connected (false when none is configured). */
  homeAssistantConnected(): boolean {
    return this.homeAssistant?.isConnected() ?? false;
  }

  /** Resolves once every link is up, or rejects after `timeoutMs`. */
  async waitUntilConnected(timeoutMs: number): Promise<void> {
    await Promise.all([...this.links.values()].map((l) => l.waitUntilUp(timeoutMs)));
  }

  /** Whether every link to the control plane is up. */
  isConnected(): boolean {
    return [...this.links.values()].every((l) => l.isConnected());
  }

  /** The driver of a device (tests and scenarios reach the memory devices through it). */
  driver(id: string): Driver {
    const d = this.drivers.get(id);
    if (d === undefined) throw new Error(`no device ${id}`);
    return d;
  }

  /** The grant list book of a lock (tests and scenarios look at what the hub holds). */
  grantBook(lockId: string): GrantBook {
    const book = this.grantBooks.get(lockId);
    if (book === undefined) throw new Error(`no lock ${lockId}`);
    return book;
  }

  /** The guard of a door. */
  guard(doorId: string): DoorGuard {
    const d = this.doors.get(doorId);
    if (d === undefined) throw new Error(`no door ${doorId}`);
    return d.guard;
  }

  /** Fault switch: every link to the control plane dies at once and stays down. */
  cutUplink(): void {
    for (const link of this.links.values()) link.cutLink();
  }

  /** Ends {@link Hub.cutUplink}; the links reconnect at their next attempt. */
  restoreUplink(): void {
    for (const link of this.links.values()) link.restoreLink();
  }

  /** Stops every timer, bridge, driver and link. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.cancelHaRefresh?.();
      this.cancelHaRefresh = undefined;
      // First, while the drivers still answer: it says `offline` to Home Assistant.
      await this.homeAssistant?.stop().catch(() => undefined);
      this.pump.stop();
      for (const stop of this.stoppers) stop();
      for (const door of this.doors.values()) door.guard.stop();
      for (const b of this.lockBridges.values()) b.stop();
      for (const b of this.cameraBridges.values()) b.stop();
      for (const pins of this.pinBooks) pins.stop();
      for (const book of this.grantBooks.values()) book.stop();
      await Promise.allSettled([...this.links.values()].map((l) => l.close()));
      await Promise.allSettled([...this.drivers.values()].map((d) => d.stop()));
    })();
    return this.stopping;
  }

  private doorOfLock(lockId: string): HubDoorConfig | undefined {
    return this.doors.get(lockId)?.config;
  }

  private buildDriver(device: HubDeviceConfig, doorOf: Map<string, HubDoorConfig>): Driver {
    const factory = (this.o.drivers ?? DRIVERS).get(device.driver);
    if (factory === undefined) throw new Error(`no driver "${device.driver}"`);
    const sensorId = doorOf.get(device.id)?.doorSensor ?? null;
    const sensor = sensorId === null ? undefined : this.drivers.get(sensorId);
    const doorPosition =
      device.kind === 'camera' && sensor?.kind === 'door-sensor'
        ? (): DriverPosition => sensor.position()
        : null;
    const driver = factory.create(
      {
        id: device.id,
        kind: device.kind,
        clock: this.o.clock,
        logger: this.o.logger,
        configDir: this.config.configDir,
        doorPosition,
      },
      device.options,
    );
    if (driver.kind !== device.kind || driver.id !== device.id)
      throw new Error(`driver "${device.driver}" built the wrong device for ${device.id}`);
    return driver;
  }

  private buildGrantBook(device: HubDeviceConfig): GrantBook {
    return new GrantBook({
      homeId: this.config.homeId,
      lockId: device.id,
      publicKey: this.config.controlPlane.grantKey,
      maxAgeMs: this.config.grants.maxAgeMs,
      clock: this.o.clock,
      statePath: join(this.config.dataDir, `grants-${device.id}.json`),
      logger: this.o.logger,
    });
  }

  private buildLink(device: HubDeviceConfig): DeviceLink {
    const link = this.o.link ?? {};
    const grants = this.grantBooks.get(device.id);
    return new DeviceLink({
      brokerUrl: this.config.controlPlane.url,
      ...(this.config.controlPlane.ca === null ? {} : { ca: this.config.controlPlane.ca }),
      homeId: this.config.homeId,
      deviceId: device.id,
      deviceKey: device.key,
      clock: this.o.clock,
      logger: this.o.logger,
      ...(link.reconnectPeriodMs === undefined
        ? {}
        : { reconnectPeriodMs: link.reconnectPeriodMs }),
      ...(link.reportIntervalMs === undefined ? {} : { reportIntervalMs: link.reportIntervalMs }),
      ...(grants === undefined ? {} : { onGrants: (payload: Buffer) => void grants.take(payload) }),
    });
  }

  private buildGuard(door: HubDoorConfig): DoorGuard {
    const lock = this.drivers.get(door.lock) as LockDriver;
    const sensor =
      door.doorSensor === null ? null : (this.drivers.get(door.doorSensor) as ContactDriver);
    const record = (name: HubEventName, sessionId: string | null, why: string): void => {
      this.log.append({ name, deviceId: door.lock, sessionId, why });
      void this.pump.kick();
      const message = HA_ALARMS[name];
      const parts = this.doors.get(door.id);
      if (message !== undefined && parts !== undefined) {
        const known = parts.alarms.get(name);
        parts.alarms.set(name, {
          type: name,
          sinceMs: known?.sinceMs ?? this.o.clock.now(),
          message,
          sessionId,
        });
        this.doorChanged(parts);
      }
    };
    return new DoorGuard({
      clock: this.o.clock,
      lock,
      door: sensor,
      hasCamera: door.camera !== null,
      cutOffMs: this.config.cutOffMs,
      watchdog: { silenceMs: this.config.deadManMs, freezeMs: this.config.freezeMs },
      ...(this.o.relockRetryMs === undefined ? {} : { retryMs: this.o.relockRetryMs }),
      actions: {
        record,
        relocked: (reasons) => this.lockBridges.get(door.lock)?.hubRelocked(reasons),
        disarmCamera: (sessionId) => {
          if (door.camera !== null) this.cameraBridges.get(door.camera)?.disarmLocally(sessionId);
        },
        warn: (obj, message) => this.o.logger.warn({ doorId: door.id, ...obj }, message),
      },
    });
  }

  private buildBridge(
    device: HubDeviceConfig,
    guard: DoorGuard | null,
    door: HubDoorConfig | undefined,
  ): void {
    const connection = this.links.get(device.id)!;
    const driver = this.drivers.get(device.id)!;
    const { clock, logger } = this.o;
    switch (driver.kind) {
      case 'lock': {
        const grants = this.grantBooks.get(device.id) ?? null;
        const pins =
          driver.pins === null
            ? null
            : new PinBook({
                pins: driver.pins,
                deviceKey: device.key,
                clock,
                statePath: join(this.config.dataDir, `pins-${device.id}.json`),
                logger,
                grants,
              });
        if (pins !== null) this.pinBooks.push(pins);
        this.lockBridges.set(
          device.id,
          new LockBridge({
            connection,
            driver,
            clock,
            guard: guard!,
            pins,
            defaultRelockMs: door?.relockMs ?? 30_000,
            grants,
            // In the log as a fact seen (`hub.observed`): the protocol has no event of its own
            // for it, and the control plane audits it with the lock's signature all the same.
            refused: (sessionId, why) => {
              this.log.append({ name: 'hub.observed', deviceId: device.id, sessionId, why });
              void this.pump.kick();
            },
            logger,
          }),
        );
        return;
      }
      case 'door-sensor': {
        const bridge = new DoorSensorBridge({ connection, driver, clock, guard });
        this.stoppers.push(() => bridge.stop());
        return;
      }
      case 'camera':
        this.cameraBridges.set(
          device.id,
          new CameraBridge({
            connection,
            driver,
            clock,
            deviceKey: device.key,
            guard,
            heartbeatIntervalMs: this.config.heartbeatIntervalMs,
            maxFrameAgeMs: this.config.deadManMs,
            logger,
          }),
        );
        return;
    }
  }

  /** The Home Assistant bridge over this hub's doors, or null when none is configured. */
  private buildHomeAssistant(): HomeAssistantBridge | null {
    const ha = this.config.homeAssistant;
    if (ha === null) return null;
    const doors: HomeAssistantDoor[] = [...this.doors.values()].map((parts) => ({
      id: parts.config.id,
      name: parts.config.name,
      state: () => this.homeAssistantState(parts),
      onChange: (listener) => {
        parts.changed.add(listener);
        return () => parts.changed.delete(listener);
      },
    }));
    for (const parts of this.doors.values()) this.followForHomeAssistant(parts);
    // The doors are fixed for the hub's lifetime (a changed config is a restart).
    const source: HomeAssistantSource = { doors: () => doors, onDoorsChanged: () => () => {} };
    const reconnectPeriodMs = this.o.homeAssistant?.reconnectPeriodMs;
    return new HomeAssistantBridge({
      brokerUrl: ha.broker,
      ...(ha.username === null ? {} : { username: ha.username }),
      ...(ha.password === null ? {} : { password: ha.password }),
      // The home's id is stable and unique per hub on a home's broker, and already fits HA's
      // id rule (lower-case letters, digits, `-`).
      hubId: this.config.homeId,
      discoveryPrefix: ha.discoveryPrefix,
      ...(ha.baseTopic === null ? {} : { baseTopic: ha.baseTopic }),
      swVersion: THRESHOLD_VERSION,
      source,
      logger: this.o.logger,
      ...(reconnectPeriodMs === undefined ? {} : { reconnectPeriodMs }),
      // Locking only, when asked for: an unlock from Home Assistant would skip the camera's
      // proof, the deadline and the record of who asked, so it is never passed on.
      ...(ha.lockCommands
        ? {
            lockCommands: {
              handle: (doorId, command) => this.lockForHomeAssistant(doorId, command),
            },
          }
        : {}),
    });
  }

  /**
   * `LOCK` from Home Assistant: the fail-closed direction, so the hub throws the bolt itself —
   * but never into a door that its sensor does not report closed (a bolt thrown into an open
   * door jams or leaves it unsecured while looking locked). Either way the request goes into
   * the local log and so reaches the control plane's audit log (`hub.observed`), as the owner's
   * own remote commands do.
   */
  private async lockForHomeAssistant(
    doorId: string,
    command: HomeAssistantLockCommand,
  ): Promise<void> {
    const parts = this.doors.get(doorId);
    if (parts === undefined) throw new Error(`no door ${doorId}`);
    const record = (why: string): void => {
      this.log.append({
        name: 'hub.observed',
        deviceId: parts.config.lock,
        sessionId: parts.guard.sessionId(),
        why,
      });
      void this.pump.kick();
    };
    if (command !== 'lock') {
      record('Home Assistant asked to unlock: refused (only locking is allowed from there)');
      throw new Error('only locking is allowed from Home Assistant');
    }
    const sensorId = parts.config.doorSensor;
    const position =
      sensorId === null ? null : (this.drivers.get(sensorId) as ContactDriver).position();
    if (position !== null && position !== 'closed') {
      record(`Home Assistant asked to lock: refused, the door is ${position}`);
      throw new Error(`the door is ${position}; the hub does not throw the bolt into it`);
    }
    await (this.drivers.get(parts.config.lock) as LockDriver).lock();
    record('locked at Home Assistant’s request');
  }

  /** What Home Assistant is told about a door now. */
  private homeAssistantState(parts: DoorParts): HomeAssistantDoorState {
    const { config, guard } = parts;
    const lock = this.drivers.get(config.lock) as LockDriver;
    const sensor =
      config.doorSensor === null ? null : (this.drivers.get(config.doorSensor) as ContactDriver);
    let camera: HomeAssistantCameraStatus | null = null;
    if (config.camera !== null) {
      const status = guard.observation();
      const driver = this.drivers.get(config.camera) as CameraDriver;
      if (status === 'live') camera = 'live';
      else if (status === 'lost') camera = 'offline';
      else if (status === 'frozen') camera = 'frozen';
      // No session (the watchdog runs only while armed) or no verdict yet: the only fact the
      // hub has is whether the stream is up at all.
      else camera = driver.available() ? 'unknown' : 'offline';
    }
    return {
      bolt: lock.bolt(),
      position: sensor === null ? null : sensor.position(),
      camera,
      alarms: [...parts.alarms.values()].map(({ type, sinceMs, message }) => ({
        type,
        sinceMs,
        message,
      })),
    };
  }

  /** Tells Home Assistant's bridge about every report of the door's devices. */
  private followForHomeAssistant(parts: DoorParts): void {
    const { config } = parts;
    const changed = (): void => this.doorChanged(parts);
    this.stoppers.push((this.drivers.get(config.lock) as LockDriver).on(changed));
    if (config.doorSensor !== null)
      this.stoppers.push((this.drivers.get(config.doorSensor) as ContactDriver).on(changed));
    if (config.camera !== null) {
      // Not every frame: the camera's verdict is the guard's, looked at by the refresh timer.
      this.stoppers.push(
        (this.drivers.get(config.camera) as CameraDriver).on((e) => {
          if (e.type !== 'frame') changed();
        }),
      );
    }
  }

  /**
   * Ends the alarms whose condition is over, then tells the bridge. The bolt thrown ends a
   * failed relock and a cut-off (the door is secured); a dead-man's alarm also needs its
   * session over, since that session's unlocks stay refused.
   */
  private doorChanged(parts: DoorParts): void {
    if (parts.alarms.size > 0) {
      const locked = (this.drivers.get(parts.config.lock) as LockDriver).bolt() === 'locked';
      for (const [name, alarm] of parts.alarms) {
        const sessionOver = alarm.sessionId === null || parts.guard.sessionId() !== alarm.sessionId;
        if (locked && (name !== 'hub.dead-man' || sessionOver)) parts.alarms.delete(name);
      }
    }
    for (const listener of [...parts.changed]) {
      try {
        listener();
      } catch (err) {
        this.o.logger.warn({ err: String(err) }, 'home assistant listener failed');
      }
    }
  }

  private scheduleHaRefresh(): void {
    this.cancelHaRefresh = this.o.clock.schedule(this.o.clock.now() + HA_REFRESH_MS, () => {
      if (this.stopping !== undefined) return;
      for (const parts of this.doors.values()) this.doorChanged(parts);
      this.scheduleHaRefresh();
    });
  }

  private linkChanged(door: DoorParts): void {
    // The control plane hears this door only when all of its devices' links are up.
    const up = door.links.every((l) => l.isConnected());
    if (up === door.up) return;
    door.up = up;
    if (up) door.everUp = true;
    else door.observedThisOutage = 0;
    door.guard.linkChanged(up);
  }

  /** Records what the door's devices report while the control plane cannot hear it. */
  private watchWhileCutOff(door: DoorParts): void {
    const observe = (why: string): void => {
      if (door.up || !door.everUp || door.observedThisOutage >= MAX_OBSERVED_PER_OUTAGE) return;
      door.observedThisOutage += 1;
      this.log.append({
        name: 'hub.observed',
        deviceId: door.config.lock,
        sessionId: door.guard.sessionId(),
        why,
      });
    };
    const lock = this.drivers.get(door.config.lock) as LockDriver;
    this.stoppers.push(
      lock.on((e) => {
        if (e.type === 'state') observe(`bolt ${e.bolt}`);
        else if (e.type === 'manual') observe(`bolt turned by hand: ${e.bolt}`);
        else if (e.type === 'keypad-unlocked') observe(`keypad opened (slot ${e.slot ?? '?'})`);
        else if (e.type === 'availability') observe(`lock ${e.available ? 'back' : 'away'}`);
      }),
    );
    if (door.config.doorSensor !== null) {
      const sensor = this.drivers.get(door.config.doorSensor) as ContactDriver;
      this.stoppers.push(
        sensor.on((e) => {
          if (e.type === 'state') observe(`door ${e.position}`);
        }),
      );
    }
    if (door.config.camera !== null) {
      const camera = this.drivers.get(door.config.camera) as CameraDriver;
      this.stoppers.push(
        camera.on((e) => {
          if (e.type === 'stalled') observe(`camera stalled since ${e.sinceMs}`);
          else if (e.type === 'availability') observe(`camera ${e.available ? 'back' : 'away'}`);
        }),
      );
    }
  }
}

/** Threshold's version (Home Assistant's device page shows it). */
const THRESHOLD_VERSION = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  }
).version;

/** Build order: door sensors before the cameras that may draw them. */
function rank(d: HubDeviceConfig): number {
  return d.kind === 'door-sensor' ? 0 : d.kind === 'lock' ? 1 : 2;
}
