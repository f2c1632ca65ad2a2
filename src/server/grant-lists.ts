/**
 * The control plane's side of the home hubs' offline grant lists (issue 6; the wire format is
 * src/protocol/grant-list.ts). For every lock of every home, {@link GrantLists} builds, signs
 * and publishes the list of who may come in there: the keypad codes Threshold wrote, the
 * in-home deliveries booked at the lock's door, and the guests' grants with their hours. With
 * it a home hub lets guests in while the control plane is out of reach, refuses couriers once
 * its newest list is older than its bound, and learns of a revocation within a stated bound.
 *
 * What a lock's list names, between its issue (`issuedAtMs`, now) and its horizon
 * (`horizonMs`, now + `offlineHorizonMs`):
 *
 * - `pins`: every slot of the lock whose desired content is a code (`desired: 'set'`, whatever
 *   its sync state: pending, confirmed, failed, out of sync — in each of them Threshold wants
 *   this code on the lock; a slot it wants empty, or found set by hand, is never named), with
 *   its holder: the owner (windows `null`, at all times), a member (the whole range), or a
 *   guest (the union of the hours of their grants at a door of this lock that are neither
 *   revoked nor used up, in the home's time zone). A holder who is disabled, of another home,
 *   or a guest with no such grant left, gets no entry.
 * - `deliveries`: each in-home delivery at a door of this lock that is neither finished nor
 *   cancelled, whose grant is not revoked and whose validity overlaps the range, by grant.
 * - `guests`: each guest grant at a door of this lock, not revoked, not used up, with its hours
 *   in the range (a grant with none in the range is left out).
 *
 * When lists go out:
 *
 * - for every lock at {@link GrantLists.start} (and {@link GrantLists.resume}), a chunk of
 *   homes at a time: their facts read with one query per table, their versions claimed in one
 *   transaction, so a start costs a few queries and one commit per 500 homes rather than a
 *   handful of queries and a commit per home and lock;
 * - after a change that may touch a home's lists. The one hook is the audit log: every change
 *   to grants, deliveries, keypad slots and people is recorded there once committed, so each
 *   entry is mapped to its home (by its subject) and that home is rebuilt at most every
 *   `debounceMs` (100 ms). A visit's request counts as such a change too: the hub checks the
 *   unlock that follows against its list. {@link GrantLists.changed} does the same for a change
 *   that is not audited on its own (a guest's keypad use counted, a lock provisioned);
 * - when a lock's last list is `refreshMs` old (5 min), so a hub that keeps hearing from us can
 *   tell a current list from an old one.
 *
 * A rebuilt list is published only when what it says changed, or when the last one is
 * `refreshMs` old. "What it says" is compared over the stretch both lists cover: the issue time
 * and horizon move with every build, and windows cut to them are no change by themselves.
 *
 * Each list gets the lock's next version, claimed in the store before the list leaves, so a
 * lock's versions only grow, across restarts too. It goes out retained, QoS 1, through the
 * server's MQTT client. A list larger than {@link MAX_GRANT_LIST_BYTES} (or with more entries
 * than the format allows) is not published: the error is logged with the lock and the size,
 * and the hub's list grows old until it refuses couriers — the safe way to fail.
 *
 * {@link GrantLists.pause} and {@link GrantLists.resume} are a fault switch for scenarios (a
 * control plane whose lists stop coming); {@link GrantLists.listFor} is the last list signed.
 */
import { Compile } from 'typebox/compile';
import type { AuditEntry } from '../core/audit-chain.ts';
import { canonicalJson } from '../core/canonical-json.ts';
import type { Clock } from '../core/clock.ts';
import type { Signer } from '../core/crypto-ports.ts';
import { scheduleWindows } from '../core/grant-schedule.ts';
import { isUsedUp } from '../core/guest-access.ts';
import {
  FINISHED_DELIVERY_STATUSES,
  type Delivery,
  type Device,
  type Door,
  type Grant,
  type GuestGrant,
  type Home,
  type Principal,
} from '../core/model.ts';
import {
  GrantList,
  MAX_GRANT_LIST_BYTES,
  MAX_LISTED_ENTRIES,
  MAX_LISTED_WINDOWS,
  signGrantList,
  type GrantListMessage,
  type ListedDeliveryMessage,
  type ListedGuestMessage,
  type ListedPinMessage,
  type SignedGrantListMessage,
} from '../protocol/grant-list.ts';
import { GrantListRepository } from '../store/grant-list-repository.ts';
import type { PinSlot, Store } from '../store/index.ts';
import type { AuditLog } from './audit-log.ts';

