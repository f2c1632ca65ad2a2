/**
 * The courier-abuse scenarios, each against a fresh real system: couriers and thieves acting
 * through the real HTTP API (the courier's, the carrier's and the owner's), the demo home's
 * simulated devices over MQTT. A scenario's report lists every expectation that did not hold;
 * the test fails with that list.
 */
import { describe, expect, it } from 'vitest';
import { runScenario } from '../src/harness/scenario.ts';
import { courierOffSite } from '../src/harness/scenarios/courier-off-site.ts';
import { courierOutsideWindow } from '../src/harness/scenarios/courier-outside-window.ts';
import { courierReuse } from '../src/harness/scenarios/courier-reuse.ts';
import { courierRevoked } from '../src/harness/scenarios/courier-revoked.ts';
import { courierWrongDelivery } from '../src/harness/scenarios/courier-wrong-delivery.ts';
import { stolenToken } from '../src/harness/scenarios/stolen-token.ts';

/** The codes of a report's refused attempts, in order. */
function codesOf(r: Record<string, unknown>, key = 'attempts'): (string | null)[] {
  return (r[key] as { code: string | null }[]).map((a) => a.code);
}

describe('courier scenarios', () => {
  it('courier-outside-window: too early and too late are refused on the window alone; the same request opens once it opens', async () => {
    const r = await runScenario(courierOutsideWindow);
    expect(r.failures).toEqual([]);
    expect(codesOf(r)).toEqual(['grant.not-yet-valid', 'grant.expired']);
    expect(r.refusedBeforeOpenByMs).toBeGreaterThan(0);
    expect(r.refusedAfterCloseByMs).toBeGreaterThanOrEqual(0);
    expect(r.detectionMs).toBeLessThan(1_000);
    expect(r.outcome).toBe('completed');
    expect(r.auditVerified).toBe(true);
  }, 60_000);

  it('courier-off-site: far, near, a fix reaching outside the fence, a vague fix and none are refused; the doorstep opens', async () => {
    const r = await runScenario(courierOffSite);
    expect(r.failures).toEqual([]);
    expect(codesOf(r)).toEqual([
      'presence.off-site',
      'presence.off-site',
      'presence.off-site',
      'presence.inaccurate',
      'presence.missing',
      'request.invalid',
      'request.invalid',
    ]);
    expect(r.audited).toBe(5);
    expect(r.detectionMs).toBeLessThan(1_000);
    expect(r.outcome).toBe('completed');
    expect(r.auditVerified).toBe(true);
  }, 60_000);

  it("courier-wrong-delivery: another courier's, carrier's or home's delivery and visit answer as unknown, on record, nothing changes", async () => {
    const r = await runScenario(courierWrongDelivery);
    expect(r.failures).toEqual([]);
    expect(r.answeredAsUnknown).toBe(6);
    expect(r.audited).toBe(6);
    expect(r.outcome).toBe('completed');
    expect(r.auditVerified).toBe(true);
  }, 60_000);

  it('courier-reuse: a finished visit and its delivery are refused, one session per grant', async () => {
    const r = await runScenario(courierReuse);
    expect(r.failures).toEqual([]);
    expect(codesOf(r)).toEqual([
      'session.finished',
      'grant.used',
      'grant.used',
      'delivery.wrong-state',
    ]);
    expect(r.during).toEqual({ status: 409, code: 'session.wrong-state' });
    expect(r.outcome).toBe('completed');
    expect(r.auditVerified).toBe(true);
  }, 60_000);

  it('courier-revoked: revoked by the carrier, blocked by the owner, each mid-visit: the door relocks at once and the next request is refused', async () => {
    const r = await runScenario(courierRevoked);
    expect(r.failures).toEqual([]);
    expect(r.outcome).toBe('aborted');
    expect(r.reason).toBe('grant.revoked');
    expect(r.robinOutcome).toBe('aborted');
    expect(r.revokedRelockMs).toBeLessThan(2_000);
    // Robin was inside with the door open: the bolt waits for the door, then follows at once.
    expect(r.blockedRelockMs).toBeGreaterThanOrEqual(0);
    expect(r.blockedRelockMs).toBeLessThan(2_000);
    expect(codesOf(r)).toEqual([
      'auth.required',
      'auth.required',
      'auth.required',
      'courier.blocked',
      'courier.blocked',
    ]);
    expect(r.auditVerified).toBe(true);
  }, 60_000);

  it('stolen-token: refused off-site; at the door it opens but on camera, once, within the deadline; sign-out and revocation end it', async () => {
    const r = await runScenario(stolenToken);
    expect(r.failures).toEqual([]);
    expect(codesOf(r)).toEqual([
      'presence.off-site',
      'presence.missing',
      'grant.used',
      'auth.required',
      'auth.required',
      'auth.required',
    ]);
    expect(r.alerts.map((a) => a.type)).toEqual(
      expect.arrayContaining(['session-overrun', 'door-left-open']),
    );
    expect(r.deadlineLateMs).toBeLessThanOrEqual(1_000);
    expect(r.relockAfterDoorClosedMs).toBeGreaterThanOrEqual(0);
    expect(r.relockAfterDoorClosedMs).toBeLessThanOrEqual(1_500);
    expect(r.coverage).toBe(1);
    expect(r.auditVerified).toBe(true);
  }, 60_000);
});
