/**
 * How much of a session the camera vouched for: a bar over [start, end], green where fresh
 * frames came, red where they did not (each gap titled with its cause and times). A session that
 * was not meant to be recorded (a guest grant without "camera must record") shows "Not
 * recorded" in grey: no coverage there is by the household's choice, not a gap.
 */
import type { Coverage } from '../../../src/protocol/views.ts';
import { formatTime } from '../time.ts';
import { NOT_RECORDED, NOT_RECORDED_WHY } from '../words.ts';

/** The coverage ratio as a percentage that never rounds a gap away ("99.9 %", not "100 %"). */
export function coveragePercent(c: Coverage): string {
  const pct = Math.floor(c.ratio * 1000) / 10;
  return `${pct % 1 === 0 ? pct.toFixed(0) : pct.toFixed(1)}%`;
}

const CAUSE_WORDS: Record<string, string> = {
  silence: 'no picture from the camera',
  frozen: 'the picture was frozen',
};

/** Props of {@link CoverageBar}. */
export interface CoverageBarProps {
  readonly coverage: Coverage;
  readonly timeZone: string;
  /** Shows start and end times under the bar. */
  readonly detailed?: boolean;
  /** False for a session without a camera (`cameraDeviceId: null`); true when omitted. */
  readonly recorded?: boolean;
}

/** The coverage bar with its percentage. */
export function CoverageBar({ coverage, timeZone, detailed, recorded = true }: CoverageBarProps) {
  const { startMs, endMs, gaps } = coverage;
  if (!recorded) {
    return (
      <div className="coverage">
        <div
          className="coverage-bar coverage-bar-unrecorded"
          data-testid="coverage-bar"
          data-recorded="false"
          role="img"
          aria-label={`${NOT_RECORDED}: ${NOT_RECORDED_WHY}`}
        />
        <span className="coverage-ratio coverage-ratio-none">{NOT_RECORDED}</span>
      </div>
    );
  }
  if (startMs === null) {
    return (
      <div className="coverage">
        <div
          className="coverage-bar coverage-bar-empty"
          data-testid="coverage-bar"
          role="img"
          aria-label="Nothing was recorded: the door did not open"
        />
        <span className="coverage-ratio coverage-ratio-none">No recording</span>
      </div>
    );
  }
  const span = Math.max(1, endMs - startMs);
  const pct = coveragePercent(coverage);
  const label =
    gaps.length === 0
      ? `On camera the whole time (${pct})`
      : `On camera ${pct} of the time; ${gaps.length} gap${gaps.length === 1 ? '' : 's'}`;
  return (
    <div className="coverage">
      <div
        className="coverage-bar"
        data-testid="coverage-bar"
        data-ratio={coverage.ratio}
        role="img"
        aria-label={label}
      >
        {gaps.map((g) => {
          const gEnd = g.endMs ?? endMs;
          const left = ((Math.max(g.startMs, startMs) - startMs) / span) * 100;
          const width = Math.max(0.8, ((gEnd - Math.max(g.startMs, startMs)) / span) * 100);
          const words = CAUSE_WORDS[g.cause] ?? g.cause;
          return (
            <span
              key={`${g.startMs}-${g.cause}`}
              className="coverage-gap"
              data-testid="coverage-gap"
              data-cause={g.cause}
              title={`${g.cause}: ${words}, ${formatTime(g.startMs, timeZone)}–${
                g.endMs === null ? 'still open' : formatTime(g.endMs, timeZone)
              }`}
              style={{ left: `${left}%`, width: `${Math.min(width, 100 - left)}%` }}
            />
          );
        })}
      </div>
      <span className={gaps.length ? 'coverage-ratio coverage-ratio-bad' : 'coverage-ratio'}>
        {pct}
        <span className="visually-hidden"> on camera</span>
      </span>
      {detailed && (
        <div className="coverage-times muted">
          <span>{formatTime(startMs, timeZone)}</span>
          <span>{formatTime(endMs, timeZone)}</span>
        </div>
      )}
    </div>
  );
}
