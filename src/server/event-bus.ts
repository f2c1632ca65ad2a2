/**
 * In-process publish/subscribe of what the web app shows live: session changes, alarms and
 * device status. The SSE route forwards each event to the clients allowed to see its home.
 */
import type { ServerEvent } from '../protocol/views.ts';

export type { ServerEvent };

export class EventBus {
  private subscribers = new Set<(e: ServerEvent) => void>();

  publish(e: ServerEvent): void {
    for (const s of this.subscribers) {
      try {
        s(e);
      } catch {
        // One broken subscriber (a closed stream) must not stop the others.
      }
    }
  }

  /** Subscribes; returns the unsubscribe function. */
  subscribe(fn: (e: ServerEvent) => void): () => void {
    this.subscribers.add(fn);
    return () => this.subscribers.delete(fn);
  }
}
