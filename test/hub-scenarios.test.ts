/**
 * The hub's scenarios, each against a fresh real system with the demo door bridged by a hub.
 * A scenario's report lists every expectation that did not hold; the test fails with that list.
 */
import { describe, expect, it } from 'vitest';
import { runScenario } from '../src/harness/scenario.ts';
import { hubDeadMan } from '../src/harness/scenarios/hub-dead-man.ts';
import { hubDeadline } from '../src/harness/scenarios/hub-deadline.ts';
import { hubStaleGrants } from '../src/harness/scenarios/hub-stale-grants.ts';

describe('hub scenarios', () => {
  it('hub-deadline: cut off from the control plane, the hub relocks at the deadline once the door is closed', async () => {
    const r = await runScenario(hubDeadline);
    expect(r.failures).toEqual([]);
    expect(r.relockAfterDoorClosedMs).toBeLessThan(1_500);
    expect(r.hubEvents).toContain('hub.relocked');
    expect(r.auditVerified).toBe(true);
  }, 60_000);

  it("hub-dead-man: the camera silent and the control plane unreachable, the hub's dead-man's switch locks once the door closes", async () => {
    const r = await runScenario(hubDeadMan);
    expect(r.failures).toEqual([]);
    expect(r.detectionMs).toBeLessThanOrEqual(2_500);
    expect(r.hubEvents).toEqual(expect.arrayContaining(['hub.dead-man', 'hub.relocked']));
    expect(r.auditVerified).toBe(true);
  }, 60_000);

  it('hub-stale-grants: on a grant list older than its bound the hub refuses a courier; the household PIN still opens', async () => {
    const r = await runScenario(hubStaleGrants);
    expect(r.failures).toEqual([]);
    expect(r.refusal).toBe('door.hub-list-stale');
    expect(r.staleListAgeS).toBeGreaterThanOrEqual(10);
    expect(r.outcome).toBe('completed');
    expect(r.auditVerified).toBe(true);
  }, 90_000);
});
