/**
 * "Who unlocked": every unlock of a home's lock is recorded with who did it and how, shown to
 * the household live (the `entry` event) and pushed to those who asked for it.
 *
 * Where entries come from:
 * - `app`: an access session (courier or guest at the door) whose lock reported the bolt drawn
 *   (`unlockedAt` set): one entry per session, from the event bus.
 * - `remote`: an owner or member who unlocked from afar ({@link EntryRecorder.remote}).
 * - `pin`: a keypad code; PinSync tells us once the lock's `keypad.unlocked` is audited
 *   ({@link EntryRecorder.keypad}). A guest's code counts one use of the grant it was valid
 *   under; a code used when no grant of theirs allowed it (possible only while the lock could
 *   not be reached to narrow its window) is audited and told to the owner.
 * - `manual`: the lock's `lock.manual` event with the bolt drawn: a key or the thumb-turn. The
 *   lock cannot say who, and the entry says so.
 *
 * Who is pushed: each owner or member chooses (`entry_alert_settings`): every entry (the
 * owner's default), the entries of people they chose (a member's default), or none. Nobody is
 * pushed about their own entry. The facts themselves are in the audit log already (session
 * states, `keypad.unlocked`, `device.event`, `remote.command`); an entry is their summary.
 */
import { randomUUID } from 'node:crypto';
import type { AuditActor } from '../core/audit-chain.ts';
import type { Clock } from '../core/clock.ts';
import { scheduleAllows } from '../core/grant-schedule.ts';
import { isUsedUp } from '../core/guest-access.ts';
import type { Door, Principal } from '../core/model.ts';
import type { DeviceEventMessage } from '../protocol/device-messages.ts';
import type { EntryView } from '../protocol/views.ts';
import type { Entry, EntryAlertMode, EntryMethod, Store } from '../store/index.ts';
import type { AuditLog } from './audit-log.ts';
import { deviceEventUuid } from './device-event-key.ts';
import type { DeviceGatewayListener, RegisteredDevice } from './device-gateway.ts';
import type { EventBus, ServerEvent } from './event-bus.ts';

/** What {@link EntryRecorder} needs. */
export interface EntryRecorderOptions {
  readonly store: Pick<Store, 'entries' | 'homes' | 'principals' | 'guestGrants'>;
  readonly events: EventBus;
  readonly clock: Clock;
  readonly audit: Pick<AuditLog, 'append'>;
  /** Tells a home's household something that needs attention (a code used outside its grant). */
  readonly notify: (homeId: string, message: string) => void;
  /** Narrows keypad windows once a guest's use is counted (PinSync.refreshWindows). */
  readonly refreshPins?: (homeId: string) => Promise<void>;
  readonly logger?: { warn(obj: object, msg: string): void };
}

/** What a keypad entry report carries (from PinSync, after `keypad.unlocked` is audited). */
export interface KeypadEntry {
  readonly homeId: string;
  readonly lockId: string;
  readonly slot: number | null;
  /** Whose code it was, when Threshold wrote and confirmed it; null otherwise. */
  readonly principalId: string | null;
  /** The lock's event: its time by the lock's clock and its `seq` (they name it). */
  readonly deviceAt: number;
  readonly seq: number;
}

/** The entry-alert mode of a person who never chose: the owner hears of everything. */
export function defaultAlertMode(role: Principal['role']): EntryAlertMode {
  return role === 'owner' ? 'all' : 'chosen';
}

const SYSTEM: AuditActor = { type: 'system', id: 'entries' };

const ROLE_WORD: Record<string, string> = {
  owner: 'owner',
  member: 'household',
  guest: 'guest',
  courier: 'courier',
  carrier: 'carrier',
};

/** See the module comment. */
export class EntryRecorder implements DeviceGatewayListener {
  private unsubscribe: (() => void) | null = null;
  private readonly running = new Set<Promise<unknown>>();
  /** Sessions whose entry is recorded (newest last, bounded): later reports skip the store. */
  private readonly seenSessions = new Set<string>();
  private stopped = false;

  constructor(private readonly o: EntryRecorderOptions) {}

  /** Listens for sessions whose door was opened. */
  start(): void {
    if (this.unsubscribe !== null || this.stopped) return;
    this.unsubscribe = this.o.events.subscribe((e) => this.onBusEvent(e));
  }

  /** Stops listening; resolves once entries being recorded are. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    this.unsubscribe = null;
    await Promise.allSettled([...this.running]);
  }

  /** Resolves once nothing is being recorded (tests and orderly shutdown). */
  async idle(): Promise<void> {
    while (this.running.size > 0) await Promise.allSettled([...this.running]);
  }

