/**
 * What replicas tell each other, through PostgreSQL's LISTEN/NOTIFY on the database they
 * share (no other channel between them is needed):
 *
 * - **Events** the web app shows live (session changes, alarms, entries, notices, live views):
 *   each replica relays those that happened on it, and publishes the others' on its own bus as
 *   relayed (event-bus.ts), so an app connected to any replica sees every one. A session is
 *   sent by id and read back from the database (a notification holds at most 8,000 bytes).
 *   Device status is not relayed: every replica hears every device itself.
 * - **Calls** to the replica that drives a session: a courier's relock or an owner's answer
 *   that reached another replica is run by the session's owner, and its answer returned.
 * - **Revocations**: every replica ends its own sessions under a revoked grant.
 *
 * A notification is delivered to the replicas listening when its transaction commits; one that
 * is missed (a replica reconnecting) loses a live update, never a record: the audit log and the
 * stored sessions are the truth, and the app reloads them.
 */
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import pg from 'pg';
import type { Result } from '../core/errors.ts';
import type { Principal } from '../core/model.ts';
import type { ServerEvent, SessionView } from '../protocol/views.ts';
import type { Store } from '../store/index.ts';
import type { EventBus } from './event-bus.ts';

/** The notification channel. */
export const RELAY_CHANNEL = 'threshold_replicas';
/** PostgreSQL's bound on a notification's payload is 8,000 bytes; keep under it. */
const MAX_PAYLOAD = 7_900;
/** How long a call waits for the session's owner, ms. */
export const CALL_TIMEOUT_MS = 5_000;
/** After a lost connection, the listener connects again after this long, ms. */
const RECONNECT_MS = 1_000;

/** The orchestrator's calls another replica may make on the session's owner. */
export type SessionCall =
  | { readonly method: 'requestRelock'; readonly principal: Principal; readonly sessionId: string }
  | {
      readonly method: 'decide';
      readonly principal: Principal;
      readonly sessionId: string;
      readonly decision: 'let-in' | 'leave-at-door';
    };

/** What the relay needs of the orchestrator on the receiving side. */
export interface RelayedSessions {
  /** Runs a call here (this replica drives the session, or answers that it does not). */
  runCall(call: SessionCall): Promise<Result<SessionView>>;
  /** Ends this replica's own sessions under the grant (without telling the others again). */
  grantRevokedHere(grantId: string): Promise<void>;
}

type Message =
  | { readonly k: 'event'; readonly from: string; readonly event: ServerEvent }
  | {
      readonly k: 'session';
      readonly from: string;
      readonly homeId: string;
      readonly sessionId: string;
    }
  | {
      readonly k: 'call';
      readonly from: string;
      readonly to: string;
      readonly id: string;
      readonly call: SessionCall;
    }
  | {
      readonly k: 'reply';
      readonly from: string;
      readonly to: string;
      readonly id: string;
      readonly result: Result<SessionView> | null;
    }
  | { readonly k: 'grant-revoked'; readonly from: string; readonly grantId: string };

export interface ReplicaRelayOptions {
  readonly replicaId: string;
  readonly databaseUrl: string;
  readonly store: Store;
  readonly events: EventBus;
  readonly logger?: { warn(obj: object, msg: string): void; info(obj: object, msg: string): void };
}

/** The replicas' channel: see the file's comment. */
export class ReplicaRelay {
  private listener: pg.Client | null = null;
  private sessions: RelayedSessions | null = null;
  private readonly waiting = new Map<
    string,
    { resolve: (r: Result<SessionView> | null) => void; timer: NodeJS.Timeout }
  >();
  private offBus: (() => void) | null = null;
  private reconnect: NodeJS.Timeout | null = null;
  private stopped = false;

  private constructor(private readonly o: ReplicaRelayOptions) {}

  /** Connects, listens, and relays this replica's events from now on. */
  static async start(o: ReplicaRelayOptions): Promise<ReplicaRelay> {
    const relay = new ReplicaRelay(o);
    await relay.listen();
    relay.offBus = o.events.subscribe((e) => relay.relayEvent(e));
    return relay;
  }

  /** Who runs calls and revocations arriving from other replicas. */
  serve(sessions: RelayedSessions): void {
    this.sessions = sessions;
  }

