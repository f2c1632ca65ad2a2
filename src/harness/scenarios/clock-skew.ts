/**
 * clock-skew — the door's devices keep the wrong time: a camera and a lock whose clocks run
 * minutes ahead of or behind the control plane's (never set, drifted, or moved on purpose).
 *
 * What the protocol promises (docs/device-protocol.md 5.2 and 6.2; docs/threat-model.md "Clock
 * skew"): a device takes a command whose `issuedAt` is up to 5 min in its future and whose
 * `expiresAt` is up to 5 min in its past (commands expire 10 s after issue), and refuses any
 * other with `command.expired`; the server takes heartbeats whose `capturedAt` is within 10 min
 * of its own clock; audit entries carry the server's time, with the device's beside it.
 *
 * A device's reports must also move forward in its own time (`at`), and the server remembers
 * the last `at` it took from each device until it restarts: devices that were already heard on
 * the right time cannot then be put *behind*. So devices ahead are tried on this scenario's
 * world, and devices behind on a second control plane of the story's own, whose devices were
 * off from the start — as a device with a wrong clock usually is.
 *
 * Given the demo door, its lock, door sensor and camera sharing one clock (they sit in one
 * house),
 * when that clock is 5 min ahead, then 6 min ahead (on the world's control plane), and 6 min
 * behind, then 5 min behind (on the story's own), and each time a courier comes to deliver,
 * then at ±5 min the visit runs as on time: every command is taken, every heartbeat counts
 * (coverage 1) and the session completes, with the lock's own time of locking on record 5 min
 * off the server's; at ±6 min the camera refuses `arm` with `command.expired`, so the door never
 * opens and the session ends refused `camera.not-recording`.
 */
import type { Expectations, Scenario, StoryResult } from '../scenario.ts';
import {
  courierVisit,
  devicesWithClockOffset,
  signInAt,
  startOwnControlPlane,
  type SwappableDoor,
  type VisitOutcome,
} from './steps-integrity.ts';

const MIN = 60_000;
/** The protocol's tolerance: ±5 min for commands. */
const TOLERATED_MS = 5 * MIN;
const BEYOND_MS = 6 * MIN;

/** What one skew came to, for the report. */
interface SkewResult {
  readonly skewMs: number;
  readonly state: string;
  readonly reason: string | null;
  readonly coverage: number | null;
  readonly deviceRefusals: readonly { action: string; error: string; at: number }[];
  /** The lock's own time of locking minus the server's time it heard of it, ms. */
  readonly lockClockLeadMs: number | null;
  /** From the courier's request to the session's end, ms. */
  readonly endedAfterMs: number | null;
  /** From the courier's request to the device's refusal of a command, ms (null: none). */
  readonly refusedByDeviceAfterMs: number | null;
  readonly sessionId: string | null;
}

function summary(skewMs: number, v: VisitOutcome): SkewResult {
  const s = v.session;
  return {
    skewMs,
    state: s?.state ?? `HTTP ${v.access.status}`,
    reason: s?.outcome?.code ?? null,
    coverage: s === null ? null : Math.round(s.coverage.ratio * 10_000) / 10_000,
    deviceRefusals: v.deviceRefusals,
    lockClockLeadMs:
      s?.lockedAtByLock != null && s.lockConfirmedAt !== null
        ? s.lockedAtByLock - s.lockConfirmedAt
        : null,
    endedAfterMs: s?.endedAt != null ? s.endedAt - s.createdAt : null,
    refusedByDeviceAfterMs:
      s !== null && v.deviceRefusals[0] !== undefined ? v.deviceRefusals[0].at - s.createdAt : null,
    sessionId: s?.id ?? null,
  };
}