const HOUR_MS = 60 * 60_000;
/** Default offline horizon: a list lets nobody in more than a day after it was issued. */
export const DEFAULT_OFFLINE_HORIZON_MS = 24 * HOUR_MS;
/**
 * Shortest offline horizon `threshold serve` takes: a hub must be able to ride out a short
 * outage. (The class itself takes down to a second, for tests and scenarios that need the
 * horizon to pass within seconds.)
 */
export const MIN_OFFLINE_HORIZON_MS = HOUR_MS;
/** Longest offline horizon: a revoked guest's hours must run out within a week offline. */
export const MAX_OFFLINE_HORIZON_MS = 7 * 24 * HOUR_MS;
/** Default refresh: an unchanged lock's list is issued again this often, ms. */
export const DEFAULT_GRANT_LIST_REFRESH_MS = 5 * 60_000;
/** Shortest refresh period, ms. */
export const MIN_GRANT_LIST_REFRESH_MS = 1_000;
/** Default wait after a change before a home's lists are rebuilt, ms (changes come in bursts). */
export const DEFAULT_GRANT_LIST_DEBOUNCE_MS = 100;

/** Where the lists go: the server's MQTT client (see DeviceGateway.publishGrants). */
export interface GrantListPublisher {
  /** Publishes `payload` retained, QoS 1, on the lock's `grants` topic; false if not sent. */
  publishGrants(homeId: string, lockId: string, payload: string): Promise<boolean>;
}

