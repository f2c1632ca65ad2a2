/**
 * The owner's live view of a camera: fresh frames only, and never a picture that keeps looking
 * live after the feed stopped or froze (the article's lesson).
 *
 * A frame is shown only once a heartbeat that authenticates (MAC with the session key) names
 * its digest and the observation watchdog counts it fresh — the same rule that vouches for
 * clip frames. The status is `live` while such frames keep coming; when they stop for the
 * watchdog's silence bound the status turns `offline`, when the picture stops changing it
 * turns `frozen`, each "since" the last fresh frame. Every change and every fresh frame is
 * published on the event bus (`live` events), so the page does not poll.
 *
 * Outside an access session, watching arms the camera for a view session of its own (`view-…`)
 * for a lease that the page renews; during an access session the view follows that session's
 * frames, and the view session never takes the camera from it.
 */
import { randomUUID } from 'node:crypto';
import type { Clock } from '../core/clock.ts';
import type { Principal } from '../core/model.ts';
import {
  DEFAULT_WATCHDOG_CONFIG,
  ObservationWatchdog,
  type WatchdogConfig,
} from '../core/observation-watchdog.ts';
import type { FrameMessage, HeartbeatMessage } from '../protocol/device-messages.ts';
import type { LiveViewStatus } from '../protocol/views.ts';
import type { AuditLog } from './audit-log.ts';
import type { DeviceGateway, DeviceGatewayListener, RegisteredDevice } from './device-gateway.ts';
import type { EventBus } from './event-bus.ts';
import { VIEW_SESSION_PREFIX } from './session-orchestrator.ts';

/** How long one "watch" keeps the camera sending, ms; the page renews it. */
export const LIVE_VIEW_LEASE_MS = 30_000;
/** How long a watch may stay `starting` before it counts as offline, ms. */
export const LIVE_VIEW_START_MS = 5_000;
/** Fresh frames kept per camera, to serve the newest ones by digest. */
const RECENT_FRAMES = 6;
/** Frames waiting for a heartbeat to vouch for them, per camera. */
const MAX_PENDING = 16;

/** Which access session, if any, is using a camera now. */
export interface CameraSessions {
  /** The id of the access session recording with this camera, or null. */
  sessionUsingCamera(cameraId: string): string | null;
}

interface FreshFrame {
  readonly digest: string;
  readonly capturedAt: number;
  readonly receivedAt: number;
  readonly jpeg: Buffer;
}

interface CameraView {
  readonly homeId: string;
  readonly cameraId: string;
  /** The view session this service armed, while it holds the camera. */
  viewSessionId: string | null;
  leaseUntil: number;
  watchStartedAt: number;
  /** The session whose heartbeats the watchdog follows. */
  watchdog: ObservationWatchdog | null;
  readonly pending: Map<string, { frame: FrameMessage; jpeg: Buffer }>;
  readonly recent: FreshFrame[];
  status: LiveViewStatus['status'];
  since: number | null;
  cancelCheck: (() => void) | null;
  cancelLease: (() => void) | null;
}

export interface LiveViewOptions {
  readonly gateway: DeviceGateway;
  readonly sessions: CameraSessions;
  readonly clock: Clock;
  readonly events: EventBus;
  readonly audit: AuditLog;
  readonly watchdog?: Partial<WatchdogConfig>;
  readonly leaseMs?: number;
  readonly logger?: { warn(obj: object, msg: string): void };
}

export class LiveViewService implements DeviceGatewayListener {
  private readonly cameras = new Map<string, CameraView>();
  private readonly config: WatchdogConfig;
  private readonly leaseMs: number;

  constructor(private readonly o: LiveViewOptions) {
    this.config = { ...DEFAULT_WATCHDOG_CONFIG, ...o.watchdog };
    this.leaseMs = o.leaseMs ?? LIVE_VIEW_LEASE_MS;
  }

  /**
   * Starts watching a camera, or renews the watch: the camera is armed for a view session
   * unless an access session is using it. The caller has checked that the camera is the
   * principal's.
   */
  async watch(principal: Principal, homeId: string, cameraId: string): Promise<LiveViewStatus> {
    const now = this.o.clock.now();
    const v = this.viewOf(homeId, cameraId);
    const wasWatched = v.leaseUntil > now;
    v.leaseUntil = now + this.leaseMs;
    this.armLeaseTimer(v);
    if (!wasWatched) {
      v.watchStartedAt = now;
      await this.o.audit.append({
        kind: 'live-view.started',
        actor: { type: 'principal', id: principal.id },
        subject: `device:${cameraId}`,
        data: { homeId },
      });
      // A new watch proves nothing yet: live again only with the next fresh frame.
      this.setStatus(v, 'starting', null);
    }
    this.ensureArmed(v);
    return this.status(homeId, cameraId);
  }

