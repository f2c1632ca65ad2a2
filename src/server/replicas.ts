/**
 * Replicas: several `threshold serve` processes on one PostgreSQL database and one broker
 * (docs/operations.md, "Replicas"). Each keeps a lease in the database (`replicas`), renewed
 * every `renewEveryMs` for `leaseMs`; each live access session is driven by one replica, its
 * owner (`access_sessions.owner`). Every replica receives all device traffic (a broker session
 * of its own), so whichever replica answers a courier drives that courier's session, and every
 * replica follows every session's heartbeats.
 *
 * When a replica dies its lease runs out; on its next round each other replica lists the open
 * sessions of replicas whose lease has run out, claims each (one claim wins: a conditional
 * update), and resumes it from its stored row, deadline included, with the observation record
 * it followed meanwhile (SessionOrchestrator.resume). A session is taken over within
 * `leaseMs + renewEveryMs` of its owner's last renewal, plus the resume itself.
 *
 * A replica that cannot renew its lease in time (a long pause, a lost database) lets go of
 * its sessions before the others may take them (`leaseMs - renewEveryMs` after its last
 * renewal), and every write of a session checks that its row is still its own, so a replica
 * that has not noticed yet cannot write over a session another has taken. The replicas'
 * clocks must agree to well within `renewEveryMs` (NTP does).
 *
 * The oldest live replica is the leader: it alone runs the passes of locks that come online,
 * which send commands (see system.ts and PinSync). What every replica hears and must be recorded
 * once (device events, keypad events, entries) is recorded by each under a key of the event's
 * own, so it needs no leader and is not lost while there is none.
 */
import type { Clock } from '../core/clock.ts';
import type { Store } from '../store/index.ts';
import { commandIdPrefix } from './device-gateway.ts';
import type { SessionOrchestrator } from './session-orchestrator.ts';

/** Settings of a replica (`threshold serve --replica-id`). */
export interface ReplicaSettings {
  /** This replica's id: stable across its restarts, different per replica. */
  readonly id: string;
  /** How long a lease lasts without renewal, ms (default 3000). */
  readonly leaseMs?: number;
  /** How often the lease is renewed and dead replicas' sessions looked for, ms (default 1000). */
  readonly renewEveryMs?: number;
}

export const DEFAULT_LEASE_MS = 3_000;
export const DEFAULT_RENEW_EVERY_MS = 1_000;
/**
 * Every this many rounds, the replica looks for devices added at other replicas: it counts the
 * devices, and reads them all (`refreshDevices`) only when the count moved.
 */
const DEVICE_REFRESH_ROUNDS = 5;

/** A replica id: what a command id prefix, a broker client id and a log line can all hold. */
export const REPLICA_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

export interface ReplicaCoordinatorOptions extends ReplicaSettings {
  readonly store: Pick<Store, 'replicas' | 'sessions' | 'homes'>;
  readonly clock: Clock;
  readonly orchestrator: Pick<SessionOrchestrator, 'relinquishAll' | 'ownedSessionIds' | 'resume'>;
  /**
   * Registers devices the store has and this replica does not know yet. Called at the first
   * round, then only after the number of devices changed (devices are only ever added, so an
   * unchanged count means none was).
   */
  readonly refreshDevices?: () => Promise<void>;
  readonly logger?: { warn(obj: object, msg: string): void; info(obj: object, msg: string): void };
}

/** Keeps this replica's lease and takes over dead replicas' sessions. */
export class ReplicaCoordinator {
  private readonly leaseMs: number;
  private readonly renewEveryMs: number;
  /** This replica's lease is good until then on its own clock, ms. */
  private validUntil = 0;
  private leader = false;
  /** Command id prefixes of the other live replicas. */
  private peerPrefixes = new Set<string>();
  private readonly ownPrefix: string;
  private cancelTimer: (() => void) | null = null;
  private round: Promise<void> | null = null;
  private rounds = 0;
  private stopped = false;
  private takeovers = 0;
  /** How many devices there were when `refreshDevices` last ran; null before it first ran. */
  private devicesRead: number | null = null;
  private readonly leadershipListeners: (() => void)[] = [];

  constructor(private readonly o: ReplicaCoordinatorOptions) {
    if (!REPLICA_ID_PATTERN.test(o.id))
      throw new Error(
        `a replica id is 1 to 63 letters, digits, dots, dashes or underscores, starting with a letter or digit (got ${JSON.stringify(o.id)})`,
      );
    this.leaseMs = o.leaseMs ?? DEFAULT_LEASE_MS;
    this.renewEveryMs = o.renewEveryMs ?? DEFAULT_RENEW_EVERY_MS;
    if (!(this.renewEveryMs > 0 && this.leaseMs >= 2 * this.renewEveryMs))
      throw new Error('a replica lease must last at least two renewal periods');
    this.ownPrefix = commandIdPrefix(o.id);
  }

  get id(): string {
    return this.o.id;
  }

  /** The prefix of this replica's command ids. */
  get commandIdPrefix(): string {
    return this.ownPrefix;
  }

  /** Whether this replica is the leader (the oldest live one) as of its last round. */
  isLeader(): boolean {
    return this.leader && this.holdsLease();
  }