  /**
   * Gateway listener: a key or the thumb-turn drew the bolt. The lock's event is acknowledged
   * once the entry is recorded (or failed to be, which is logged: a retry would fail the same).
   * Every replica hears the event and records it, under an id of the event's own: the first
   * insert wins and the others do nothing.
   */
  onEvent(device: RegisteredDevice, event: DeviceEventMessage): Promise<void> | undefined {
    if (this.stopped || device.kind !== 'lock') return;
    if (event.name !== 'lock.manual' || event.detail !== 'unlocked') return;
    return this.track(
      this.record({
        id: `entry-${deviceEventUuid('entry', device.id, event)}`,
        homeId: device.homeId,
        lockDeviceId: device.id,
        method: 'manual',
        principalId: null,
        slot: null,
        sessionId: null,
      }),
    );
  }

  /**
   * A keypad code opened the lock (PinSync's `onKeypadEntry`; on replicas, each of them calls
   * it for the same event). Resolves once the entry is recorded and a guest's use counted, by
   * this call or an earlier one for the same event; never rejects (a failure is logged).
   */
  keypad(entry: KeypadEntry): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return this.track(this.keypadEntry(entry));
  }

  /** An owner or member unlocked `door` from afar and the lock said yes. */
  async remote(principal: Principal, door: Door): Promise<EntryView> {
    const { view } = await this.record({
      homeId: door.homeId,
      lockDeviceId: door.lockDeviceId,
      method: 'remote',
      principalId: principal.id,
      slot: null,
      sessionId: null,
    });
    return view;
  }

  /** A home's entries as people see them, newest first. */
  async list(homeId: string, beforeMs: number | null, limit: number): Promise<EntryView[]> {
    const entries = await this.o.store.entries.listForHome(homeId, beforeMs, limit);
    const names = new Map<string, Principal | null>();
    const doors = new Map<string, string>();
    const views: EntryView[] = [];
    for (const e of entries) views.push(await this.view(e, names, doors));
    return views;
  }

  /**
   * The principals to push an entry to: each owner or member of the home whose choice covers
   * it, never the person who came in.
   */
  async watchersOf(entry: EntryView, homeId: string): Promise<Set<string>> {
    const people = await this.o.store.principals.listForHome(homeId);
    const out = new Set<string>();
    for (const p of people) {
      if (p.role !== 'owner' && p.role !== 'member') continue;
      if (entry.principalId === p.id) continue;
      const setting = await this.o.store.entries.alertSetting(p.id, defaultAlertMode(p.role));
      if (setting.mode === 'all') out.add(p.id);
      else if (
        setting.mode === 'chosen' &&
        entry.principalId !== null &&
        setting.people.includes(entry.principalId)
      )
        out.add(p.id);
    }
    return out;
  }

  private onBusEvent(e: ServerEvent): void {
    if (this.stopped || e.type !== 'session') return;
    const s = e.session;
    if (s.unlockedAt === null || this.seenSessions.has(s.id)) return;
    this.seenSessions.add(s.id);
    if (this.seenSessions.size > 1_000) {
      const oldest = this.seenSessions.values().next().value;
      if (oldest !== undefined) this.seenSessions.delete(oldest);
    }
    void this.track(
      this.record({
        homeId: s.homeId,
        lockDeviceId: s.lockDeviceId,
        method: 'app',
        principalId: s.principalId,
        slot: null,
        sessionId: s.id,
        at: s.unlockedAt,
        doorId: s.doorId,
      }).then(async ({ recorded }) => {
        // A guest's visit counted a use: their keypad code's window may narrow (done where the
        // entry was recorded: on replicas, every one of them hears the session).
        if (recorded && s.deliveryId === null) await this.o.refreshPins?.(s.homeId);
      }),
    );
  }

  private async keypadEntry(k: KeypadEntry): Promise<void> {
    const { recorded } = await this.record({
      id: `entry-${deviceEventUuid('entry', k.lockId, { at: k.deviceAt, seq: k.seq })}`,
      homeId: k.homeId,
      lockDeviceId: k.lockId,
      method: 'pin',
      principalId: k.principalId,
      slot: k.slot,
      sessionId: null,
    });
    // The use is counted where the entry was recorded, so once however many replicas heard it.
    if (!recorded || k.principalId === null) return;
    const principal = await this.o.store.principals.get(k.principalId);
    if (principal?.role !== 'guest') return;
    await this.countGuestUse(principal, k);
  }

  /**
   * Counts a guest's keypad entry against the grant it was allowed under. With none (the lock
   * could not be reached to close the code's window in time), the owner is told.
   */
  private async countGuestUse(guest: Principal, k: KeypadEntry): Promise<void> {
    const now = this.o.clock.now();
    const home = await this.o.store.homes.getHome(k.homeId);
    const doors = (await this.o.store.homes.listDoors(k.homeId)).filter(
      (d) => d.lockDeviceId === k.lockId,
    );
    const doorIds = new Set(doors.map((d) => d.id));
    const grants = (await this.o.store.guestGrants.listForPrincipal(guest.id)).filter(
      (g) =>
        doorIds.has(g.doorId) &&
        g.revokedAt === null &&
        !isUsedUp(g) &&
        home !== null &&
        scheduleAllows(g.schedule, home.timeZone, now).allowed,
    );
    let counted: string | null = null;
    for (const g of grants) {
      if (await this.o.store.guestGrants.use(g.id)) {
        counted = g.id;
        break;
      }
    }
    if (counted === null) {
      await this.o.audit.append({
        kind: 'keypad.entry-outside-grant',
        actor: SYSTEM,
        subject: `device:${k.lockId}`,
        data: { slot: k.slot, principalId: guest.id },
      });
      this.o.notify(
        k.homeId,
        `${guest.displayName} came in with their keypad code when no grant of theirs allowed it ` +
          '(the lock could not be reached to close the code in time).',
      );
    }
    // A use may have used the grant up: the code's window on the lock narrows now.
    await this.o.refreshPins?.(k.homeId);
  }

  /**
   * Records an entry (`recorded` false when one with its id, or its session's, already was:
   * nothing is written or announced then).
   */
  private async record(input: {
    /** The entry's id when it has one of its own (a device event's); a fresh one otherwise. */
    id?: string;
    homeId: string;
    lockDeviceId: string;
    method: EntryMethod;
    principalId: string | null;
    slot: number | null;
    sessionId: string | null;
    at?: number;
    doorId?: string;
  }): Promise<{ view: EntryView; recorded: boolean }> {
    const doorId =
      input.doorId ??
      (await this.o.store.homes.listDoors(input.homeId)).find(
        (d) => d.lockDeviceId === input.lockDeviceId,
      )?.id ??
      null;
    const entry: Entry = {
      id: input.id ?? `entry-${randomUUID()}`,
      homeId: input.homeId,
      lockDeviceId: input.lockDeviceId,
      doorId,
      at: input.at ?? this.o.clock.now(),
      method: input.method,
      principalId: input.principalId,
      slot: input.slot,
      sessionId: input.sessionId,
    };
    const view = await this.view(entry, new Map(), new Map());
    // A session reports its unlock in every later event: the first one alone is an entry.
    if (!(await this.o.store.entries.record(entry))) return { view, recorded: false };
    this.o.events.publish({ type: 'entry', homeId: entry.homeId, entry: view });
    return { view, recorded: true };
  }

  private async view(
    e: Entry,
    names: Map<string, Principal | null>,
    doors: Map<string, string>,
  ): Promise<EntryView> {
    let principal: Principal | null = null;
    if (e.principalId !== null) {
      if (!names.has(e.principalId))
        names.set(e.principalId, await this.o.store.principals.get(e.principalId));
      principal = names.get(e.principalId) ?? null;
    }
    const placeKey = e.doorId ?? `lock:${e.lockDeviceId}`;
    let doorName = doors.get(placeKey);
    if (doorName === undefined) {
      doorName =
        (e.doorId === null ? null : (await this.o.store.homes.getDoor(e.doorId))?.name) ??
        (await this.o.store.homes.getDevice(e.lockDeviceId))?.name ??
        e.lockDeviceId;
      doors.set(placeKey, doorName);
    }
    const who = principal?.displayName ?? null;
    const role = principal?.role ?? null;
    return {
      id: e.id,
      at: e.at,
      lockId: e.lockDeviceId,
      doorId: e.doorId,
      doorName,
      method: e.method,
      principalId: e.principalId,
      who,
      role,
      slot: e.slot,
      sessionId: e.sessionId,
      summary: summarize(e, doorName, who, role),
    };
  }

  private track(work: Promise<unknown>): Promise<void> {
    const p = work.then(
      () => undefined,
      (err: unknown) => {
        this.o.logger?.warn(
          { err: err instanceof Error ? err.message : String(err) },
          'entry not recorded',
        );
      },
    );
    this.running.add(p);
    void p.finally(() => this.running.delete(p));
    return p;
  }
}

/** One line for people: who, what, how. */
export function summarize(
  e: Pick<Entry, 'method' | 'slot'>,
  doorName: string,
  who: string | null,
  role: string | null,
): string {
  // A courier's name often carries its carrier already ("Sam (ParcelCo)"): the role leads.
  const person =
    who === null
      ? null
      : role === null
        ? who
        : role === 'courier'
          ? `Courier ${who}`
          : `${who} (${ROLE_WORD[role] ?? role})`;
  const slot = e.slot === null ? '' : `, slot ${e.slot}`;
  switch (e.method) {
    case 'app':
      return `${person ?? 'Someone'} opened ${doorName} with the app at the door`;
    case 'remote':
      return `${person ?? 'Someone'} unlocked ${doorName} from the app`;
    case 'pin':
      return person === null
        ? `${doorName} was unlocked with a keypad code Threshold did not set${slot}`
        : `${person} unlocked ${doorName} with their keypad code${slot}`;
    case 'manual':
      return `${doorName} was unlocked by key or thumb-turn (the lock cannot tell who)`;
  }
}
