/**
 * camera-link-down — the article's jammer on a real network link (issue 7). The camera runs as a
 * process of its own inside a network namespace, joined to the control plane's machine by a veth
 * pair; mid-visit its link is taken down (`ip link set <dev> down` on the camera's side), as a
 * deauthentication flood or a jammer does to a Wi-Fi camera: the camera's packets stop, and no
 * FIN or RST ever reaches the broker. The other fault scenarios bend the link in a proxy; here
 * the kernel drops it.
 *
 * The control plane's broker listens on loopback; the camera reaches it at the host end of the
 * veth through a fault proxy with no fault set, a plain relay: it closes the broker's side only
 * when the camera's side closes, which a downed link never reports, so the broker learns of the
 * loss from silence alone, as it would with the camera's connection in hand.
 *
 * Given a delivery whose door opened, the camera recording it over the veth, the courier's and
 * the owner's apps streaming live events, and the courier stepping in through the open door,
 * when the camera's link goes down and stays down,
 * then `observation-lost` is raised within the watchdog's bound of the last valid heartbeat
 * (the detection time is measured and reported), the courier's app and the owner's app are told
 * and the owner's alarm list has it, nothing more arrives from the camera, the home view shows
 * the camera offline once the broker's keepalive gives up, no lock is thrown into the open door,
 * the lock is commanded as soon as the door closes and confirms it, and the session never shows
 * "completed": it ends aborted `session.observation-lost` with the gap listed and audited; when
 * the link comes back the camera reconnects by itself and the session stays what it was.
 *
 * Needs root and iproute2 (CI has both). Without them the scenario fails with the reason: it
 * never passes or skips silently. It sets up and tears down its own namespace, camera process and
 * relay, whatever happens.
 */
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { ServerEvent } from '../../protocol/views.ts';
import type { CameraChildConfig, CameraChildReport, CameraChildScene } from '../camera-child.ts';
import { FaultProxy } from '../fault-proxy.ts';
import { assertNetnsPossible, createNetns, type Netns } from '../netns.ts';
import type { Scenario } from '../scenario.ts';
import type { ScenarioWorld } from '../scenario-world.ts';
import { call, errorCode, signIn, signInOwner } from './common-steps.ts';
import {
  courierLeavesAndDoorRelocks,
  courierStepsIn,
  expectAbortedUnseen,
  expectNothingThrownWhileInside,
  expectObservationLostAfterCut,
  SessionTrace,
  type CameraSees,
  type DoorWatch,
} from './steps-net.ts';

const PURPOSE = 'the camera-link-down scenario';
const WHY =
  'it runs the camera in a network namespace of its own and takes the link down, as a jammer would';
/** Namespace names `thr-cam-<pid>-<n>`; interfaces `thch…` (here) and `thcd…` (the camera's). */
export const CAMERA_NETNS_PREFIX = 'thr-cam-';
/** The camera's MQTT keepalive, s: the broker gives up on a silent camera after 1.5× this. */
const CAMERA_KEEPALIVE_S = 2;
/** The camera retries its connection this often, ms. */
const CAMERA_RECONNECT_MS = 1_000;
/** The apps are told within this of the alarm, ms. */
const TOLD_BOUND_MS = 1_000;
/** The home view shows the camera offline within this of the link going down, ms. */
const SHOWN_OFFLINE_BOUND_MS = CAMERA_KEEPALIVE_S * 1_500 + 3_000;
/** Once the link is back, the camera is heard again within this, ms. */
const BACK_WITHIN_MS = 10_000;

const CHILD_SCRIPT = fileURLToPath(new URL('../camera-child.ts', import.meta.url));
/** tsx's loader by absolute URL, so the child starts whatever the working directory. */
const TSX_LOADER = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

/** The camera as a child process inside the namespace, driven through its stdin. */
class CameraChild {
  readonly links: { link: 'up' | 'down'; at: number }[] = [];
  private readonly stderr: string[] = [];

