/**
 * The clip of a session: its recorded frames in order, each with the time the camera captured
 * it. Play / pause, previous / next, and a scrubber; every frame is preloaded so scrubbing is
 * instant.
 */
import { useEffect, useRef, useState } from 'react';
import type { ClipFrameView } from '../../../src/protocol/views.ts';
import { formatTime } from '../time.ts';

/** Frames play at their real pace, but never slower than this per frame, ms. */
const MAX_STEP_MS = 1_000;
const MIN_STEP_MS = 80;

/** Props of {@link ClipPlayer}. */
export interface ClipPlayerProps {
  readonly frames: readonly ClipFrameView[];
  readonly timeZone: string;
}

/** The clip player. */
export function ClipPlayer({ frames, timeZone }: ClipPlayerProps) {
  const [index, setIndex] = useState(0);
  const [playing, setPlaying] = useState(false);
  const preloaded = useRef<HTMLImageElement[]>([]);
  const count = frames.length;
  const i = Math.min(index, Math.max(0, count - 1));
  const frame = frames[i];

  useEffect(() => {
    // Keep references so the browser does not drop the decoded images.
    preloaded.current = frames.map((f) => {
      const img = new Image();
      img.decoding = 'async';
      img.src = f.url;
      return img;
    });
  }, [frames]);

  useEffect(() => {
    if (!playing) return;
    const current = frames[i];
    const next = frames[i + 1];
    if (!current || !next) return;
    const step = Math.min(MAX_STEP_MS, Math.max(MIN_STEP_MS, next.capturedAt - current.capturedAt));
    const t = setTimeout(() => {
      setIndex(i + 1);
      // Stop on the last frame rather than loop: a clip is evidence, not an animation.
      if (i + 2 >= frames.length) setPlaying(false);
    }, step);
    return () => clearTimeout(t);
  }, [playing, i, frames]);

  if (count === 0 || !frame) {
    return (
      <div className="clip clip-empty" data-testid="clip-player">
        <p className="muted">No frames were recorded for this visit.</p>
      </div>
    );
  }

  const first = frames[0];
  const last = frames[count - 1];
  const togglePlay = () => {
    if (count < 2) return;
    if (!playing && i >= count - 1) setIndex(0);
    setPlaying(!playing);
  };

  return (
    <div className="clip" data-testid="clip-player">
      <div className="clip-stage">
        <img
          className="clip-img"
          src={frame.url}
          alt={`Frame ${i + 1} of ${count}, captured at ${formatTime(frame.capturedAt, timeZone)}`}
          data-testid="clip-frame"
          data-seq={frame.seq}
        />
      </div>
      <div className="clip-controls">
        <button
          type="button"
          className="btn btn-icon"
          onClick={() => {
            setPlaying(false);
            setIndex(Math.max(0, i - 1));
          }}
          disabled={i === 0}
          aria-label="Previous frame"
          data-testid="clip-prev"
        >
          <svg viewBox="0 0 24 24" width="20" height="20" aria-hidden="true" focusable="false">
            <path
              d="M15 5l-7 7 7 7"
              fill="none"
              stroke="currentColor"
              strokeWidth="2.2"
              strokeLinecap="round"
              strokeLinejoin="round"
            />
          </svg>
        </button>
        <button
          type="button"
          className="btn btn-icon btn-icon-primary"
          onClick={togglePlay}
          aria-label={playing ? 'Pause' : 'Play'}
          disabled={count < 2}
          data-testid="clip-play"
        >
          {playing ? (
            <svg viewBox="0 0 24 24" width="20" height="20" aria-hidden="true" focusable="false">
              <rect x="6" y="5" width="4" height="14" rx="1" fill="currentColor" />
              <rect x="14" y="5" width="4" height="14" rx="1" fill="currentColor" />
            </svg>
          ) : (
            <svg viewBox="0 0 24 24" width="20" height="20" aria-hidden="true" focusable="false">
              <path d="M7 4.5v15l12-7.5z" fill="currentColor" />
            </svg>
          )}
        </button>
        <button
          type="button"
          className="btn btn-icon"
          onClick={() => {
            setPlaying(false);
            setIndex(Math.min(count - 1, i + 1));
          }}
          disabled={i >= count - 1}
          aria-label="Next frame"
          data-testid="clip-next"
        >
          <svg viewBox="0 0 24 24" width="20" height="20" aria-hidden="true" focusable="false">
            <path
              d="M9 5l7 7-7 7"
              fill="none"
              stroke="currentColor"
              strokeWidth="2.2"
              strokeLinecap="round"
              strokeLinejoin="round"
            />
          </svg>
        </button>
        <input
          className="clip-scrubber"
          type="range"
          min={0}
          max={count - 1}
          step={1}
          value={i}
          onChange={(e) => {
            setPlaying(false);
            setIndex(Number(e.target.value));
          }}
          aria-label="Frame"
          aria-valuetext={`Frame ${i + 1} of ${count}, ${formatTime(frame.capturedAt, timeZone)}`}
          data-testid="clip-scrubber"
        />
      </div>
      <p className="clip-caption muted small">
        Frame {i + 1} of {count} · captured {formatTime(frame.capturedAt, timeZone)}
        {first && last && count > 1 && (
          <>
            {' '}
            · clip {formatTime(first.capturedAt, timeZone)}–{formatTime(last.capturedAt, timeZone)}
          </>
        )}
      </p>
    </div>
  );
}
