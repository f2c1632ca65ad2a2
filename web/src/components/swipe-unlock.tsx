/**
 * "Slide to unlock": opening a door takes a deliberate gesture, not a tap that a pocket could
 * make. Drag the handle to the end, or focus it and press Right / End.
 */
import { useRef, useState, type KeyboardEvent, type PointerEvent } from 'react';

/** Props of {@link SwipeUnlock}. */
export interface SwipeUnlockProps {
  /** Called once, when the handle reaches the end. */
  readonly onComplete: () => void;
  readonly disabled?: boolean;
  /** The text inside the track. */
  readonly hint?: string;
}

/** Where the handle counts as "at the end" when the drag is let go (0..1). */
const DONE_AT = 0.9;
const KEY_STEP = 0.25;
const THUMB_PX = 64;

/** The swipe-to-unlock slider (`role="slider"`, aria-label "Slide to unlock"). */
export function SwipeUnlock({ onComplete, disabled, hint }: SwipeUnlockProps) {
  const [pos, setPos] = useState(0);
  const [dragging, setDragging] = useState(false);
  const [done, setDone] = useState(false);
  const drag = useRef<{ startX: number; startPos: number; travel: number } | null>(null);

  const finish = () => {
    setPos(1);
    setDone(true);
    onComplete();
  };

  const inactive = disabled || done;

  const onPointerDown = (e: PointerEvent<HTMLDivElement>) => {
    if (inactive || e.button !== 0) return;
    const travel = Math.max(1, e.currentTarget.clientWidth - THUMB_PX - 8);
    drag.current = { startX: e.clientX, startPos: pos, travel };
    e.currentTarget.setPointerCapture(e.pointerId);
    setDragging(true);
  };
  const onPointerMove = (e: PointerEvent<HTMLDivElement>) => {
    const d = drag.current;
    if (!d) return;
    setPos(Math.min(1, Math.max(0, d.startPos + (e.clientX - d.startX) / d.travel)));
  };
  const onPointerEnd = (e: PointerEvent<HTMLDivElement>) => {
    const d = drag.current;
    if (!d) return;
    drag.current = null;
    setDragging(false);
    const end = Math.min(1, Math.max(0, d.startPos + (e.clientX - d.startX) / d.travel));
    if (e.type === 'pointerup' && end >= DONE_AT) finish();
    else setPos(0);
  };
  const onKeyDown = (e: KeyboardEvent<HTMLDivElement>) => {
    if (inactive) return;
    let next: number | null = null;
    if (e.key === 'ArrowRight' || e.key === 'ArrowUp') next = Math.min(1, pos + KEY_STEP);
    else if (e.key === 'End') next = 1;
    else if (e.key === 'ArrowLeft' || e.key === 'ArrowDown') next = Math.max(0, pos - KEY_STEP);
    else if (e.key === 'Home') next = 0;
    if (next === null) return;
    e.preventDefault();
    if (next >= 1) finish();
    else setPos(next);
  };

  const pct = Math.round(pos * 100);
  return (
    <div
      className={`swipe${dragging ? ' swipe-dragging' : ''}${done ? ' swipe-done' : ''}`}
      role="slider"
      aria-label="Slide to unlock"
      aria-valuemin={0}
      aria-valuemax={100}
      aria-valuenow={pct}
      aria-valuetext={done ? 'Unlocking' : pct === 0 ? 'Locked' : `${pct}% of the way`}
      aria-disabled={inactive || undefined}
      tabIndex={disabled ? -1 : 0}
      data-testid="swipe-unlock"
      onPointerDown={onPointerDown}
      onPointerMove={onPointerMove}
      onPointerUp={onPointerEnd}
      onPointerCancel={onPointerEnd}
      onKeyDown={onKeyDown}
    >
      <div
        className="swipe-fill"
        style={{ width: `calc(${pos} * (100% - ${THUMB_PX + 8}px) + ${THUMB_PX + 8}px)` }}
      />
      <span className="swipe-hint" aria-hidden="true">
        {done ? 'Opening…' : (hint ?? 'Slide to unlock')}
      </span>
      <div
        className="swipe-thumb"
        aria-hidden="true"
        style={{ left: `calc(4px + ${pos} * (100% - ${THUMB_PX + 8}px))` }}
      >
        <svg viewBox="0 0 24 24" width="28" height="28" focusable="false">
          <path
            d="M9 5l7 7-7 7"
            fill="none"
            stroke="currentColor"
            strokeWidth="2.5"
            strokeLinecap="round"
            strokeLinejoin="round"
          />
        </svg>
      </div>
    </div>
  );
}