/** Structured logging; a pino logger fits. */
export interface GrantListsLogger {
  error(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/** Settings of {@link GrantLists}. */
export interface GrantListsOptions {
  /** Homes, doors, locks, people, grants, deliveries and keypad slots are read here. */
  readonly store: Pick<
    Store,
    'db' | 'homes' | 'principals' | 'guestGrants' | 'deliveries' | 'pinSlots' | 'sessions'
  >;
  /** The lists' version counters; default one on `store.db`. */
  readonly versions?: GrantListRepository;
  readonly publisher: GrantListPublisher;
  /** The grant-list key (`<data>/keys/grants-ed25519.pem`). */
  readonly signer: Signer;
  readonly clock: Clock;
  /** The log whose committed entries tell which homes' lists may have changed. */
  readonly audit?: Pick<AuditLog, 'onEntry'>;
  /**
   * How far past its issue a list reaches, ms: nothing in it lets anyone in later, so a
   * revocation that cannot reach a hub takes effect at most this long after the hub's last
   * list. 1 hour to 7 days; default 24 hours.
   */
  readonly offlineHorizonMs?: number;
  /**
   * An unchanged lock's list is issued again once the last one is this old, ms. At least 1 s,
   * at most half the horizon; default 5 minutes.
   */
  readonly refreshMs?: number;
  /** Wait after a change before a home's lists are rebuilt, ms; default 100. */
  readonly debounceMs?: number;
  readonly logger?: GrantListsLogger;
}

/** Counters of {@link GrantLists}, for tests and the stats route. */
export interface GrantListStats {
  /** Lists signed and handed to the broker client. */
  readonly published: number;
  /** Lists built that said nothing new and were young enough: not published. */
  readonly unchanged: number;
  /** Lists too large (or with too many entries) to publish. */
  readonly tooLarge: number;
  /** Lists the broker client could not send. */
  readonly failed: number;
}

/**
 * The offline horizon for a number of hours (e.g. `--offline-grants-hours`), ms. Throws a
 * RangeError that says what is allowed for anything but 1 to 168 hours.
 */
export function offlineHorizonFromHours(hours: number): number {
  const ms = Math.round(hours * HOUR_MS);
  if (!Number.isFinite(hours) || ms < MIN_OFFLINE_HORIZON_MS || ms > MAX_OFFLINE_HORIZON_MS)
    throw new RangeError(
      `the offline grant horizon is from 1 to 168 hours (7 days), not ${String(hours)}`,
    );
  return ms;
}

/** One stretch of time, ms: from (inclusive) until (exclusive). */
interface Window {
  readonly fromMs: number;
  readonly untilMs: number;
}

/**
 * What a home's lists are built from, read once per rebuild (with the facts of other homes:
 * see {@link FACTS_CHUNK}).
 */
interface HomeFacts {
  readonly home: Home;
  readonly locks: readonly Device[];
  readonly doors: readonly Door[];
  /** The home's people who are not disabled, by id. */
  readonly people: ReadonlyMap<string, Principal>;
  readonly guestGrants: readonly GuestGrant[];
  /** The home's deliveries that may still open a door: in-home, neither finished nor cancelled. */
  readonly openDeliveries: readonly Delivery[];
  /** The keypad slots of each of the home's locks, by slot number. */
  readonly slots: ReadonlyMap<string, readonly PinSlot[]>;
  /** The grant of each open delivery (as `getGrantForDelivery` picks it), by delivery id. */
  readonly deliveryGrants: ReadonlyMap<string, Grant>;
}

/**
 * Homes whose facts are read together when every home is rebuilt (at start, on resume): a
 * handful of queries per chunk, where one set per home made a start with thousands of homes
 * wait on tens of thousands of queries. Chunks also bound what is held in memory at once.
 */
const FACTS_CHUNK = 500;
/**
 * Homes rebuilt at once, whatever asked (the start, the refresh timers of thousands of homes
 * falling due together, changes): the others wait their turn in order. Few: SQLite has one
 * connection, and Kysely's lock on it wakes every waiter at each release, so thousands of
 * rebuilds reading at once (as all homes at start once did) cost time that grows with the
 * square of the homes.
 */
const REBUILD_CONCURRENCY = 4;

/** Lets at most `limit` tasks run at once; the others start in the order they came. */
class Gate {
  private active = 0;
  private waiting: (() => void)[] = [];
  private head = 0;

  constructor(private readonly limit: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.active < this.limit) this.active++;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    try {
      return await task();
    } finally {
      // The place passes to the next waiter, if any (an index, not shift(): thousands wait).
      const next = this.waiting[this.head];
      if (next === undefined) {
        this.active--;
        this.waiting = [];
        this.head = 0;
      } else {
        this.waiting[this.head++] = noop;
        next();
      }
    }
  }
}

const noop = (): void => undefined;

const validList = Compile(GrantList);
/** The longest a version can be written: sizes are checked with it before one is claimed. */
const LONGEST_VERSION = Number.MAX_SAFE_INTEGER;
/** A signature's length in base64url (Ed25519: 64 bytes). */
const SIGNATURE_CHARS = 86;
/**
 * Audit kinds that never change what a list says (sign-ins, device traffic, alarms, …): they
 * do not cost a rebuild. Anything else is mapped to its home and rebuilt (an unneeded rebuild
 * costs a few reads and publishes nothing).
 */
const QUIET_PREFIXES = [
  'audit.',
  'auth.',
  'apikey.',
  'push.',
  'live-view.',
  'clip.',
  'alarm.',
  'command.',
  'device.',
  'heartbeat.',
  'observation.',
  'recovery.',
  'remote.',
  'webhook.',
  'access.refused',
  'keypad.wrong-code',
  'keypad.lockout',
  'keypad.outside-window',
  'courier.invite',
] as const;

/** See the module comment. */
export class GrantLists {
  private readonly store: GrantListsOptions['store'];
  private readonly versions: GrantListRepository;
  private readonly publisher: GrantListPublisher;
  private readonly signer: Signer;
  private readonly clock: Clock;
  private readonly audit: GrantListsOptions['audit'];
  private readonly logger: GrantListsLogger | undefined;
  /** How far a list reaches past its issue, ms. */
  readonly offlineHorizonMs: number;
  /** How old a lock's last list may get before it is issued again, ms. */
  readonly refreshMs: number;
  private readonly debounceMs: number;
  /** The last list signed for each lock. */
  private readonly lists = new Map<string, SignedGrantListMessage>();
  /** Locks whose last build could not be published (too large), with when to try again. */
  private readonly retryAt = new Map<string, number>();
  /** Per home: rebuilds run one after another. */
  private readonly queues = new Map<string, Promise<void>>();
  /** Per home: the rebuild a change asked for, not started yet. */
  private readonly debounced = new Map<string, () => void>();
  /** Per home: the rebuild that republishes its oldest list in time. */
  private readonly refreshTimers = new Map<string, { at: number; cancel: () => void }>();
  /** The home of each device, as looked up for audit entries (a device never moves). */
  private readonly deviceHomes = new Map<string, string>();
  private readonly running = new Set<Promise<unknown>>();
  private cancelSweep: (() => void) | null = null;
  private offAudit: (() => void) | null = null;
  private started = false;
  private stopped = false;
  private paused = false;
  private counts = { published: 0, unchanged: 0, tooLarge: 0, failed: 0 };
  /** Bounds the rebuilds running at once (see {@link REBUILD_CONCURRENCY}). */
  private readonly building = new Gate(REBUILD_CONCURRENCY);