  private constructor(private readonly child: ChildProcessWithoutNullStreams) {}

  /** Starts the camera in `netns` and resolves once it is connected to the broker. */
  static async start(netns: Netns, config: CameraChildConfig): Promise<CameraChild> {
    const child = netns.spawn(process.execPath, ['--import', TSX_LOADER, CHILD_SCRIPT], {
      stdio: ['pipe', 'pipe', 'pipe'],
    }) as ChildProcessWithoutNullStreams;
    const camera = new CameraChild(child);
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      camera.stderr.push(chunk);
      if (camera.stderr.length > 50) camera.stderr.shift();
    });
    // A write after the child died fails asynchronously; the exit is what reports it.
    child.stdin.on('error', () => undefined);
    const lines = createInterface({ input: child.stdout });
    const ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`the camera process did not connect: ${camera.said()}`)),
        30_000,
      );
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`the camera process exited (${code}): ${camera.said()}`));
      });
      lines.on('line', (line) => {
        let r: CameraChildReport;
        try {
          r = JSON.parse(line) as CameraChildReport;
        } catch {
          camera.stderr.push(line);
          return;
        }
        if ('ready' in r) {
          clearTimeout(timer);
          resolve();
        } else if ('link' in r) camera.links.push(r);
        else camera.stderr.push(r.error);
      });
    });
    child.stdin.write(`${JSON.stringify({ config })}\n`);
    try {
      await ready;
    } catch (err) {
      child.kill('SIGKILL');
      throw err;
    }
    return camera;
  }

  /** Tells the camera what it sees. */
  setScene(scene: CameraChildScene): void {
    this.child.stdin.write(`${JSON.stringify({ scene })}\n`);
  }

  /** Ends the process: stdin closed (it closes its link), killed if it lingers. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.stdin.end();
    // Its link is down: closing it cleanly waits for the broker in vain, so it gets 3 s.
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 3_000);
    await exited;
    clearTimeout(timer);
  }

  /** What the process said on stderr or in error reports (the end of it). */
  said(): string {
    return this.stderr.join('').slice(-2_000);
  }
}

/** One event of an app's live stream, with the server time it arrived. */
interface StreamedEvent {
  readonly at: number;
  readonly event: ServerEvent;
}

/** An app's live stream (`GET /api/events`, server-sent events), as the web app reads it. */
class EventStream {
  readonly events: StreamedEvent[] = [];
  private readonly abort = new AbortController();
  private reading: Promise<void> = Promise.resolve();

  private constructor(private readonly world: ScenarioWorld) {}

  /** Opens the stream as whoever holds `token`; throws if it is refused. */
  static async open(world: ScenarioWorld, token: string): Promise<EventStream> {
    const stream = new EventStream(world);
    const res = await fetch(`${world.sys.url}/api/events`, {
      headers: { authorization: `Bearer ${token}` },
      signal: stream.abort.signal,
    });
    if (res.status !== 200 || res.body === null) {
      throw new Error(`the live event stream was refused: HTTP ${res.status}`);
    }
    const reader = res.body.getReader();
    stream.reading = stream.read(reader).catch(() => undefined);
    return stream;
  }

  private async read(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    let buffer = '';
    for (;;) {
      const chunk = await reader.read();
      if (chunk.done) return;
      buffer += decoder.decode(chunk.value, { stream: true });
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = block
          .split('\n')
          .filter((l) => l.startsWith('data: '))
          .map((l) => l.slice('data: '.length))
          .join('\n');
        if (data !== '') {
          this.events.push({
            at: this.world.sys.clock.now(),
            event: JSON.parse(data) as ServerEvent,
          });
        }
      }
    }
  }

  /** The first event satisfying `pred`, waiting up to `timeoutMs`; null if none came. */
  async first(pred: (e: ServerEvent) => boolean, timeoutMs: number): Promise<StreamedEvent | null> {
    const found = (): StreamedEvent | undefined => this.events.find((e) => pred(e.event));
    try {
      await this.world.waitFor(() => found() !== undefined, timeoutMs, 'a live event');
    } catch {
      return null;
    }
    return found() ?? null;
  }

  async close(): Promise<void> {
    this.abort.abort();
    await this.reading;
  }
}

