/**
 * The walking skeleton's scenarios, each against a fresh real system (embedded broker, SQLite,
 * HTTP on loopback, simulated devices over MQTT). A scenario's report lists every expectation
 * that did not hold; the test fails with that list.
 */
import { describe, expect, it } from 'vitest';
import { runScenario } from '../src/harness/scenario.ts';
import { findScenario, SCENARIOS } from '../src/harness/scenarios/index.ts';

const REPORT_KEYS = ['scenario', 'outcome', 'coverage', 'gaps', 'alerts', 'auditVerified'];

describe('scenarios', () => {
  it('has the five scenarios of the walking skeleton', () => {
    expect(SCENARIOS.map((s) => s.name)).toEqual([
      'delivery',
      'deauth',
      'freeze',
      'relock-jam',
      'replay',
    ]);
  });

  it('delivery: a normal in-home delivery completes with full coverage and no alarm', async () => {
    const r = await runScenario(findScenario('delivery')!);
    expect(r.failures).toEqual([]);
    for (const k of REPORT_KEYS) expect(r).toHaveProperty(k);
    expect(r).toMatchObject({
      scenario: 'delivery',
      outcome: 'completed',
      coverage: 1,
      alerts: [],
      auditVerified: true,
      passed: true,
    });
  }, 60_000);

  it('deauth: the jammed camera is caught within 2 s, the door relocks, the courier is refused', async () => {
    const r = await runScenario(findScenario('deauth')!);
    expect(r.failures).toEqual([]);
    expect(r.alerts.map((a) => a.type)).toContain('observation-lost');
    expect(r.coverage).toBeLessThan(1);
    expect(r.gaps.length).toBeGreaterThan(0);
    expect(r.detectionMs).toBeLessThanOrEqual(2_000);
    expect(typeof r.relockMs).toBe('number');
    expect(r.reunlock).toMatchObject({ status: 409 });
    expect(r.auditVerified).toBe(true);
  }, 60_000);

  it('freeze: a frozen picture raises observation-frozen and relocks', async () => {
    const r = await runScenario(findScenario('freeze')!);
    expect(r.failures).toEqual([]);
    expect(r.alerts.map((a) => a.type)).toContain('observation-frozen');
    expect(r.gaps.some((g) => g.cause === 'frozen')).toBe(true);
    expect(r.auditVerified).toBe(true);
  }, 60_000);

  it('relock-jam: nothing says locked until the lock does; its own deadline locks it', async () => {
    const r = await runScenario(findScenario('relock-jam')!);
    expect(r.failures).toEqual([]);
    expect(r.alerts.map((a) => a.type)).toContain('lock-unconfirmed');
    expect(r.outcome).toBe('completed');
    expect(typeof r.lockedAtByLock).toBe('number');
    expect(r.auditVerified).toBe(true);
  }, 60_000);

  it('replay: heartbeats from an earlier session are rejected and the alarm is raised', async () => {
    const r = await runScenario(findScenario('replay')!);
    expect(r.failures).toEqual([]);
    expect(r.alerts.map((a) => a.type)).toEqual(
      expect.arrayContaining(['observation-forged', 'observation-lost']),
    );
    expect(r.rejectReasons).toContain('wrong-session');
    expect(r.coverage).toBeLessThan(1);
    expect(r.auditVerified).toBe(true);
  }, 60_000);
});