  constructor(options: GrantListsOptions) {
    this.store = options.store;
    this.versions = options.versions ?? new GrantListRepository(options.store.db);
    this.publisher = options.publisher;
    this.signer = options.signer;
    this.clock = options.clock;
    this.audit = options.audit;
    this.logger = options.logger;
    this.offlineHorizonMs = options.offlineHorizonMs ?? DEFAULT_OFFLINE_HORIZON_MS;
    this.refreshMs = options.refreshMs ?? DEFAULT_GRANT_LIST_REFRESH_MS;
    this.debounceMs = options.debounceMs ?? DEFAULT_GRANT_LIST_DEBOUNCE_MS;
    const h = this.offlineHorizonMs;
    if (!Number.isInteger(h) || h < 1_000 || h > MAX_OFFLINE_HORIZON_MS)
      throw new RangeError(
        `offlineHorizonMs must be whole ms from 1 second to 7 days (1000 to 604800000), not ${String(h)}`,
      );
    const r = this.refreshMs;
    if (!Number.isInteger(r) || r < MIN_GRANT_LIST_REFRESH_MS || r > h / 2)
      throw new RangeError(
        `refreshMs must be whole ms from 1 s to half the offline horizon (${h / 2}), not ${String(r)}`,
      );
    if (!Number.isInteger(this.debounceMs) || this.debounceMs < 0 || this.debounceMs > r)
      throw new RangeError('debounceMs must be whole ms from 0 to refreshMs');
  }

  /** The public key a home hub is configured with (base64url, raw 32 bytes). */
  get publicKey(): string {
    return this.signer.publicKey;
  }

  /**
   * Publishes every lock's list, then follows the audit log for changes and keeps each list
   * fresh. Resolves once every home's first build has run.
   */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    this.offAudit = this.audit?.onEntry((e) => this.onAuditEntry(e)) ?? null;
    await this.rebuildAll(true);
    this.scheduleSweep();
  }

  /** Stops listening and every timer; resolves once the builds under way have ended. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.offAudit?.();
    this.offAudit = null;
    this.cancelSweep?.();
    this.cancelSweep = null;
    for (const cancel of this.debounced.values()) cancel();
    this.debounced.clear();
    for (const t of this.refreshTimers.values()) t.cancel();
    this.refreshTimers.clear();
    await Promise.allSettled([...this.running]);
  }

  /**
   * Something in a home's lists may have changed: its lists are rebuilt once the debounce has
   * passed (several changes in a row cost one rebuild). Without a home, every home's are.
   */
  changed(homeId?: string): void {
    if (!this.started || this.stopped) return;
    if (homeId === undefined) {
      this.track(this.listHomeIds().then((ids) => ids.forEach((id) => this.changed(id))));
      return;
    }
    if (this.debounced.has(homeId)) return;
    const cancel = this.clock.schedule(this.clock.now() + this.debounceMs, () => {
      this.debounced.delete(homeId);
      this.track(this.rebuild(homeId, false));
    });
    this.debounced.set(homeId, cancel);
  }

  /**
   * The fault switch: from now on nothing is published (the hubs' lists grow old, as when the
   * control plane cannot reach them), until {@link resume}.
   */
  pause(): void {
    this.paused = true;
  }

  /** Ends a {@link pause}: every lock's list is built and published at once. */
  async resume(): Promise<void> {
    if (!this.paused) return;
    this.paused = false;
    if (this.started && !this.stopped) await this.rebuildAll(true);
  }

  /** Whether {@link pause} holds the lists back. */
  get isPaused(): boolean {
    return this.paused;
  }

  /** The last list signed for a lock (what its hub was sent last), or null if none yet. */
  listFor(lockId: string): SignedGrantListMessage | null {
    return this.lists.get(lockId) ?? null;
  }

  /** Counters since start. */
  stats(): GrantListStats {
    return { ...this.counts };
  }

  // ---- Hearing of changes ----

  /** Maps a committed audit entry to the homes whose lists it may change. */
  private onAuditEntry(e: AuditEntry): void {
    if (this.stopped || QUIET_PREFIXES.some((p) => e.kind.startsWith(p))) return;
    this.track(
      this.homesOf(e).then((homes) => {
        if (homes === 'all') this.changed();
        else for (const id of homes) this.changed(id);
      }),
    );
  }

