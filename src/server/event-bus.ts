/**
 * In-process publish/subscribe of what the web app shows live: session changes, alarms and
 * device status. The SSE route forwards each event to the clients allowed to see its home.
 *
 * With replicas, other replicas' events arrive relayed through the database (event-relay.ts)
 * and are given only to subscribers that show them (`relayed: true`: the SSE route, waits for
 * a session's state), never to those that act on them (push notifications, entries): the
 * replica where an event happened acts on it, once.
 */
import type { ServerEvent } from '../protocol/views.ts';

export type { ServerEvent };

/** Options of {@link EventBus.subscribe}. */
export interface SubscribeOptions {
  /** Also hear events other replicas published (see {@link EventBus.publishRelayed}). */
  readonly relayed?: boolean;
}

export class EventBus {
  /** Each subscriber, and whether it hears relayed events. */
  private subscribers = new Map<(e: ServerEvent) => void, boolean>();

  /** Publishes an event that happened here, to every subscriber. */
  publish(e: ServerEvent): void {
    this.deliver(e, false);
  }

  /** Publishes an event another replica published, to the subscribers that asked for those. */
  publishRelayed(e: ServerEvent): void {
    this.deliver(e, true);
  }

  private deliver(e: ServerEvent, relayed: boolean): void {
    for (const [s, wantsRelayed] of this.subscribers) {
      if (relayed && !wantsRelayed) continue;
      try {
        s(e);
      } catch {
        // One broken subscriber (a closed stream) must not stop the others.
      }
    }
  }

  /** Subscribes; returns the unsubscribe function. */
  subscribe(fn: (e: ServerEvent) => void, options: SubscribeOptions = {}): () => void {
    this.subscribers.set(fn, options.relayed === true);
    return () => this.subscribers.delete(fn);
  }
}
