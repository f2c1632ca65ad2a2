/**
 * A run whose starting conditions did not hold because the system under test misbehaved
 * outside the part being measured (e.g. the session was no longer open when the jammer was
 * due to start). Such a run is reported as an anomaly, with what was seen, rather than as a
 * measurement or a miss of the measured goal.
 */
export class RunAnomaly extends Error {
  override readonly name = 'RunAnomaly';
}

/** One line about a session's path so far: states with reasons, and alarms. */
export function sessionStory(s: {
  readonly history: readonly { readonly state: string; readonly reason?: string }[];
  readonly alarms: readonly { readonly type: string }[];
}): string {
  const path = s.history.map((h) => (h.reason ? `${h.state} (${h.reason})` : h.state));
  const alarms = s.alarms.map((a) => a.type);
  return `${path.join(' → ')}; alarms: ${alarms.length > 0 ? alarms.join(', ') : 'none'}`;
}