  /** The homes an audit entry is about, by its subject (`home:…`, `device:…`, …). */
  private async homesOf(e: AuditEntry): Promise<readonly string[] | 'all'> {
    const colon = e.subject.indexOf(':');
    if (colon < 0) return [];
    const type = e.subject.slice(0, colon);
    const id = e.subject.slice(colon + 1);
    const one = (homeId: string | null | undefined): readonly string[] => (homeId ? [homeId] : []);
    const { homes, sessions, deliveries, guestGrants, principals } = this.store;
    switch (type) {
      case 'home':
        return [id];
      case 'device': {
        const known = this.deviceHomes.get(id);
        if (known !== undefined) return [known];
        const device = await homes.getDevice(id);
        if (device) this.deviceHomes.set(id, device.homeId);
        return one(device?.homeId);
      }
      case 'door':
        return one((await homes.getDoor(id))?.homeId);
      case 'session': {
        // A session changes a list when the door first opens (a grant's use is counted, a
        // delivery is under way) and when it ends (a delivery is finished). Its request is a
        // moment to be current too: the hub checks the unlock that follows against its list,
        // and a grant made without an audit entry of its own (a seeded delivery) is then
        // listed while the camera arms.
        const opened = e.kind === 'session.state' && e.data.to === 'open';
        if (!opened && e.kind !== 'session.ended' && e.kind !== 'session.requested') return [];
        return one((await sessions.get(id))?.homeId);
      }
      case 'delivery':
        return one((await deliveries.get(id))?.homeId);
      case 'grant':
        return one((await guestGrants.get(id))?.homeId ?? (await deliveries.getGrant(id))?.homeId);
      case 'principal':
      case 'user':
        return one((await principals.get(id))?.homeId);
      case 'carrier':
        // A courier revoked loses the grants of their deliveries, in whichever homes.
        return 'all';
      default:
        return [];
    }
  }

  // ---- Building and publishing ----

  private async listHomeIds(): Promise<string[]> {
    return (await this.store.homes.listHomes()).map((h) => h.id);
  }

  /**
   * Rebuilds every home (each home's rebuilds in order); `force` publishes every lock's list.
   * {@link FACTS_CHUNK} homes at a time, one chunk after another.
   */
  private async rebuildAll(force: boolean): Promise<void> {
    const homes = await this.store.homes.listHomes();
    for (let from = 0; from < homes.length; from += FACTS_CHUNK) {
      if (this.stopped || this.paused) return;
      await this.rebuildChunk(homes.slice(from, from + FACTS_CHUNK), force);
    }
  }

  /**
   * Rebuilds a chunk of homes as one: once the rebuilds of those homes asked for before have
   * run (and holding theirs back until it is done, as a rebuild of each would), their facts
   * are read together, every lock's list is built, the versions of those to publish are claimed
   * in one transaction (one commit, where a claim each cost a flush to disk each), and the
   * lists are signed and published.
   */
  private async rebuildChunk(chunk: readonly Home[], force: boolean): Promise<void> {
    let release = noop;
    const held = new Promise<void>((resolve) => (release = resolve));
    const before = chunk.map((home) => {
      const previous = this.queues.get(home.id) ?? Promise.resolve();
      this.queues.set(home.id, held);
      void held.then(() => {
        if (this.queues.get(home.id) === held) this.queues.delete(home.id);
      });
      return previous;
    });
    try {
      await Promise.all(before);
      await this.building.run(async () => {
        if (this.stopped || this.paused) return;
        const facts = await this.factsOfHomes(chunk);
        const toPublish: { facts: HomeFacts; lock: Device; built: GrantListMessage }[] = [];
        for (const home of chunk) {
          const f = facts.get(home.id);
          for (const lock of f?.locks ?? []) {
            const built = f === undefined ? null : this.due(f, lock, force);
            if (f !== undefined && built !== null) toPublish.push({ facts: f, lock, built });
          }
        }
        const versions = await this.versions.nextMany(
          toPublish.map((p) => ({ lockDeviceId: p.lock.id, issuedAt: p.built.issuedAtMs })),
        );
        if (this.stopped || this.paused) return;
        for (const p of toPublish) {
          const version = versions.get(p.lock.id);
          if (version !== undefined) this.deliver(p.facts, p.lock, p.built, version);
        }
        for (const f of facts.values()) this.armRefresh(f.home.id, f.locks);
      });
    } catch (err) {
      this.logger?.warn(
        { homes: chunk.length, err: err instanceof Error ? err.message : String(err) },
        'grant lists not rebuilt',
      );
    } finally {
      release();
    }
  }

  /** Rebuilds one home's lists after the rebuilds of that home already asked for. */
  private rebuild(homeId: string, force: boolean): Promise<void> {
    const before = this.queues.get(homeId) ?? Promise.resolve();
    const run = before.then(() => this.building.run(() => this.rebuildNow(homeId, force)));
    const tail = run.catch((err: unknown) => {
      this.logger?.warn(
        { homeId, err: err instanceof Error ? err.message : String(err) },
        'grant lists not rebuilt',
      );
    });
    this.queues.set(homeId, tail);
    void tail.then(() => {
      if (this.queues.get(homeId) === tail) this.queues.delete(homeId);
    });
    return tail;
  }

