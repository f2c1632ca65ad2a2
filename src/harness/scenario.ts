/**
 * What a scenario is and what it reports. A scenario is a story — given a home, when something
 * happens (a courier delivers; a jammer cuts the camera's link), then Threshold does what
 * DESIGN.md promises — run against a fresh, real system. Its report says what was expected,
 * what was observed, and every check that did not hold.
 */
import {
  checkHistory,
  HistoryRecorder,
  type AuditedAlarm,
  type HistoryVerdict,
} from './history.ts';
import {
  ScenarioWorld,
  reportCoverage,
  SCENARIO_TIMING,
  type WorldOptions,
} from './scenario-world.ts';
import type { SessionView } from '../server/session-orchestrator.ts';

export interface ScenarioReport {
  readonly scenario: string;
  /** Whether every expectation held. */
  readonly passed: boolean;
  /** The checks that did not hold, in plain words (empty when passed). */
  readonly failures: readonly string[];
  /** What the scenario expects, in one line. */
  readonly expected: string;
  /** The session's final state: completed, refused or aborted. */
  readonly outcome: string;
  /** The refusal or abort code, if any. */
  readonly reason: string | null;
  /** Observation coverage of the session, 0..1. */
  readonly coverage: number;
  /** Gaps in observation, ms relative to the session's start. */
  readonly gaps: readonly { startMs: number; endMs: number | null; cause: string }[];
  /** Alarms raised, with `atMs` relative to the session's start. */
  readonly alerts: readonly { type: string; atMs: number }[];
  /** Whether the whole audit chain verified at the end. */
  readonly auditVerified: boolean;
  readonly sessionId: string | null;
  /** Wall time of the scenario, ms. */
  readonly durationMs: number;
  /**
   * What the history check looked at (history.ts): messages recorded, unlocks, relocks shown,
   * door openings and alarms checked; null when the scenario crashed before it could run. Its
   * violations are among `failures`.
   */
  readonly history: HistoryVerdict['checked'] | null;
  /** Scenario-specific measurements (e.g. detectionMs, relockMs). */
  readonly [extra: string]: unknown;
}

/** Collects expectation failures without stopping the story. */
export class Expectations {
  readonly failures: string[] = [];
  that(ok: boolean, message: string): void {
    if (!ok) this.failures.push(message);
  }
}

export interface ScenarioContext {
  readonly world: ScenarioWorld;
  readonly expect: Expectations;
}

/** What a scenario's story returns: its session and any measurements. */
export interface StoryResult {
  readonly session: SessionView | null;
  readonly extra?: Record<string, unknown>;
}

export interface Scenario {
  readonly name: string;
  /** One line: the threat or flow, and what must happen. */
  readonly expected: string;
  /** World options (e.g. a short maxOpenMs so the lock's own deadline fires in seconds). */
  readonly world?: WorldOptions;
  story(ctx: ScenarioContext): Promise<StoryResult>;
}

/** Runs a scenario in a fresh world and reports. Never throws: a crash is a failed report. */
export async function runScenario(
  s: Scenario,
  opts: { dataDir?: string } = {},
): Promise<ScenarioReport> {
  const started = Date.now();
  const expect = new Expectations();
  let world: ScenarioWorld | null = null;
  let result: StoryResult = { session: null };
  let auditVerified = false;
  let recorder: HistoryRecorder | null = null;
  let history: HistoryVerdict['checked'] | null = null;
  try {
    world = await ScenarioWorld.create({
      ...s.world,
      ...(opts.dataDir ? { dataDir: opts.dataDir } : {}),
    });
    recorder = new HistoryRecorder({
      brokerUrl: world.sys.brokerUrl,
      credentials: world.observerCredentials,
      events: world.sys.events,
      clock: world.sys.clock,
      ...(world.sys.broker ? { tap: world.sys.broker.tap } : {}),
    });
    await recorder.start();
    result = await s.story({ world, expect });
    await world.sys.audit.checkpoint();
    const audit = await world.auditVerified();
    auditVerified = audit.ok;
    expect.that(audit.ok, `the audit chain verifies (${audit.firstBreak ?? 'ok'})`);
    await recorder.stop();
    const verdict = checkHistory(recorder.entries, {
      masterKey: world.sys.keys.masterKey,
      silenceMs: SCENARIO_TIMING.watchdog.silenceMs,
      auditedAlarms: await auditedAlarms(world),
    });
    history = verdict.checked;
    for (const v of verdict.violations) expect.that(false, `history: ${v}`);
  } catch (err) {
    expect.failures.push(
      `the scenario crashed: ${err instanceof Error ? err.message : String(err)}`,
    );
  } finally {
    await recorder?.stop();
    await world?.close().catch(() => undefined);
  }
  const s0 = result.session;
  const origin = s0?.createdAt ?? started;
  const cov = s0 ? reportCoverage(s0.coverage, origin) : { coverage: 0, gaps: [] };
  return {
    scenario: s.name,
    passed: expect.failures.length === 0,
    failures: expect.failures,
    expected: s.expected,
    outcome: s0?.state ?? 'none',
    reason: s0?.outcome?.code ?? null,
    coverage: cov.coverage,
    gaps: cov.gaps,
    alerts: (s0?.alarms ?? []).map((a) => ({ type: a.type, atMs: a.atMs - origin })),
    auditVerified,
    sessionId: s0?.id ?? null,
    durationMs: Date.now() - started,
    history,
    ...result.extra,
  };
}

/** Every `alarm.raised` entry of the world's audit log. */
async function auditedAlarms(world: ScenarioWorld): Promise<AuditedAlarm[]> {
  const last = await world.sys.store.audit.last();
  if (last === null) return [];
  const out: AuditedAlarm[] = [];
  for (const e of await world.sys.store.audit.getRange(1, last.seq)) {
    if (e.kind !== 'alarm.raised' || !e.subject.startsWith('session:')) continue;
    const type = (e.data as { alarm?: unknown }).alarm;
    if (typeof type === 'string') out.push({ sessionId: e.subject.slice('session:'.length), type });
  }
  return out;
}