/** A visit with devices `skewMs` off must run exactly as on time. */
async function tolerated(
  door: SwappableDoor,
  expect: Expectations,
  skewMs: number,
): Promise<SkewResult> {
  await devicesWithClockOffset(door, skewMs);
  const v = await courierVisit(door);
  const r = summary(skewMs, v);
  const label = `${skewMs > 0 ? '+' : ''}${skewMs / MIN} min`;
  expect.that(
    v.access.status === 200 && r.state === 'completed' && r.deviceRefusals.length === 0,
    `at ${label} the visit completes, every command taken (${r.state} ${r.reason ?? ''}, refusals: ${JSON.stringify(r.deviceRefusals)})`,
  );
  const rejected = v.session
    ? (await door.sys.store.audit.entriesForSubject(`session:${v.session.id}`)).filter(
        (e) => e.kind === 'heartbeat.rejected',
      ).length
    : -1;
  expect.that(
    rejected === 0 && r.coverage === 1,
    `at ${label} every heartbeat counts (${rejected} rejected, coverage ${r.coverage})`,
  );
  expect.that(
    r.lockClockLeadMs !== null && Math.abs(r.lockClockLeadMs - skewMs) < 2_000,
    `at ${label} the lock's own time of locking is on record beside the server's (${r.lockClockLeadMs} ms apart)`,
  );
  return r;
}

/** A visit with devices `skewMs` off: the camera refuses to arm, the door stays shut. */
async function beyond(
  door: SwappableDoor,
  expect: Expectations,
  skewMs: number,
): Promise<SkewResult> {
  await devicesWithClockOffset(door, skewMs);
  const v = await courierVisit(door);
  const r = summary(skewMs, v);
  const label = `${skewMs > 0 ? '+' : ''}${skewMs / MIN} min`;
  expect.that(
    r.deviceRefusals.some((x) => x.action === 'arm' && x.error === 'command.expired'),
    `at ${label} the camera refuses "arm" with command.expired (${JSON.stringify(r.deviceRefusals)})`,
  );
  const told = (v.access.body.error as { code?: string } | undefined)?.code ?? null;
  expect.that(
    r.state === 'refused' && r.reason === 'camera.not-recording' && v.session?.unlockedAt === null,
    `at ${label} the door never opens: ${r.state} ${r.reason ?? ''}`,
  );
  expect.that(
    v.access.status === 409 && told === 'camera.not-recording',
    `at ${label} the courier is told why (HTTP ${v.access.status} ${told})`,
  );
  expect.that(
    door.home?.lock.bolt() === 'locked',
    `at ${label} the bolt stays locked (${door.home?.lock.bolt()})`,
  );
  return r;
}

export const clockSkew: Scenario = {
  name: 'clock-skew',
  expected:
    'device clocks ±5 min off: commands taken, heartbeats counted, visit completes with device times on record; ±6 min: arm refused command.expired, door stays shut',
  async story({ world, expect }): Promise<StoryResult> {
    const results: SkewResult[] = [];
    // ---- Ahead: the world's control plane, its devices swapped for ones whose clock runs fast ----
    await world.home.stop();
    const ahead: SwappableDoor = {
      sys: world.sys,
      creds: world.creds,
      courierToken: await signInAt(
        world.sys.url,
        world.creds.courier.username,
        world.creds.courier.password,
      ),
      home: null,
    };
    try {
      results.push(await tolerated(ahead, expect, TOLERATED_MS));
      results.push(await beyond(ahead, expect, BEYOND_MS));
    } finally {
      await ahead.home?.stop();
    }
    // ---- Behind: a control plane whose devices were slow from the start ----
    const own = await startOwnControlPlane();
    try {
      results.push(await beyond(own.door, expect, -BEYOND_MS));
      results.push(await tolerated(own.door, expect, -TOLERATED_MS));
    } finally {
      await own.close();
    }
    // The report's session: the visit 5 min ahead, on the world's control plane.
    const first = results[0]?.sessionId ?? null;
    return {
      session: first === null ? null : await world.sys.orchestrator.view(first),
      extra: {
        skews: results,
        // How soon a device on a clock beyond the tolerance refused: the slower of the two.
        detectionMs: Math.max(
          ...results.map((r) => r.refusedByDeviceAfterMs).filter((ms) => ms !== null),
        ),
      },
    };
  },
};
