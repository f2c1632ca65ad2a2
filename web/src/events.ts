/**
 * One shared `EventSource('/api/events')` for the whole app. Components subscribe to the event
 * types they need; the stream opens with the first subscriber and closes with the last.
 *
 * The browser reconnects an EventSource by itself after a network error, but not after an
 * HTTP error (a 401 when the sign-in expired): then the stream is closed, and it is retried
 * here after a pause. Subscribers to {@link onStreamStatus} learn when the stream (re)opens,
 * so they can fetch what they missed.
 */
import { useEffect, useRef } from 'react';
import type { ServerEvent } from '../../src/protocol/views.ts';

/** The event types the server streams. */
export type ServerEventType = ServerEvent['type'];
/** The event of one type. */
export type EventOf<K extends ServerEventType> = Extract<ServerEvent, { type: K }>;
/** Whether the stream is connected. */
export type StreamStatus = 'connecting' | 'open' | 'closed';

/**
 * Every event type, listened to on the one stream. A record keyed by the union, so a type the
 * server adds to `ServerEvent` fails to compile here until it is listened to too.
 */
const LISTENED: Record<ServerEventType, true> = {
  session: true,
  alarm: true,
  'alarm-ack': true,
  device: true,
  live: true,
  entry: true,
  notice: true,
};
const EVENT_TYPES = Object.keys(LISTENED) as ServerEventType[];
const RETRY_MS = 5_000;

type Handler = (e: ServerEvent) => void;

const handlers = new Map<ServerEventType, Set<Handler>>();
const statusListeners = new Set<(s: StreamStatus) => void>();
let source: EventSource | null = null;
let retryTimer: ReturnType<typeof setTimeout> | null = null;
let status: StreamStatus = 'closed';
let stopped = false;

function setStatus(s: StreamStatus): void {
  if (s === status) return;
  status = s;
  for (const l of statusListeners) l(s);
}

function subscriberCount(): number {
  let n = 0;
  for (const set of handlers.values()) n += set.size;
  return n + statusListeners.size;
}

function dispatch(type: ServerEventType, raw: MessageEvent<string>): void {
  let event: ServerEvent;
  try {
    event = JSON.parse(raw.data) as ServerEvent;
  } catch {
    // A malformed event is dropped; the next poll or event brings the truth.
    return;
  }
  for (const h of handlers.get(type) ?? []) h(event);
}

function open(): void {
  if (source || stopped) return;
  setStatus('connecting');
  const es = new EventSource('/api/events');
  source = es;
  es.onopen = () => setStatus('open');
  es.onerror = () => {
    if (es.readyState === EventSource.CLOSED) {
      // An HTTP error (401, 5xx): the browser gave up. Try again later, if still wanted.
      es.close();
      if (source === es) source = null;
      setStatus('closed');
      if (!retryTimer && subscriberCount() > 0) {
        retryTimer = setTimeout(() => {
          retryTimer = null;
          if (subscriberCount() > 0) open();
        }, RETRY_MS);
      }
    } else {
      setStatus('connecting');
    }
  };
  for (const type of EVENT_TYPES) {
    es.addEventListener(type, (raw) => dispatch(type, raw as MessageEvent<string>));
  }
}

function closeIfUnused(): void {
  if (subscriberCount() > 0) return;
  source?.close();
  source = null;
  if (retryTimer) clearTimeout(retryTimer);
  retryTimer = null;
  setStatus('closed');
}

/** Calls `handler` for every event of `type` until the returned function is called. */
export function subscribe<K extends ServerEventType>(
  type: K,
  handler: (e: EventOf<K>) => void,
): () => void {
  let set = handlers.get(type);
  if (!set) {
    set = new Set();
    handlers.set(type, set);
  }
  const h = handler as Handler;
  set.add(h);
  open();
  return () => {
    set.delete(h);
    closeIfUnused();
  };
}

/** Calls `listener` whenever the stream's status changes. */
export function onStreamStatus(listener: (s: StreamStatus) => void): () => void {
  statusListeners.add(listener);
  open();
  return () => {
    statusListeners.delete(listener);
    closeIfUnused();
  };
}

/** Closes the stream for good (on sign-out) until {@link resumeEvents}. */
export function stopEvents(): void {
  stopped = true;
  source?.close();
  source = null;
  if (retryTimer) clearTimeout(retryTimer);
  retryTimer = null;
  setStatus('closed');
}

/** Allows the stream again (after sign-in) and opens it if anyone is listening. */
export function resumeEvents(): void {
  stopped = false;
  if (subscriberCount() > 0) open();
}

/**
 * Subscribes a component to one event type for as long as it is mounted. The handler may
 * change between renders without resubscribing.
 */
export function useServerEvent<K extends ServerEventType>(
  type: K,
  handler: (e: EventOf<K>) => void,
): void {
  const ref = useRef(handler);
  useEffect(() => {
    ref.current = handler;
  });
  useEffect(() => subscribe(type, (e) => ref.current(e)), [type]);
}

/** Calls `listener` whenever the stream reopens after being cut (to fetch what was missed). */
export function useStreamReopen(listener: () => void): void {
  const ref = useRef(listener);
  useEffect(() => {
    ref.current = listener;
  });
  useEffect(() => {
    let seenOpen = status === 'open';
    let cut = false;
    return onStreamStatus((s) => {
      if (s === 'open') {
        if (cut) ref.current();
        seenOpen = true;
        cut = false;
      } else if (seenOpen) {
        cut = true;
      }
    });
  }, []);
}