  /**
   * Runs `call` at replica `owner`, which drives the session; null when it did not answer in
   * {@link CALL_TIMEOUT_MS} (it may be dying: another replica takes its sessions over soon).
   */
  async call(owner: string, call: SessionCall): Promise<Result<SessionView> | null> {
    const id = randomUUID();
    const answer = new Promise<Result<SessionView> | null>((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        resolve(null);
      }, CALL_TIMEOUT_MS);
      this.waiting.set(id, { resolve, timer });
    });
    await this.notify({ k: 'call', from: this.o.replicaId, to: owner, id, call });
    return answer;
  }

  /** Tells every other replica that a grant was revoked. */
  async grantRevoked(grantId: string): Promise<void> {
    await this.notify({ k: 'grant-revoked', from: this.o.replicaId, grantId });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.offBus?.();
    if (this.reconnect) clearTimeout(this.reconnect);
    for (const w of this.waiting.values()) {
      clearTimeout(w.timer);
      w.resolve(null);
    }
    this.waiting.clear();
    await this.listener?.end().catch(() => undefined);
    this.listener = null;
  }

  private async listen(): Promise<void> {
    const client = new pg.Client({
      connectionString: this.o.databaseUrl,
      connectionTimeoutMillis: 10_000,
      application_name: 'threshold-relay',
    });
    const lost = (): void => {
      if (this.listener !== client) return;
      this.listener = null;
      if (this.stopped) return;
      this.o.logger?.warn({}, 'replica relay connection lost; connecting again');
      this.reconnect = setTimeout(() => {
        this.reconnect = null;
        void this.listen().catch(() => lost());
      }, RECONNECT_MS);
    };
    client.on('error', lost);
    client.on('end', lost);
    client.on('notification', (n) => {
      if (n.channel !== RELAY_CHANNEL || n.payload === undefined) return;
      let m: Message;
      try {
        m = JSON.parse(n.payload) as Message;
      } catch {
        return;
      }
      if (m.from === this.o.replicaId) return;
      void this.receive(m).catch((err: unknown) =>
        this.o.logger?.warn({ err: String(err) }, 'relayed message not handled'),
      );
    });
    await client.connect();
    await client.query(`LISTEN ${RELAY_CHANNEL}`);
    this.listener = client;
  }

  private async notify(m: Message): Promise<void> {
    const payload = JSON.stringify(m);
    if (Buffer.byteLength(payload) > MAX_PAYLOAD) {
      this.o.logger?.warn({ kind: m.k }, 'relayed message too large; not sent');
      return;
    }
    await sql`select pg_notify(${RELAY_CHANNEL}, ${payload})`.execute(this.o.store.db);
  }

  /** An event that happened here, for the other replicas' apps. */
  private relayEvent(e: ServerEvent): void {
    const m: Message =
      e.type === 'session'
        ? { k: 'session', from: this.o.replicaId, homeId: e.homeId, sessionId: e.session.id }
        : { k: 'event', from: this.o.replicaId, event: e };
    // Every replica hears every device itself.
    if (e.type === 'device') return;
    void this.notify(m).catch((err: unknown) =>
      this.o.logger?.warn({ err: String(err) }, 'event not relayed'),
    );
  }

  private async receive(m: Message): Promise<void> {
    switch (m.k) {
      case 'event':
        this.o.events.publishRelayed(m.event);
        return;
      case 'session': {
        const row = await this.o.store.sessions.get(m.sessionId);
        if (row)
          this.o.events.publishRelayed({
            type: 'session',
            homeId: m.homeId,
            session: row.data as Extract<ServerEvent, { type: 'session' }>['session'],
          });
        return;
      }
      case 'call': {
        if (m.to !== this.o.replicaId) return;
        const result = this.sessions ? await this.sessions.runCall(m.call) : null;
        await this.notify({ k: 'reply', from: this.o.replicaId, to: m.from, id: m.id, result });
        return;
      }
      case 'reply': {
        if (m.to !== this.o.replicaId) return;
        const w = this.waiting.get(m.id);
        if (!w) return;
        this.waiting.delete(m.id);
        clearTimeout(w.timer);
        w.resolve(m.result);
        return;
      }
      case 'grant-revoked':
        await this.sessions?.grantRevokedHere(m.grantId);
        return;
    }
  }
}