  private async rebuildNow(homeId: string, force: boolean): Promise<void> {
    if (this.stopped || this.paused) return;
    const facts = await this.factsOf(homeId);
    if (facts === null) return;
    for (const lock of facts.locks) {
      if (this.stopped || this.paused) return;
      await this.publishLock(facts, lock, force);
    }
    this.armRefresh(homeId, facts.locks);
  }

  private async factsOf(homeId: string): Promise<HomeFacts | null> {
    const home = await this.store.homes.getHome(homeId);
    if (home === null) return null;
    return (await this.factsOfHomes([home])).get(homeId) ?? null;
  }

  /**
   * The facts of several homes, read with one query per table for all of them (two rounds:
   * the slots and grants to read depend on the locks and deliveries found).
   */
  private async factsOfHomes(homeList: readonly Home[]): Promise<Map<string, HomeFacts>> {
    const { homes, principals, guestGrants, deliveries, pinSlots } = this.store;
    const ids = homeList.map((h) => h.id);
    const [devices, doors, people, grants, homeDeliveries] = await Promise.all([
      homes.listDevicesByHome(ids),
      homes.listDoorsByHome(ids),
      principals.listForHomes(ids),
      guestGrants.listForHomes(ids),
      deliveries.listForHomes(ids),
    ]);
    const locksOf = new Map(
      ids.map((id) => [id, (devices.get(id) ?? []).filter((d) => d.kind === 'lock')]),
    );
    const openOf = new Map(
      ids.map((id) => [
        id,
        (homeDeliveries.get(id) ?? []).filter(
          // Placement absent means in-home (deliveries made before carriers could choose).
          (d) =>
            (d.placement ?? 'in-home') === 'in-home' &&
            !FINISHED_DELIVERY_STATUSES.includes(d.status),
        ),
      ]),
    );
    const [slots, deliveryGrants] = await Promise.all([
      pinSlots.listForLocks([...locksOf.values()].flat().map((l) => l.id)),
      deliveries.getGrantsForDeliveries([...openOf.values()].flat().map((d) => d.id)),
    ]);
    const out = new Map<string, HomeFacts>();
    for (const home of homeList) {
      const locks = locksOf.get(home.id) ?? [];
      out.set(home.id, {
        home,
        locks,
        doors: doors.get(home.id) ?? [],
        people: new Map((people.get(home.id) ?? []).map((p) => [p.id, p])),
        guestGrants: grants.get(home.id) ?? [],
        openDeliveries: openOf.get(home.id) ?? [],
        slots: new Map(locks.map((l) => [l.id, slots.get(l.id) ?? []])),
        deliveryGrants,
      });
    }
    return out;
  }

  /** Builds one lock's list and publishes it if it is due (see the module comment). */
  private async publishLock(facts: HomeFacts, lock: Device, force: boolean): Promise<void> {
    const built = this.due(facts, lock, force);
    if (built === null) return;
    const version = await this.versions.next(lock.id, built.issuedAtMs);
    if (this.stopped || this.paused) return;
    this.deliver(facts, lock, built, version);
  }

  /**
   * Builds one lock's list, now; returns it if it is to be published (changed, old enough, or
   * `force`), else null (counted as unchanged, or as too large and logged).
   */
  private due(facts: HomeFacts, lock: Device, force: boolean): GrantListMessage | null {
    const now = this.clock.now();
    const built = this.build(facts, lock, now, now + this.offlineHorizonMs);
    const last = this.lists.get(lock.id);
    const stale = last === undefined || now - last.list.issuedAtMs >= this.refreshMs;
    if (!force && !stale && sameContent(last.list, built)) {
      this.counts.unchanged++;
      return null;
    }
    const problem = this.tooLarge(built);
    if (problem !== null) {
      this.counts.tooLarge++;
      this.retryAt.set(lock.id, now + this.refreshMs);
      this.logger?.error(
        { homeId: facts.home.id, lockId: lock.id, ...problem, limitBytes: MAX_GRANT_LIST_BYTES },
        `grant list for lock ${lock.id} not published: ${problem.reason}; its hub's list grows old and it refuses couriers`,
      );
      return null;
    }
    this.retryAt.delete(lock.id);
    return built;
  }

  /** Signs a built list with the version claimed for it and hands it to the broker client. */
  private deliver(facts: HomeFacts, lock: Device, built: GrantListMessage, version: number): void {
    const signed = signGrantList({ ...built, version }, this.signer);
    this.lists.set(lock.id, signed);
    this.counts.published++;
    this.track(
      this.publisher.publishGrants(facts.home.id, lock.id, JSON.stringify(signed)).then((sent) => {
        if (!sent) this.counts.failed++;
      }),
      false,
    );
  }

