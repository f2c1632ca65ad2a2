/**
 * Commands the server sends again when their effect does not show, found by the soak on a fake
 * clock (src/harness/soak.ts): a `lock` lost while relocking would otherwise raise
 * `lock-unconfirmed` over a door that locks, and a lost `disarm` would leave the camera
 * streaming for a visit that is over. Real system, real broker, the lock's and the camera's
 * links through fault proxies that drop their commands.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ScenarioWorld, sleep } from '../src/harness/scenario-world.ts';
import { RELOCK_RESEND_MS, STRAY_DISARM_MS } from '../src/server/session-orchestrator.ts';

let world: ScenarioWorld | null = null;
afterEach(async () => {
  await world?.close();
  world = null;
});

describe('the server sends again what did not take effect', () => {
  it('a lost `lock` while relocking is sent again, and the visit completes without lock-unconfirmed', async () => {
    world = await ScenarioWorld.create({ faultProxies: { keepaliveSeconds: 5 } });
    const { access, sessionId } = await world.deliverInside();
    expect(access.status).toBe(200);
    // Every command to the lock is dropped on the way, then the link heals.
    world.net!.lock.set({ type: 'loss', probability: 1 }, 'downstream');
    const asked = Date.now();
    // The courier's "lock" waits for the lock's word; the link heals while it waits.
    const relock = world.requestRelock(sessionId!);
    await sleep(RELOCK_RESEND_MS - 500);
    expect(world.home.lock.bolt()).toBe('unlocked');
    world.net!.lock.remove('loss', 'downstream');
    expect((await relock).status).toBe(200);
    const done = await world.waitForState(sessionId!, ['completed', 'aborted'], 10_000);
    expect(done.state).toBe('completed');
    expect(done.alarms.map((a) => a.type)).not.toContain('lock-unconfirmed');
    // It took the resend, not the first command, to lock it.
    expect(world.home.lock.changedAt() - asked).toBeGreaterThanOrEqual(RELOCK_RESEND_MS - 100);
    expect(world.net!.lock.stats().downstream.packetsDropped).toBeGreaterThan(0);
  }, 30_000);

  it('a camera still streaming after its `disarm` was lost is told again', async () => {
    world = await ScenarioWorld.create({ faultProxies: { keepaliveSeconds: 5 } });
    const { access, sessionId } = await world.deliverInside();
    expect(access.status).toBe(200);
    // The camera's commands are dropped: the end-of-visit `disarm` never arrives.
    world.net!.camera.set({ type: 'loss', probability: 1 }, 'downstream');
    void world.requestRelock(sessionId!);
    await world.waitForState(sessionId!, ['completed', 'aborted'], 10_000);
    await sleep(1_000);
    expect(world.home.camera.isRecording()).toBe(true);
    world.net!.camera.remove('loss', 'downstream');
    const stopped = Date.now();
    await world.waitFor(
      () => !world!.home.camera.isRecording(),
      STRAY_DISARM_MS + 3_000,
      'the camera disarmed',
    );
    expect(Date.now() - stopped).toBeLessThanOrEqual(STRAY_DISARM_MS + 3_000);
  }, 40_000);
});