  /** What the live view of a camera shows now. */
  status(homeId: string, cameraId: string): LiveViewStatus {
    const v = this.cameras.get(cameraId);
    const now = this.o.clock.now();
    const newest = v?.recent.at(-1) ?? null;
    return {
      homeId,
      cameraId,
      status: v?.status ?? 'offline',
      since: v?.since ?? null,
      frame: newest
        ? {
            digest: newest.digest,
            capturedAt: newest.capturedAt,
            receivedAt: newest.receivedAt,
            url: `/api/homes/${homeId}/cameras/${cameraId}/frames/${newest.digest}`,
          }
        : null,
      sessionId: this.o.sessions.sessionUsingCamera(cameraId) ?? v?.viewSessionId ?? null,
      at: now,
    };
  }

  /** The JPEG of one of the newest fresh frames of a camera, or null. */
  frame(cameraId: string, digest: string): Buffer | null {
    return this.cameras.get(cameraId)?.recent.find((f) => f.digest === digest)?.jpeg ?? null;
  }

  /**
   * An access session ended: if someone is still watching, take the camera back for the
   * view (the session disarmed it).
   */
  sessionEnded(cameraId: string): void {
    const v = this.cameras.get(cameraId);
    if (!v || v.leaseUntil <= this.o.clock.now()) return;
    v.viewSessionId = null;
    this.ensureArmed(v);
  }

  /** Stops every timer and releases the cameras it armed. */
  stop(): void {
    for (const v of this.cameras.values()) {
      v.cancelCheck?.();
      v.cancelLease?.();
      if (v.viewSessionId) this.disarm(v);
    }
    this.cameras.clear();
  }

  // ---- DeviceGatewayListener ----

  onHeartbeat(device: RegisteredDevice, hb: HeartbeatMessage, macValid: boolean): void {
    const v = this.cameras.get(device.id);
    // Nobody watching: nothing is tracked, so nothing can look live later from old tracking.
    if (!v || !macValid || v.leaseUntil <= this.o.clock.now()) return;
    const expected = this.o.sessions.sessionUsingCamera(device.id) ?? v.viewSessionId;
    if (expected === null || hb.sessionId !== expected) return;
    if (v.watchdog?.sessionId !== expected)
      v.watchdog = new ObservationWatchdog(expected, this.config);
    const now = this.o.clock.now();
    const verdict = v.watchdog.onHeartbeat({ ...hb, macValid }, now);
    if (!verdict.accepted) return;
    if (verdict.fresh) {
      const p = v.pending.get(hb.frameDigest);
      if (p) {
        v.pending.delete(hb.frameDigest);
        v.recent.push({
          digest: p.frame.digest,
          capturedAt: p.frame.capturedAt,
          receivedAt: now,
          jpeg: p.jpeg,
        });
        if (v.recent.length > RECENT_FRAMES) v.recent.shift();
        if (v.status !== 'live') this.setStatus(v, 'live', now, false);
        this.publish(v);
      }
    }
    this.armCheck(v);
  }

  onFrame(device: RegisteredDevice, frame: FrameMessage, jpeg: Buffer): void {
    const v = this.cameras.get(device.id);
    if (!v || v.leaseUntil <= this.o.clock.now()) return;
    v.pending.set(frame.digest, { frame, jpeg });
    if (v.pending.size > MAX_PENDING) {
      const oldest = v.pending.keys().next().value;
      if (oldest !== undefined) v.pending.delete(oldest);
    }
  }

  onAvailability(device: RegisteredDevice, online: boolean): void {
    const v = this.cameras.get(device.id);
    if (!v) return;
    if (!online && v.status !== 'offline') {
      this.setStatus(v, 'offline', v.recent.at(-1)?.receivedAt ?? this.o.clock.now());
    }
    // Back online: the camera forgot its arming when it lost the link.
    if (online && v.leaseUntil > this.o.clock.now()) {
      v.viewSessionId = null;
      this.ensureArmed(v);
    }
  }

  // ---- internals ----

  private viewOf(homeId: string, cameraId: string): CameraView {
    let v = this.cameras.get(cameraId);
    if (!v) {
      v = {
        homeId,
        cameraId,
        viewSessionId: null,
        leaseUntil: 0,
        watchStartedAt: 0,
        watchdog: null,
        pending: new Map(),
        recent: [],
        status: 'starting',
        since: null,
        cancelCheck: null,
        cancelLease: null,
      };
      this.cameras.set(cameraId, v);
    }
    return v;
  }