  /**
   * Why a list cannot be published (too many entries, too large, off the schema), with its
   * size; null when it can. The size is measured with the longest version a list can have.
   */
  private tooLarge(list: GrantListMessage): { reason: string; bytes: number } | null {
    const bytes = Buffer.byteLength(
      JSON.stringify({
        list: { ...list, version: LONGEST_VERSION },
        sig: 'x'.repeat(SIGNATURE_CHARS),
      }),
    );
    const most = Math.max(list.pins.length, list.deliveries.length, list.guests.length);
    if (most > MAX_LISTED_ENTRIES)
      return { reason: `${most} entries in one part, more than ${MAX_LISTED_ENTRIES}`, bytes };
    if (bytes > MAX_GRANT_LIST_BYTES)
      return { reason: `${bytes} bytes, more than ${MAX_GRANT_LIST_BYTES}`, bytes };
    if (!validList.Check(list)) {
      const first = validList.Errors(list)[0];
      return {
        reason: `off the format (${first ? `${first.instancePath || '/'} ${first.message}` : ''})`,
        bytes,
      };
    }
    return null;
  }

  /** One lock's list for `[issuedAtMs, horizonMs)`, with version 1 until one is claimed. */
  private build(
    facts: HomeFacts,
    lock: Device,
    issuedAtMs: number,
    horizonMs: number,
  ): GrantListMessage {
    const { home } = facts;
    const doorIds = new Set(facts.doors.filter((d) => d.lockDeviceId === lock.id).map((d) => d.id));
    const hoursOf = (g: GuestGrant): Window[] => this.hours(g, home, issuedAtMs, horizonMs);
    // A guest's grants that still let them in at this lock: not revoked, not used up.
    const liveGrants = facts.guestGrants.filter(
      (g) =>
        doorIds.has(g.doorId) &&
        g.revokedAt === null &&
        !isUsedUp(g) &&
        facts.people.get(g.principalId)?.role === 'guest',
    );

    const pins: ListedPinMessage[] = [];
    for (const slot of facts.slots.get(lock.id) ?? []) {
      if (slot.desired !== 'set' || slot.codeDigest === null || slot.principalId === null) continue;
      const holder = facts.people.get(slot.principalId);
      const base = { slot: slot.slot, digest: slot.codeDigest, principalId: slot.principalId };
      switch (holder?.role) {
        case 'owner':
          pins.push({ ...base, holder: 'owner', windows: null });
          break;
        case 'member':
          pins.push({
            ...base,
            holder: 'member',
            windows: [{ fromMs: issuedAtMs, untilMs: horizonMs }],
          });
          break;
        case 'guest': {
          const theirs = liveGrants.filter((g) => g.principalId === holder.id);
          // A guest whose every grant here is revoked or used up has no business at the keypad.
          if (theirs.length === 0) break;
          pins.push({ ...base, holder: 'guest', windows: union(theirs.flatMap(hoursOf)) });
          break;
        }
        case 'courier':
        case 'carrier':
        case undefined:
          // Disabled, of another home, or a courier or carrier: no code of theirs opens here.
          break;
      }
    }

    const deliveries: ListedDeliveryMessage[] = [];
    for (const d of facts.openDeliveries) {
      if (!doorIds.has(d.doorId)) continue;
      const grant = facts.deliveryGrants.get(d.id);
      if (grant === undefined || grant.revokedAt !== null) continue;
      if (grant.validUntil <= issuedAtMs || grant.validFrom >= horizonMs) continue;
      deliveries.push({
        grantId: grant.id,
        deliveryId: d.id,
        courierId: grant.principalId,
        fromMs: grant.validFrom,
        untilMs: grant.validUntil,
      });
    }
    deliveries.sort((a, b) => a.fromMs - b.fromMs || compare(a.grantId, b.grantId));

    const guests: ListedGuestMessage[] = [];
    for (const g of liveGrants) {
      const windows = union(hoursOf(g));
      if (windows.length > 0) guests.push({ grantId: g.id, principalId: g.principalId, windows });
    }
    guests.sort((a, b) => compare(a.grantId, b.grantId));

    return {
      format: 1,
      homeId: home.id,
      lockId: lock.id,
      version: 1,
      issuedAtMs,
      horizonMs,
      pins: pins.sort((a, b) => a.slot - b.slot),
      deliveries,
      guests,
    };
  }