  /**
   * Calls `fn` each time this replica becomes the leader (it was not at its previous round).
   * A throw is logged.
   */
  onBecameLeader(fn: () => void): void {
    this.leadershipListeners.push(fn);
  }

  /**
   * The longest the replicas can be without a leader: from the leader's last renewal, its lease,
   * then up to a round until the next-oldest sees it has run out, and a round's own time. What
   * the leader was to do in that time, the next one must look back over.
   */
  get leaderGapMs(): number {
    return this.leaseMs + 2 * this.renewEveryMs;
  }

  /** Whether this replica's lease is good now (on its own clock). */
  holdsLease(): boolean {
    return this.o.clock.now() < this.validUntil - this.renewEveryMs;
  }

  /** Whether `commandId` was sent by another live replica (its reply is that one's). */
  isPeerCommand(commandId: string): boolean {
    const prefix = commandId.slice(0, this.ownPrefix.length);
    return prefix !== this.ownPrefix && this.peerPrefixes.has(prefix);
  }

  /** Sessions this replica has taken over since it started. */
  stats(): { leader: boolean; peers: number; takeovers: number } {
    return { leader: this.isLeader(), peers: this.peerPrefixes.size, takeovers: this.takeovers };
  }

  /**
   * Takes the lease (a start fails when the database cannot be reached), takes over what dead
   * replicas left, this replica's own earlier life included, and keeps renewing.
   */
  async start(): Promise<void> {
    await this.renew();
    await this.runRound();
  }

  /** Stops renewing and ends the lease at once, so the others take over without waiting. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.cancelTimer?.();
    this.cancelTimer = null;
    await this.round;
    await this.o.store.replicas.release(this.o.id, this.o.clock.now()).catch(() => undefined);
  }

  private async renew(): Promise<void> {
    const now = this.o.clock.now();
    await this.o.store.replicas.renew(this.o.id, now, now + this.leaseMs);
    this.validUntil = now + this.leaseMs;
  }

  private runRound(): Promise<void> {
    this.round = this.roundOnce()
      .catch((err: unknown) =>
        this.o.logger?.warn({ err: String(err) }, 'replica round failed; trying again'),
      )
      .finally(() => {
        this.round = null;
        if (!this.stopped)
          this.cancelTimer = this.o.clock.schedule(
            this.o.clock.now() + this.renewEveryMs,
            () => void this.runRound(),
          );
      });
    return this.round;
  }

  /**
   * Runs `refreshDevices` if devices were added since it last ran: a count, where reading every
   * device every few seconds cost each replica a read of the whole table. The count is taken
   * before the read, so a device added in between is in the read or moves the next count.
   */
  private async refreshDevicesIfAdded(): Promise<void> {
    if (this.o.refreshDevices === undefined) return;
    const count = await this.o.store.homes.countDevices();
    if (count === this.devicesRead) return;
    await this.o.refreshDevices();
    this.devicesRead = count;
  }

  private becameLeader(): void {
    this.o.logger?.info({ replica: this.o.id }, 'this replica leads');
    for (const fn of this.leadershipListeners) {
      try {
        fn();
      } catch (err) {
        this.o.logger?.warn({ err: String(err) }, 'a leadership listener failed');
      }
    }
  }

  private async roundOnce(): Promise<void> {
    try {
      await this.renew();
    } catch (err) {
      this.o.logger?.warn({ err: String(err) }, 'replica lease not renewed');
    }
    if (!this.holdsLease()) {
      // The others may take our sessions from now on: stop driving them first.
      const n = this.o.orchestrator.relinquishAll('this replica could not renew its lease');
      if (n > 0) this.o.logger?.warn({ sessions: n }, 'replica lease lost; sessions let go');
      this.leader = false;
      return;
    }
    const now = this.o.clock.now();
    const leases = await this.o.store.replicas.list();
    const live = leases.filter((l) => l.expiresAt > now);
    const wasLeader = this.leader;
    this.leader = live[0]?.id === this.o.id;
    if (this.leader && !wasLeader) this.becameLeader();
    this.peerPrefixes = new Set(
      live.filter((l) => l.id !== this.o.id).map((l) => commandIdPrefix(l.id)),
    );
    if (++this.rounds % DEVICE_REFRESH_ROUNDS === 1) await this.refreshDevicesIfAdded();
    const driven = new Set(this.o.orchestrator.ownedSessionIds());
    const orphans = await this.o.store.sessions.listOpenToTakeOver(
      live.map((l) => l.id),
      this.o.id,
    );
    for (const row of orphans) {
      if (this.stopped || !this.holdsLease()) return;
      if (driven.has(row.id)) continue;
      const from = row.owner ?? null;
      if (!(await this.o.store.sessions.claim(row.id, from, this.o.id))) continue;
      // Read again after the claim: nothing can write it now but this replica.
      const fresh = await this.o.store.sessions.get(row.id);
      if (fresh === null || fresh.endedAt !== null) continue;
      this.takeovers++;
      this.o.logger?.info({ sessionId: row.id, from }, 'session taken over');
      await this.o.orchestrator.resume(fresh, from);
    }
  }
}