  /** Arms the camera for a view session unless it is armed already or in an access session. */
  private ensureArmed(v: CameraView): void {
    if (this.o.sessions.sessionUsingCamera(v.cameraId) !== null) return;
    if (v.viewSessionId !== null) return;
    v.viewSessionId = `${VIEW_SESSION_PREFIX}${randomUUID()}`;
    const sessionId = v.viewSessionId;
    this.armCheck(v);
    void this.o.gateway.command(v.cameraId, 'arm', { sessionId }).then(
      (out) => {
        // The camera did not take the arm: try again at the next renewal.
        if (out.status !== 'ok' && v.viewSessionId === sessionId) v.viewSessionId = null;
      },
      (err: unknown) => {
        if (v.viewSessionId === sessionId) v.viewSessionId = null;
        this.o.logger?.warn({ err: String(err), camera: v.cameraId }, 'live view arm failed');
      },
    );
  }

  private disarm(v: CameraView): void {
    const sessionId = v.viewSessionId;
    v.viewSessionId = null;
    if (sessionId === null || this.o.sessions.sessionUsingCamera(v.cameraId) !== null) return;
    void this.o.gateway.command(v.cameraId, 'disarm', { sessionId }).catch(() => undefined);
  }

  private armLeaseTimer(v: CameraView): void {
    v.cancelLease?.();
    v.cancelLease = this.o.clock.schedule(v.leaseUntil, () => {
      v.cancelLease = null;
      if (v.leaseUntil > this.o.clock.now()) return;
      // Nobody is watching any more: what is kept is the last fresh frame, labelled as old.
      v.cancelCheck?.();
      v.cancelCheck = null;
      this.disarm(v);
      v.watchdog = null;
      v.pending.clear();
      if (v.status !== 'offline') {
        this.setStatus(v, 'offline', v.recent.at(-1)?.receivedAt ?? null);
      }
    });
  }

  /** Schedules the next silence / freeze check (and the end of `starting`). */
  private armCheck(v: CameraView): void {
    v.cancelCheck?.();
    v.cancelCheck = null;
    const now = this.o.clock.now();
    const watchdogAt = v.watchdog?.nextCheckAt() ?? null;
    const startAt = v.status === 'starting' ? v.watchStartedAt + LIVE_VIEW_START_MS : null;
    // Silence is also timed here, from the newest fresh frame: when the camera moves to another
    // session, the new session's watchdog has seen nothing yet and would not notice it.
    const lastHeard = this.lastHeard(v);
    const silenceAt =
      v.status === 'live' && lastHeard !== null ? lastHeard + this.config.silenceMs : null;
    const candidates = [watchdogAt, startAt, silenceAt].filter((t): t is number => t !== null);
    if (candidates.length === 0 || v.leaseUntil <= now) return;
    v.cancelCheck = this.o.clock.schedule(Math.max(now, Math.min(...candidates)), () => {
      v.cancelCheck = null;
      this.check(v);
    });
  }

  private check(v: CameraView): void {
    const now = this.o.clock.now();
    const lastFresh = v.recent.at(-1)?.receivedAt ?? null;
    const t = v.watchdog?.check(now) ?? null;
    if (t && (t.to === 'lost' || t.to === 'frozen')) {
      this.setStatus(v, t.to === 'lost' ? 'offline' : 'frozen', lastFresh ?? t.sinceMs);
    } else if (v.status === 'live' && now - (this.lastHeard(v) ?? now) >= this.config.silenceMs) {
      this.setStatus(v, 'offline', lastFresh);
    } else if (
      v.status === 'starting' &&
      now >= v.watchStartedAt + LIVE_VIEW_START_MS &&
      (v.watchdog === null || v.watchdog.lastFreshHeartbeatAt === null)
    ) {
      this.setStatus(v, 'offline', lastFresh);
    }
    this.armCheck(v);
  }

  /** When the newest fresh frame or authentic heartbeat of the watched session arrived. */
  private lastHeard(v: CameraView): number | null {
    const fresh = v.recent.at(-1)?.receivedAt ?? null;
    const heard = v.watchdog?.lastAcceptedHeartbeatAt ?? null;
    if (fresh === null) return heard;
    return heard === null ? fresh : Math.max(fresh, heard);
  }

  private setStatus(
    v: CameraView,
    status: LiveViewStatus['status'],
    since: number | null,
    publish = true,
  ): void {
    v.status = status;
    v.since = since;
    if (publish) this.publish(v);
  }

  private publish(v: CameraView): void {
    this.o.events.publish({
      type: 'live',
      homeId: v.homeId,
      view: this.status(v.homeId, v.cameraId),
    });
  }
}