  /** When a guest grant lets its holder in within `[fromMs, untilMs)`, in the home's zone. */
  private hours(g: GuestGrant, home: Home, fromMs: number, untilMs: number): Window[] {
    try {
      return scheduleWindows(g.schedule, home.timeZone, fromMs, untilMs).map((w) => ({
        fromMs: w.start,
        untilMs: w.end,
      }));
    } catch (err) {
      // A stored schedule that does not evaluate lets nobody in (and is worth a look).
      this.logger?.warn(
        { homeId: home.id, grantId: g.id, err: err instanceof Error ? err.message : String(err) },
        'guest grant schedule not evaluated; listed without hours',
      );
      return [];
    }
  }

  // ---- Timers ----

  /**
   * Arms the home's refresh for when its oldest list turns `refreshMs` old (a lock whose list
   * could not be published: when it is tried again).
   */
  private armRefresh(homeId: string, locks: readonly Device[]): void {
    if (this.stopped) return;
    let at = this.clock.now() + this.refreshMs;
    for (const lock of locks) {
      const issued = this.lists.get(lock.id)?.list.issuedAtMs;
      const due =
        this.retryAt.get(lock.id) ?? (issued === undefined ? at : issued + this.refreshMs);
      at = Math.min(at, due);
    }
    const armed = this.refreshTimers.get(homeId);
    if (armed?.at === at) return;
    armed?.cancel();
    const cancel = this.clock.schedule(at, () => {
      this.refreshTimers.delete(homeId);
      this.track(this.rebuild(homeId, false));
    });
    this.refreshTimers.set(homeId, { at, cancel });
  }

  /**
   * Every `refreshMs`, homes with no refresh armed (added since, or whose build failed) are
   * built: a new home or lock gets its list without waiting for a change.
   */
  private scheduleSweep(): void {
    if (this.stopped) return;
    this.cancelSweep = this.clock.schedule(this.clock.now() + this.refreshMs, () => {
      this.cancelSweep = null;
      this.track(
        this.listHomeIds()
          .then((ids) => {
            for (const id of ids) if (!this.refreshTimers.has(id)) this.changed(id);
          })
          .finally(() => this.scheduleSweep()),
      );
    });
  }

  /**
   * Keeps background work in view for {@link stop} (a publish waiting for the broker is not
   * waited for: a broker that is away must not hold the stop); a failure is logged.
   */
  private track(work: Promise<unknown>, awaitOnStop = true): void {
    const p = work.catch((err: unknown) => {
      this.logger?.warn(
        { err: err instanceof Error ? err.message : String(err) },
        'grant list step failed',
      );
    });
    if (!awaitOnStop) return;
    this.running.add(p);
    void p.finally(() => this.running.delete(p));
  }
}

/**
 * Whether two lists of one lock say the same: the same entries, and the same windows over the
 * stretch both lists cover (the later issue to the earlier horizon). Version, issue time and
 * horizon are not compared: a list built a minute later is the same list, a minute on.
 */
function sameContent(a: GrantListMessage, b: GrantListMessage): boolean {
  const from = Math.max(a.issuedAtMs, b.issuedAtMs);
  const until = Math.min(a.horizonMs, b.horizonMs);
  return canonicalJson(comparable(a, from, until)) === canonicalJson(comparable(b, from, until));
}

function comparable(list: GrantListMessage, from: number, until: number): unknown {
  const cut = (ws: readonly Window[]): Window[] =>
    ws.flatMap((w) => {
      const start = Math.max(w.fromMs, from);
      const end = Math.min(w.untilMs, until);
      return end > start ? [{ fromMs: start, untilMs: end }] : [];
    });
  return {
    pins: list.pins.map((p) => ({ ...p, windows: p.windows === null ? null : cut(p.windows) })),
    deliveries: list.deliveries,
    guests: list.guests.map((g) => ({ ...g, windows: cut(g.windows) })),
  };
}

/**
 * The union of windows: ordered, overlapping or touching ones merged, at most
 * {@link MAX_LISTED_WINDOWS} (the earliest: a hub needs the next ones first, and gets the
 * later ones with a later list).
 */
function union(windows: readonly Window[]): Window[] {
  const sorted = [...windows].sort((a, b) => a.fromMs - b.fromMs || a.untilMs - b.untilMs);
  const merged: Window[] = [];
  for (const w of sorted) {
    const last = merged.at(-1);
    if (last !== undefined && w.fromMs <= last.untilMs)
      merged[merged.length - 1] = {
        fromMs: last.fromMs,
        untilMs: Math.max(last.untilMs, w.untilMs),
      };
    else merged.push(w);
  }
  return merged.slice(0, MAX_LISTED_WINDOWS);
}

/** A stable order of ids, whatever the locale. */
function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
