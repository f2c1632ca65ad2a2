/**
 * The network-fault scenarios, each against a fresh real system whose devices reach the broker
 * through fault-injecting proxies on loopback. A scenario's report lists every expectation that
 * did not hold; the test fails with that list, then checks the scenario's key measurements.
 */
import { describe, expect, it } from 'vitest';
import { runScenario } from '../src/harness/scenario.ts';
import { SCENARIO_TIMING } from '../src/harness/scenario-world.ts';
import { brokerRestart } from '../src/harness/scenarios/broker-restart.ts';
import { cameraCutAfterOpen } from '../src/harness/scenarios/camera-cut-after-open.ts';
import { cameraCutBeforeOpen } from '../src/harness/scenarios/camera-cut-before-open.ts';
import { commandFaults } from '../src/harness/scenarios/command-faults.ts';
import { jamAtRelock } from '../src/harness/scenarios/jam-at-relock.ts';
import { loopFreeze } from '../src/harness/scenarios/loop-freeze.ts';

const alertTypes = (r: { alerts: readonly { type: string }[] }): string[] =>
  r.alerts.map((a) => a.type);

describe('network-fault scenarios', () => {
  it('camera-cut-before-open: the camera jammed while arming, the door never unlocks and the courier is refused', async () => {
    const r = await runScenario(cameraCutBeforeOpen);
    expect(r.failures).toEqual([]);
    expect(r).toMatchObject({ outcome: 'refused', reason: 'camera.not-recording' });
    expect(r.refusal).toMatchObject({ status: 409, code: 'camera.not-recording' });
    expect(r.detectionMs).toBeLessThanOrEqual(SCENARIO_TIMING.session.armingTimeoutMs + 1_000);
    expect(r.secondRefusal).toMatchObject({ status: 409, code: 'camera.offline' });
    expect(r.unlocksSent).toBe(0);
    expect(r.deliveryStatus).toBe('scheduled');
    expect(r.auditVerified).toBe(true);
  }, 60_000);

  it('camera-cut-after-open: the camera jammed with the door open, the lock waits for the door and then locks', async () => {
    const r = await runScenario(cameraCutAfterOpen);
    expect(r.failures).toEqual([]);
    expect(alertTypes(r)).toContain('observation-lost');
    expect(r.detectionMs).toBeLessThanOrEqual(2_000);
    expect(r.lockCommandsWhileOpen).toBe(0);
    expect(r.commandAfterCloseMs).toBeLessThanOrEqual(1_000);
    expect(r).toMatchObject({ outcome: 'aborted', reason: 'session.observation-lost' });
    expect(r.coverage).toBeLessThan(1);
    expect(r.gaps.length).toBeGreaterThan(0);
    expect(r.auditVerified).toBe(true);
  }, 60_000);

  it('jam-at-relock: the camera jammed at "lock", the session never completes and the owner is alerted', async () => {
    const r = await runScenario(jamAtRelock);
    expect(r.failures).toEqual([]);
    expect(alertTypes(r)).toEqual(['observation-lost']);
    expect(r.ownerSees).toContain('observation-lost');
    expect(r.detectionMs).toBeLessThanOrEqual(2_000);
    expect(r).toMatchObject({ outcome: 'aborted', reason: 'session.observation-lost' });
    expect(r.coverage).toBeLessThan(1);
    expect(r.auditVerified).toBe(true);
  }, 60_000);

  it('loop-freeze: a picture looping through its last 2 s is caught as frozen within the freeze bound', async () => {
    const r = await runScenario(loopFreeze);
    expect(r.failures).toEqual([]);
    expect(alertTypes(r)).toContain('observation-frozen');
    expect(r.detectionMs).toBeLessThanOrEqual(SCENARIO_TIMING.watchdog.freezeMs + 500);
    expect(r.loopPictures).toBeGreaterThanOrEqual(2);
    expect(r).toMatchObject({ outcome: 'aborted', reason: 'camera.frozen' });
    expect(r.gaps.some((g) => g.cause === 'frozen')).toBe(true);
    expect(r.auditVerified).toBe(true);
  }, 60_000);

  it('command-faults: a lost unlock opens nothing and delivers nothing, a replayed one is refused, a slow link keeps order', async () => {
    const r = await runScenario(commandFaults);
    expect(r.failures).toEqual([]);
    expect(r.lost).toMatchObject({ lockHeard: 0, deliveryStatus: 'scheduled' });
    expect(r.replayed).toMatchObject({
      replayReply: 'command.replayed',
      newNonceReply: 'command.bad-mac',
      lockAccepted: 0,
    });
    expect(r.delayed).toMatchObject({ lockReported: ['unlocked', 'locked'] });
    expect(r.outcome).toBe('completed');
    expect(r.auditVerified).toBe(true);
  }, 90_000);

  it('broker-restart: every device link reset mid-visit, the devices come back and the door is secured; no acknowledged event lost', async () => {
    const r = await runScenario(brokerRestart);
    expect(r.failures).toEqual([]);
    expect(alertTypes(r)).toContain('observation-lost');
    expect(r.detectionMs).toBeLessThanOrEqual(2_000);
    expect(r.witness).toMatchObject({ lost: 0 });
    expect(r.secondOpen).toMatchObject({ status: 409, code: 'session.observation-lost' });
    expect(r.coverage).toBeLessThan(1);
    expect(r.auditVerified).toBe(true);
  }, 60_000);
});
