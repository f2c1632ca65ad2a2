/**
 * Wires a whole control plane together: store, keys, audit log, embedded broker, device
 * gateway, session orchestrator and the HTTP app. `threshold serve`, `threshold demo`, the
 * scenarios and the integration tests all start Threshold through here.
 */
import { mkdirSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { FastifyBaseLogger } from 'fastify';
import type { SessionTiming } from '../core/access-session.ts';
import type { Clock } from '../core/clock.ts';
import type { Device } from '../core/model.ts';
import type { WatchdogConfig } from '../core/observation-watchdog.ts';
import { deriveDeviceKey } from '../protocol/device-auth.ts';
import { systemClock } from '../protocol/system-clock.ts';
import {
  serverMqttCredentials,
  startEmbeddedBroker,
  type EmbeddedBroker,
} from '../broker/index.ts';
import { mqttBrokerLink } from '../broker/broker-link.ts';
import { openStore, type Store } from '../store/index.ts';
import { createApp, type App } from './app.ts';
import { LiveViewService } from './live-view.ts';
import { carrierDeliveryView, DeliveryEventLog } from './delivery-events.ts';
import { EntryRecorder } from './entries.ts';
import { FixedWindowLimiter } from './rate-limiter.ts';
import { CARRIER_REQUESTS_PER_MINUTE } from './routes/carrier-auth.ts';
import { PinSync } from './pin-sync.ts';
import { Passkeys, localRelyingParty, relyingPartyFromUrl } from './passkeys.ts';
import { DEMO_DOORSTEP } from './seed.ts';
import { PushNotifier } from './push-notifier.ts';
import { WebhookRepository } from '../store/webhook-repository.ts';
import { WebhookDispatcher, type WebhookTiming } from './webhook-dispatcher.ts';
import {
  defaultVapidSubject,
  loadOrCreateVapidKeys,
  vapidSubjectWarning,
  type VapidKeys,
} from './vapid-keys.ts';
import { isTerminal } from '../core/access-session.ts';
import { AuditLog } from './audit-log.ts';
import { MIN_METRICS_TOKEN_LENGTH, ServerMetrics } from './metrics.ts';
import { Authenticator } from './auth.ts';
import { ClipStore } from './clip-store.ts';
import { commandIdPrefix, DeviceGateway, type DeviceGatewayOptions } from './device-gateway.ts';
import { EventBus } from './event-bus.ts';
import { GrantLists, offlineHorizonFromHours } from './grant-lists.ts';
import { loadOrCreateKeys, sha256Hex, type ServerKeys } from './keys.ts';
import { SessionOrchestrator } from './session-orchestrator.ts';
import { ReplicaCoordinator, type ReplicaSettings } from './replicas.ts';
import { systemStoreOptions } from './store-location.ts';

export { systemStoreOptions };

export interface SystemOptions {
  /** Data directory: keys, clips, and the SQLite database unless `databaseUrl` is given. */
  readonly dataDir: string;
  /**
   * The PostgreSQL database to keep everything in but keys and clips
   * (`postgres://user:password@host:port/database`; the database must exist, the tables are
   * made on start). Default: SQLite, `threshold.db` in the data directory.
   */
  readonly databaseUrl?: string;
  /** HTTP port; 0 picks a free one. */
  readonly port: number;
  /** HTTP interface; default 127.0.0.1. */
  readonly host?: string;
  /** Embedded broker port; 0 picks a free one. Default 1883. */
  readonly mqttPort?: number;
  readonly mqttHost?: string;
  /**
   * An external broker (`mqtt://host:port` or `mqtts://`) instead of the embedded one; see
   * docs/operations.md. Without `mqttAdmin`, its accounts and ACL are the operator's to keep.
   */
  readonly mqttUrl?: string;
  /**
   * The admin account of the external mosquitto's dynamic security plugin: Threshold then
   * writes the server's and every device's account and ACL there itself.
   */
  readonly mqttAdmin?: { readonly username: string; readonly password: string };
  /**
   * The client id of this server's session at the external broker, which keeps device
   * messages for it while it is away: stable across restarts, different per replica. Default
   * `<server user name>-<host name>-<HTTP port>`.
   */
  readonly mqttClientId?: string;
  readonly clock?: Clock;
  readonly logger?: FastifyBaseLogger;
  readonly watchdog?: Partial<WatchdogConfig>;
  readonly timing?: Partial<SessionTiming>;
  /** Days a session clip is kept; the audit log keeps its digests for ever. Default 30. */
  readonly clipRetentionDays?: number;
  /** Audit checkpoint every N entries (default 1000). */
  readonly checkpointEvery?: number;
  /** Benchmark trace points of the device gateway. */
  readonly trace?: DeviceGatewayOptions['trace'];
  /**
   * The address people open in their browser, e.g. `https://door.example.com`. Passkeys are
   * bound to its host name, cookies get the Secure flag when it is https, and push services
   * are given it as the contact. Default: `http://localhost:<port>`.
   */
  readonly publicUrl?: string;
  /** Contact for push services: mailto: address or https: URL. Default from publicUrl. */
  readonly vapidSubject?: string;
  /**
   * Accept http: and private-address push endpoints and carrier webhook URLs (tests, local
   * development only).
   */
  readonly allowInsecurePushEndpoints?: boolean;
  /** Webhook timeout and retry timing; default 10 s, retries 10 s doubling to 1 h, 12 attempts. */
  readonly webhookTiming?: Partial<WebhookTiming>;
  /**
   * The demo: the courier page may offer the demo home's doorstep as its position (a browser
   * on a desk is not at the demo door). Never set in production.
   */
  readonly demo?: boolean;
  /**
   * How far the offline grant lists sent to home hubs reach, hours (1 to 168, default 24):
   * nothing in a list lets anyone in later, so a revocation that cannot reach a hub takes effect
   * at most this long after its last list.
   */
  readonly offlineGrantsHours?: number;
  /** An unchanged lock's grant list is issued again once the last is this old, ms (5 min). */
  readonly grantListRefreshMs?: number;
  /**
   * The bearer token `GET /metrics` answers to (at least 32 characters); without one the
   * metrics are kept but served to no one.
   */
  readonly metricsToken?: string;
  /**
   * Run as one of several replicas on the same PostgreSQL database (`databaseUrl`) and external
   * broker (`mqttUrl`), both required; see replicas.ts and docs/operations.md.
   */
  readonly replica?: ReplicaSettings;
}

export interface RunningSystem {
  readonly url: string;
  readonly port: number;
  readonly brokerUrl: string;
  readonly app: App;
  readonly store: Store;
  readonly keys: ServerKeys;
  /** The embedded broker, or null when an external one is used (`mqttUrl`). */
  readonly broker: EmbeddedBroker | null;
  readonly gateway: DeviceGateway;
  readonly orchestrator: SessionOrchestrator;
  readonly audit: AuditLog;
  readonly auth: Authenticator;
  readonly events: EventBus;
  readonly clock: Clock;
  readonly push: PushNotifier;
  readonly vapid: VapidKeys;
  readonly pins: PinSync;
  /** Delivery state changes, in order (webhooks listen here). */
  readonly deliveryEvents: DeliveryEventLog;
  /** Carriers' webhooks: every delivery event posted, signed, retried and logged. */
  readonly webhooks: WebhookDispatcher;
  /** "Who unlocked": the entries recorded, and whom they are pushed to. */
  readonly entries: EntryRecorder;
  /** The signed offline grant list of every lock, kept published for the home hubs. */
  readonly grantLists: GrantLists;
  /** The Prometheus metrics `GET /metrics` serves. */
  readonly metrics: ServerMetrics;
  /** This replica's lease and takeovers, or null for a single server. */
  readonly replica: ReplicaCoordinator | null;
  /** Registers a device with the gateway and broker; returns its secret (base64url device key). */
  provisionDevice(device: Device): Promise<string>;
  /** The secret of a stored device (derived from the master key). */
  deviceSecret(deviceId: string): string;
  close(): Promise<void>;
}

const HOUR_MS = 60 * 60 * 1000;

export async function startSystem(opts: SystemOptions): Promise<RunningSystem> {
  const clock = opts.clock ?? systemClock;
  if (opts.replica && (opts.databaseUrl === undefined || opts.mqttUrl === undefined))
    throw new Error(
      'a replica needs the database and the broker the other replicas use: give a PostgreSQL database URL and an external broker URL',
    );
  mkdirSync(opts.dataDir, { recursive: true });
  const store = await openStore(await systemStoreOptions(opts));
  const closers: (() => Promise<void>)[] = [() => store.close()];
  const closeAll = async (): Promise<void> => {
    for (const c of closers.reverse()) await c().catch(() => undefined);
  };
  try {
    // A bad horizon stops the start before anything listens, with a sentence saying why.
    const offlineHorizonMs = offlineHorizonFromHours(opts.offlineGrantsHours ?? 24);
    if (opts.metricsToken !== undefined && opts.metricsToken.length < MIN_METRICS_TOKEN_LENGTH)
      throw new Error(`the metrics token must be at least ${MIN_METRICS_TOKEN_LENGTH} characters`);
    const keys = loadOrCreateKeys(opts.dataDir);
    const publicOrigin = opts.publicUrl ? new URL(opts.publicUrl).origin : undefined;
    const vapid = loadOrCreateVapidKeys(
      join(opts.dataDir, 'keys'),
      opts.vapidSubject ?? defaultVapidSubject(publicOrigin),
    );
    const audit = await AuditLog.open(store.audit, clock, keys.auditSigner, sha256Hex, {
      ...(opts.checkpointEvery === undefined ? {} : { checkpointEvery: opts.checkpointEvery }),
    });
    closers.push(() => audit.close());
    const log = opts.logger;
    const subjectWarning = vapidSubjectWarning(vapid.subject);
    if (subjectWarning && !opts.demo) log?.warn({}, subjectWarning);
    const credentials = serverMqttCredentials(keys.masterKey);
    // Made first: the parts below report into it as they are built.
    const metrics = new ServerMetrics();
    // Made before the gateway, which numbers this replica's commands; started once all is up.
    let coordinator: ReplicaCoordinator | null = null;
    const replicaOfGateway = opts.replica
      ? {
          commandIdPrefix: commandIdPrefix(opts.replica.id),
          isPeerCommand: (id: string) => coordinator?.isPeerCommand(id) ?? false,
        }
      : undefined;
    const gateway = new DeviceGateway({
      masterKey: keys.masterKey,
      clock,
      ...(replicaOfGateway ? { replica: replicaOfGateway } : {}),
      onCommandSettled: (action, ms, result) => metrics.commandSettled(action, ms, result),
      ...(log ? { logger: log } : {}),
      ...(opts.trace ? { trace: opts.trace } : {}),
    });
    const devices = await store.homes.listDevices();
    for (const d of devices) gateway.register(d);
    // An external mosquitto gets the accounts and ACL from us, when we hold its admin account.
    // Its module (and mqtt.js with it) is loaded only then, like the replica relay's (and pg
    // with it) below: a single node on its embedded broker and SQLite never needs them.
    const dynsec =
      opts.mqttUrl !== undefined && opts.mqttAdmin
        ? await (
            await import('../broker/mosquitto-dynsec.ts')
          ).MosquittoDynsec.connect({
            url: opts.mqttUrl,
            adminUsername: opts.mqttAdmin.username,
            adminPassword: opts.mqttAdmin.password,
            masterKey: keys.masterKey,
            server: credentials,
            ...(log ? { logger: log } : {}),
          })
        : null;
    if (dynsec) {
      closers.push(() => dynsec.close());
      await dynsec.ensureServer();
      await dynsec.ensureDevices(devices, async (id) => (await store.homes.getDevice(id)) === null);
    }
    const broker =
      opts.mqttUrl !== undefined
        ? null
        : await startEmbeddedBroker({
            host: opts.mqttHost ?? '127.0.0.1',
            port: opts.mqttPort ?? 1883,
            masterKey: keys.masterKey,
            lookupDevice: (id) => gateway.device(id),
            server: credentials,
            // Devices wait until the gateway listens: an event taken earlier would be acknowledged
            // with nobody to record it.
            devicesWaitForServerLink: true,
            ...(log ? { logger: log } : {}),
          });
    if (broker) closers.push(() => broker.close());
    const brokerUrl = broker?.url ?? opts.mqttUrl ?? '';
    const events = new EventBus();
    // Replicas tell each other of events and pass on calls through the database they share.
    const relay =
      opts.replica && opts.databaseUrl !== undefined
        ? await (
            await import('./replica-relay.ts')
          ).ReplicaRelay.start({
            replicaId: opts.replica.id,
            databaseUrl: opts.databaseUrl,
            store,
            events,
            ...(log ? { logger: log } : {}),
          })
        : null;
    if (relay) closers.push(() => relay.stop());
    const clips = new ClipStore(opts.dataDir, store.clips);
    // Delivery state changes, in order: the carrier's webhooks are fed from here. Made before
    // the orchestrator, which records the changes it makes (in progress, delivered…).
    const deliveryEvents = new DeliveryEventLog(store.db, clock);
    // Carriers' webhooks are fed from those events; started once the gateway runs.
    const webhooks = new WebhookDispatcher({
      repo: new WebhookRepository(store.db),
      deliveryEvents,
      deliveryView: async (id) => {
        const d = await store.deliveries.get(id);
        return d && carrierDeliveryView(d);
      },
      clock,
      masterKey: keys.masterKey,
      ...(log ? { logger: log } : {}),
      ...(opts.allowInsecurePushEndpoints ? { allowInsecureEndpoints: true } : {}),
      ...(opts.webhookTiming ? { timing: opts.webhookTiming } : {}),
    });
    const orchestrator = new SessionOrchestrator({
      store,
      gateway,
      audit,
      clock,
      clips,
      events,
      deliveryEvents,
      ...(log ? { logger: log } : {}),
      ...(opts.watchdog ? { watchdog: opts.watchdog } : {}),
      ...(opts.timing ? { timing: opts.timing } : {}),
      ...(opts.replica
        ? { replica: { id: opts.replica.id, ...(relay ? { remote: relay } : {}) } }
        : {}),
    });
    gateway.addListener(orchestrator);
    relay?.serve(orchestrator);
    if (opts.replica) {
      coordinator = new ReplicaCoordinator({
        ...opts.replica,
        store,
        clock,
        orchestrator,
        refreshDevices: async () => {
          for (const d of await store.homes.listDevices())
            if (gateway.device(d.id) === undefined) gateway.register(d);
        },
        ...(log ? { logger: log } : {}),
      });
    }
    const detachMetrics = metrics.attach({
      clock,
      events,
      audit,
      gateway,
      sessionsByState: () => orchestrator.sessionsByState(),
      ...(broker ? { broker: () => broker.stats() } : {}),
      ...(coordinator ? { replica: coordinator.stats.bind(coordinator) } : {}),
    });
    closers.push(() => Promise.resolve(detachMetrics()));
    const liveView = new LiveViewService({
      gateway,
      sessions: orchestrator,
      clock,
      events,
      audit,
      ...(opts.watchdog ? { watchdog: opts.watchdog } : {}),
      ...(log ? { logger: log } : {}),
    });
    gateway.addListener(liveView);
    // "Who unlocked": every unlock recorded, shown live and pushed to those who asked.
    const notice = (homeId: string, message: string): void => {
      log?.warn({ homeId }, message);
      events.publish({ type: 'notice', homeId, message, at: clock.now() });
    };
    let pinsForEntries: PinSync | null = null;
    let listsForEntries: GrantLists | null = null;
    const entries = new EntryRecorder({
      store,
      events,
      clock,
      audit,
      notify: notice,
      refreshPins: (homeId) => {
        // A guest's use was counted (not audited on its own): it may have used a grant up.
        listsForEntries?.changed(homeId);
        return pinsForEntries?.refreshWindows(homeId) ?? Promise.resolve();
      },
      ...(log ? { logger: log } : {}),
    });
    // On replicas too: each hears every lock event, and records its entry under the event's
    // own id, so the first one records it and there is no gap while no replica leads.
    gateway.addListener(entries);
    entries.start();
    closers.push(() => entries.stop());
    const push = new PushNotifier({
      entryWatchers: (entry, homeId) => entries.watchersOf(entry, homeId),
      events,
      subscriptions: store.pushSubscriptions,
      homes: store.homes,
      sessions: store.sessions,
      vapid,
      clock,
      audit,
      ...(log ? { logger: log } : {}),
      ...(opts.allowInsecurePushEndpoints ? { allowInsecureEndpoints: true } : {}),
    });
    push.start();
    closers.push(() => push.stop());
    // An access session disarms its camera when it ends; a live view still open takes it back.
    const offSessions = events.subscribe((e) => {
      if (e.type === 'session' && isTerminal(e.session) && e.session.cameraDeviceId !== null)
        liveView.sessionEnded(e.session.cameraDeviceId);
    });
    closers.push(() => {
      offSessions();
      liveView.stop();
      return Promise.resolve();
    });
    await gateway.start(
      broker
        ? broker.serverLink()
        : mqttBrokerLink({
            url: brokerUrl,
            username: credentials.username,
            password: credentials.password,
            clientId:
              opts.mqttClientId ??
              (opts.replica
                ? `${credentials.username}-${opts.replica.id}`
                : `${credentials.username}-${hostname().replace(/[^A-Za-z0-9-]/g, '-')}-${opts.port}`),
            ...(log ? { logger: log } : {}),
          }),
    );
    closers.push(() => gateway.stop());
    await webhooks.start();
    closers.push(() => webhooks.stop());
    closers.push(() => orchestrator.stop());
    await orchestrator.recoverOpenSessions();
    if (coordinator) {
      const c = coordinator;
      // Before the orchestrator stops: the lease ends at once and the others take over.
      closers.push(() => c.stop());
      await c.start();
    }
    // Keypad PINs: written to the lock, read back, kept in sync; the owner is told of lockouts.
    const pins = new PinSync({
      gateway,
      store,
      pinSlots: store.pinSlots,
      audit,
      clock,
      masterKey: keys.masterKey,
      notify: notice,
      // Each opening by code becomes an entry ("who unlocked"), and counts a guest's use.
      onKeypadEntry: (entry) => entries.keypad(entry),
      ...(coordinator
        ? {
            settlePendingOnStart: false,
            // Keypad events are audited by whichever replica commits first; the passes of
            // locks coming online (they send commands) are the leader's.
            auditEventsOnce: true,
            runsPasses: coordinator.isLeader.bind(coordinator),
          }
        : {}),
      ...(log ? { logger: log } : {}),
    });
    if (coordinator) {
      const c = coordinator;
      c.onBecameLeader(() => {
        const n = pins.catchUpPasses(c.leaderGapMs);
        if (n > 0) log?.info({ locks: n }, 'PIN passes a leader may have missed: run');
      });
    }
    gateway.addListener(pins);
    pinsForEntries = pins;
    await pins.start();
    closers.push(() => pins.stop());
    // The home hubs' offline grant lists: every lock's published now, then kept current from
    // the audit log's entries and refreshed; stopped before the gateway's client closes.
    const grantLists = new GrantLists({
      store,
      publisher: gateway,
      signer: keys.grantSigner,
      clock,
      audit,
      offlineHorizonMs,
      ...(opts.grantListRefreshMs === undefined ? {} : { refreshMs: opts.grantListRefreshMs }),
      ...(log ? { logger: log } : {}),
    });
    listsForEntries = grantLists;
    await grantLists.start();
    closers.push(() => grantLists.stop());

    const auth = new Authenticator(store, clock);
    // Passkeys are bound to the host name people use; a bad --public-url stops the start.
    const publicRp = opts.publicUrl === undefined ? null : relyingPartyFromUrl(opts.publicUrl);
    let listeningPort = opts.port;
    const passkeys = new Passkeys({
      store,
      clock,
      rpName: 'Threshold',
      rpId: publicRp?.rpId ?? 'localhost',
      origins: () => publicRp?.origins ?? localRelyingParty(listeningPort).origins,
    });
    const app = await createApp({
      store,
      orchestrator,
      gateway,
      auth,
      audit,
      clips,
      events,
      liveView,
      passkeys,
      pins,
      entries,
      deliveryEvents,
      webhooks,
      carrierLimiter: new FixedWindowLimiter(clock, CARRIER_REQUESTS_PER_MINUTE),
      clock,
      ...(opts.demo ? { demo: { doorstep: DEMO_DOORSTEP } } : {}),
      push: { publicKey: vapid.publicKey, repo: store.pushSubscriptions, notifier: push },
      ...(publicOrigin?.startsWith('https:') ? { secureCookies: true } : {}),
      ...(log ? { logger: log } : {}),
      metrics: { metrics, token: opts.metricsToken ?? null },
      extraStats: () => ({
        broker: broker ? broker.stats() : { external: true },
        push: push.stats(),
        webhooks: webhooks.stats(),
        grantLists: grantLists.stats(),
      }),
    });
    closers.push(() => app.close());

    // Clip retention: at start and every hour.
    const retentionMs = (opts.clipRetentionDays ?? 30) * 24 * HOUR_MS;
    let cancelSweep: (() => void) | null = null;
    const sweep = async (): Promise<void> => {
      const deleted = await clips.deleteOlderThan(clock.now() - retentionMs);
      for (const id of deleted) {
        await audit.append({
          kind: 'clip.deleted',
          actor: { type: 'system', id: 'retention' },
          subject: `session:${id}`,
          data: { retentionDays: opts.clipRetentionDays ?? 30 },
        });
      }
      cancelSweep = clock.schedule(
        clock.now() + HOUR_MS,
        () => void sweep().catch(() => undefined),
      );
    };
    await sweep();
    closers.push(() => {
      cancelSweep?.();
      return Promise.resolve();
    });

    await app.listen({ port: opts.port, host: opts.host ?? '127.0.0.1' });
    const address = app.server.address();
    const port = typeof address === 'object' && address ? address.port : opts.port;
    listeningPort = port;
    const host = opts.host ?? '127.0.0.1';
    return {
      url: `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`,
      port,
      brokerUrl,
      app,
      store,
      keys,
      broker,
      gateway,
      orchestrator,
      audit,
      auth,
      events,
      clock,
      push,
      vapid,
      pins,
      entries,
      deliveryEvents,
      webhooks,
      grantLists,
      metrics,
      replica: coordinator,
      async provisionDevice(device: Device): Promise<string> {
        if (!(await store.homes.getDevice(device.id))) await store.homes.createDevice(device);
        await dynsec?.ensureDevice(device);
        gateway.register(device);
        // A new lock gets its list now rather than at the next sweep.
        if (device.kind === 'lock') grantLists.changed(device.homeId);
        return deriveDeviceKey(keys.masterKey, device.id).toString('base64url');
      },
      deviceSecret: (id) => deriveDeviceKey(keys.masterKey, id).toString('base64url'),
      close: closeAll,
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}
