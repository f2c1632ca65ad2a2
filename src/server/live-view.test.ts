/**
 * The live view's rules on a fake clock: a frame shows only once an authentic, fresh heartbeat
 * vouches for it; silence turns it offline and a repeated picture frozen, each since the last
 * fresh frame; when nobody watches any more it is offline, and a new watch starts over.
 * (The same service against the real broker and camera: test/owner-web-api.test.ts.)
 */
import { createHash } from 'node:crypto';
import { beforeEach, describe, expect, it } from 'vitest';
import { FakeClock } from '../core/clock.ts';
import type { Principal } from '../core/model.ts';
import type { LiveViewStatus } from '../protocol/views.ts';
import type { AuditLog } from './audit-log.ts';
import type { DeviceGateway, RegisteredDevice } from './device-gateway.ts';
import { EventBus } from './event-bus.ts';
import { LIVE_VIEW_LEASE_MS, LiveViewService } from './live-view.ts';

const CAMERA: RegisteredDevice = { id: 'cam-1', homeId: 'home-1', kind: 'camera' };
const OWNER: Principal = {
  id: 'owner-1',
  role: 'owner',
  displayName: 'Owner',
  homeId: 'home-1',
  carrierId: null,
};
const SILENCE_MS = 1_250;
const FREEZE_MS = 3_000;

let clock: FakeClock;
let events: EventBus;
let seen: LiveViewStatus[];
let commands: { action: string; sessionId: unknown }[];
let accessSession: string | null;
let live: LiveViewService;
let seq = 0;

beforeEach(() => {
  clock = new FakeClock();
  events = new EventBus();
  seen = [];
  events.subscribe((e) => {
    if (e.type === 'live') seen.push(e.view);
  });
  commands = [];
  accessSession = null;
  seq = 0;
  const gateway = {
    command: (_device: string, action: string, args: { sessionId?: string }) => {
      commands.push({ action, sessionId: args.sessionId });
      return Promise.resolve({ status: 'ok', commandId: 'c' });
    },
  } as unknown as DeviceGateway;
  const audit = { append: () => Promise.resolve() } as unknown as AuditLog;
  live = new LiveViewService({
    gateway,
    sessions: { sessionUsingCamera: () => accessSession },
    clock,
    events,
    audit,
    watchdog: { silenceMs: SILENCE_MS, freezeMs: FREEZE_MS },
  });
});

function viewSessionId(): string {
  const arm = commands.filter((c) => c.action === 'arm').at(-1);
  if (typeof arm?.sessionId !== 'string') throw new Error('the camera was not armed');
  return arm.sessionId;
}

/** The camera sends a frame and a heartbeat naming it (authentic unless `macValid` is false). */
function send(sessionId: string, picture: string, macValid = true): string {
  const jpeg = Buffer.from(picture);
  const digest = createHash('sha256').update(jpeg).digest('hex');
  live.onFrame(CAMERA, { sessionId, capturedAt: clock.now(), digest, jpeg: '' }, jpeg);
  live.onHeartbeat(
    CAMERA,
    {
      sessionId,
      seq: seq++,
      capturedAt: clock.now(),
      frameDigest: digest,
      recording: true,
      mac: 'x',
    },
    macValid,
  );
  return digest;
}

const status = () => live.status('home-1', 'cam-1');

describe('LiveViewService', () => {
  it('arms the camera for a view session and shows only vouched, fresh frames', async () => {
    expect((await live.watch(OWNER, 'home-1', 'cam-1')).status).toBe('starting');
    const sid = viewSessionId();
    expect(sid).toMatch(/^view-/);

    send(sid, 'forged picture', false);
    expect(status().status).toBe('starting');
    expect(status().frame).toBeNull();

    const digest = send(sid, 'picture 1');
    expect(status()).toMatchObject({ status: 'live', frame: { digest } });
    expect(live.frame('cam-1', digest)?.toString()).toBe('picture 1');
    // A heartbeat of another session is not this view's.
    send('view-other', 'picture from elsewhere');
    expect(status().frame?.digest).toBe(digest);
  });

  it('turns offline since the last fresh frame when the camera falls silent', async () => {
    await live.watch(OWNER, 'home-1', 'cam-1');
    const sid = viewSessionId();
    send(sid, 'a');
    clock.advance(500);
    send(sid, 'b');
    const lastFresh = clock.now();
    clock.advance(SILENCE_MS - 1);
    expect(status().status).toBe('live');
    clock.advance(1);
    expect(status()).toMatchObject({ status: 'offline', since: lastFresh });
    expect(seen.at(-1)).toMatchObject({ status: 'offline', since: lastFresh });
  });

  it('turns frozen when heartbeats go on with the same picture', async () => {
    await live.watch(OWNER, 'home-1', 'cam-1');
    const sid = viewSessionId();
    send(sid, 'moving 1');
    const lastFresh = clock.now();
    for (let t = 500; t <= FREEZE_MS + 500; t += 500) {
      clock.advance(500);
      send(sid, 'stuck');
    }
    // 'stuck' was fresh once, at +500; after that the same picture over and over.
    expect(status().status).toBe('frozen');
    expect(status().since).toBe(lastFresh + 500);
    expect(seen.some((v) => v.status === 'offline')).toBe(false);
  });

  it('when nobody renews the watch: disarms, shows offline, and a new watch starts over', async () => {
    await live.watch(OWNER, 'home-1', 'cam-1');
    const sid = viewSessionId();
    for (let t = 0; t < LIVE_VIEW_LEASE_MS; t += 500) {
      send(sid, `frame ${t}`);
      clock.advance(500);
    }
    expect(commands.filter((c) => c.action === 'disarm')).toEqual([
      { action: 'disarm', sessionId: sid },
    ]);
    expect(status().status).toBe('offline');
    // A late heartbeat after the lease does not bring back "live".
    send(sid, 'late frame');
    expect(status().status).toBe('offline');

    expect((await live.watch(OWNER, 'home-1', 'cam-1')).status).toBe('starting');
    const again = viewSessionId();
    expect(again).not.toBe(sid);
    send(again, 'new frame');
    expect(status().status).toBe('live');
  });

  it('never takes the camera from an access session, and follows that session’s frames', async () => {
    accessSession = 'session-1';
    await live.watch(OWNER, 'home-1', 'cam-1');
    expect(commands).toEqual([]);
    send('session-1', 'delivery frame');
    expect(status()).toMatchObject({ status: 'live', sessionId: 'session-1' });
    // The session ends (its camera is disarmed by the orchestrator); the view takes it back.
    accessSession = null;
    live.sessionEnded('cam-1');
    expect(viewSessionId()).toMatch(/^view-/);
  });
});