/** Polls `pred` until it holds; the server time it first held, or null after `timeoutMs`. */
async function whenTrue(
  world: ScenarioWorld,
  pred: () => boolean | Promise<boolean>,
  timeoutMs: number,
): Promise<number | null> {
  try {
    await world.waitFor(pred, timeoutMs, 'a condition');
    return world.sys.clock.now();
  } catch {
    return null;
  }
}

/** See the module comment. */
export const cameraLinkDown: Scenario = {
  name: 'camera-link-down',
  expected:
    'camera in its own network namespace, link taken down with the door open → observation-lost within 2 s, courier and owner told, never "completed", lock commanded as the door closes and confirmed, aborted with the gap on record',
  async story({ world, expect }) {
    try {
      assertNetnsPossible(PURPOSE, WHY);
    } catch (err) {
      // Not a crash and never a pass: the reason is the report's failure.
      expect.that(false, err instanceof Error ? err.message : String(err));
      return { session: null };
    }
    const { sys, creds } = world;
    const cameraId = creds.devices.camera.id;
    const netns = await createNetns({
      purpose: PURPOSE,
      prefix: CAMERA_NETNS_PREFIX,
      interfaceTag: 'thc',
      ipv4: true,
    });
    const where = {
      namespace: netns.namespace,
      hostInterface: netns.hostInterface,
      deviceInterface: netns.deviceInterface,
      subnet: netns.ipv4Subnet,
    };
    let doorway: FaultProxy | null = null;
    let camera: CameraChild | null = null;
    const streams: EventStream[] = [];
    let watch: DoorWatch | null = null;
    let trace: SessionTrace | null = null;
    try {
      if (netns.hostIpv4 === null) throw new Error('the camera link has no IPv4 address');
      // The broker, as the camera's network sees it: the host end of the veth.
      doorway = new FaultProxy({ upstream: sys.brokerUrl, host: netns.hostIpv4, seed: 7 });
      await doorway.start();

      // The camera moves into its own network: the in-process one leaves, the child takes its
      // identity (same id, same key).
      const movedAt = sys.clock.now();
      world.home.camera.stop();
      await world.home.links.camera.close();
      camera = await CameraChild.start(netns, {
        brokerUrl: doorway.url,
        homeId: creds.homeId,
        deviceId: cameraId,
        key: creds.devices.camera.secret,
        keepaliveSeconds: CAMERA_KEEPALIVE_S,
        reconnectPeriodMs: CAMERA_RECONNECT_MS,
      });
      await world.waitFor(
        () => {
          const s = sys.gateway.liveStatus(cameraId);
          return s?.online === true && (s.lastSeenAt ?? 0) > movedAt;
        },
        10_000,
        'the server hears the camera from its namespace',
      );
      expect.that(
        doorway.stats().connectionsAccepted === 1,
        `the camera reaches the broker over the veth (${doorway.stats().connectionsAccepted} connections)`,
      );

      // The courier's and the owner's apps are open, streaming live events.
      const courierToken = await signIn(world, creds.courier.username, creds.courier.password);
      const ownerToken = await signInOwner(world);
      const courierApp = await EventStream.open(world, courierToken);
      streams.push(courierApp);
      const ownerApp = await EventStream.open(world, ownerToken);
      streams.push(ownerApp);

      const deliveryId = await world.newDelivery();
      const access = await world.requestAccess(deliveryId);
      const opened = access.body.session as { id?: string; state?: string } | undefined;
      expect.that(
        access.status === 200 && opened?.state === 'open',
        `the door opens for the courier, the camera recording over the veth (HTTP ${access.status} ${opened?.state ?? errorCode(access)})`,
      );
      if (access.status !== 200 || opened?.id === undefined) {
        return { session: null, extra: where };
      }
      const sessionId = opened.id;
      trace = new SessionTrace(world, () => sessionId);

      // The courier opens the door and steps in; the camera child sees them in the doorway.
      const child = camera;
      const cameraSees: CameraSees = (inside) =>
        child.setScene({ doorOpen: inside, person: inside });
      watch = await courierStepsIn(world, sessionId, cameraSees);

      // The jammer: the camera's link goes down. Nothing is said to the broker.
      await netns.setDeviceLink(false);
      const downAt = sys.clock.now();
      expect.that(!(await netns.deviceLinkUp()), "the camera's link is down");

      const {
        alarm,
        detectionMs,
        fromCutMs: fromLinkDownMs,
      } = await expectObservationLostAfterCut(
        world,
        expect,
        sessionId,
        downAt,
        'the link went down',
      );
      const fromCameraAtAlarm = doorway.stats().upstream.bytesIn;

      // The courier's app hears it: the camera is lost, further unlocks blocked.
      const courierTold = await courierApp.first(
        (e) =>
          e.type === 'session' &&
          e.session.id === sessionId &&
          e.session.alarms.some((a) => a.type === 'observation-lost'),
        TOLD_BOUND_MS + 4_000,
      );
      const courierToldMs = courierTold === null ? null : courierTold.at - alarm.atMs;
      expect.that(
        courierToldMs !== null && courierToldMs <= TOLD_BOUND_MS,
        `the courier's app is told within ${TOLD_BOUND_MS} ms of the alarm (${courierToldMs ?? 'never'})`,
      );
      const told = courierTold?.event.type === 'session' ? courierTold.event.session : null;
      expect.that(
        told?.observation === 'lost' && told.unlockBlocked === 'session.observation-lost',
        `…that the camera is lost and unlocking blocked (${told?.observation}, ${told?.unlockBlocked})`,
      );
      // What the courier's app reads when it opens the visit. (Whether the camera shows `lost`
      // there depends on the moment: a heartbeat already on its way when the link went down may
      // still arrive and be shown; the alarm and the block stay.)
      const courierView = await call(
        world,
        'GET',
        `/api/courier/sessions/${sessionId}`,
        courierToken,
      );
      const seen = courierView.body.session as
        { unlockBlocked?: string | null; alarms?: { type: string }[] } | undefined;
      expect.that(
        courierView.status === 200 &&
          seen?.unlockBlocked === 'session.observation-lost' &&
          (seen.alarms ?? []).some((a) => a.type === 'observation-lost'),
        `the courier's session shows the alarm and unlocking blocked (HTTP ${courierView.status}: ${seen?.unlockBlocked})`,
      );

      // The owner's app hears the alarm, and the home's alarm list has it.
      const ownerTold = await ownerApp.first(
        (e) =>
          e.type === 'alarm' && e.sessionId === sessionId && e.alarm.type === 'observation-lost',
        TOLD_BOUND_MS + 4_000,
      );
      const ownerToldMs = ownerTold === null ? null : ownerTold.at - alarm.atMs;
      expect.that(
        ownerToldMs !== null && ownerToldMs <= TOLD_BOUND_MS,
        `the owner's app is told within ${TOLD_BOUND_MS} ms of the alarm (${ownerToldMs ?? 'never'})`,
      );
      const list = await call(world, 'GET', `/api/homes/${creds.homeId}/alarms`, ownerToken);
      const ownerSees = (
        (list.body.alarms as { sessionId: string; type: string }[] | undefined) ?? []
      )
        .filter((a) => a.sessionId === sessionId)
        .map((a) => a.type);
      expect.that(
        list.status === 200 && ownerSees.includes('observation-lost'),
        `the owner's alarm list has observation-lost (HTTP ${list.status}: ${ownerSees.join(', ') || 'none'})`,
      );

      // The courier is still inside, the door open: nothing may be thrown into it.
      const lockCommandsWhileOpen = await expectNothingThrownWhileInside(world, expect, sessionId);
      const fromCameraAfterAlarm = doorway.stats().upstream.bytesIn - fromCameraAtAlarm;
      expect.that(
        fromCameraAfterAlarm === 0,
        `nothing arrives from the camera once its link is down (${fromCameraAfterAlarm} bytes)`,
      );

      // The broker is told nothing; its keepalive gives up on the silent camera, and the home
      // view shows the camera offline.
      const shownOfflineAt = await whenTrue(
        world,
        async () => {
          const home = await call(world, 'GET', `/api/homes/${creds.homeId}`, ownerToken);
          const doors = (home.body.doors as { camera?: { online?: boolean } }[] | undefined) ?? [];
          return doors[0]?.camera?.online === false;
        },
        SHOWN_OFFLINE_BOUND_MS + 2_000,
      );
      const cameraShownOfflineMs = shownOfflineAt === null ? null : shownOfflineAt - downAt;
      expect.that(
        cameraShownOfflineMs !== null && cameraShownOfflineMs <= SHOWN_OFFLINE_BOUND_MS,
        `the owner's home view shows the camera offline within ${SHOWN_OFFLINE_BOUND_MS} ms of the link going down (${cameraShownOfflineMs ?? 'never'})`,
      );

      // The courier walks out and pulls the door shut; the session ends unseen.
      const { commandAfterCloseMs, relockMs } = await courierLeavesAndDoorRelocks(
        world,
        expect,
        sessionId,
        cameraSees,
      );
      const done = await expectAbortedUnseen(world, expect, sessionId, watch);

      // The link comes back: the camera reconnects by itself; the visit's record stays as it was.
      await netns.setDeviceLink(true);
      const upAt = sys.clock.now();
      const backAt = await whenTrue(
        world,
        () => {
          const s = sys.gateway.liveStatus(cameraId);
          return s?.online === true && (s.lastSeenAt ?? 0) > upAt;
        },
        BACK_WITHIN_MS,
      );
      const cameraBackMs = backAt === null ? null : backAt - upAt;
      expect.that(
        cameraBackMs !== null,
        `the camera reconnects by itself once its link is back (${cameraBackMs ?? 'not'} ms)`,
      );
      const after = await world.session(sessionId);
      trace.stop();
      expect.that(
        after.state === 'aborted' && after.outcome?.code === 'session.observation-lost',
        `the session stays aborted after the camera is back (${after.state})`,
      );
      const states = [...new Set(trace.changes.map((c) => c.session.state))];
      expect.that(
        !states.includes('completed'),
        `the session never shows completed (${states.join(' → ')})`,
      );
      const courierEnd = await call(
        world,
        'GET',
        `/api/courier/sessions/${sessionId}`,
        courierToken,
      );
      const courierState = (courierEnd.body.session as { state?: string } | undefined)?.state;
      expect.that(
        courierState === 'aborted',
        `the courier's app shows the visit aborted, not done (${courierState})`,
      );

      return {
        session: done,
        extra: {
          ...where,
          detectionMs,
          fromLinkDownMs,
          courierToldMs,
          ownerToldMs,
          ownerSees,
          cameraShownOfflineMs,
          commandAfterCloseMs,
          relockMs,
          cameraBackMs,
          lockCommandsWhileOpen,
          cameraLinkReports: camera.links.map((l) => l.link),
        },
      };
    } finally {
      watch?.stop();
      trace?.stop();
      for (const stream of streams) await stream.close();
      await camera?.stop();
      await doorway?.close();
      await netns.destroy();
    }
  },
};
