/**
 * The hub's copy of one lock's offline grant list (src/protocol/grant-list.ts): what the control
 * plane last told the hub about who may come in at that lock, signed, so that the hub can act on
 * it while the control plane is out of reach and check it again after a restart.
 *
 * - A list arrives on the lock's `grants` topic (retained: a reconnection brings the newest at
 *   once). It is taken only if it verifies under the configured key, is for this home and lock,
 *   and has a strictly higher `version` than the one held: an old list replayed (one that still
 *   named a revoked guest) changes nothing, and neither does anything that fails a check (it is
 *   logged with the reason).
 * - The last list taken is kept, signature and all, in `<dataDir>/grants-<lock>.json` (written
 *   aside and renamed, owner-only). At start the file is read and **verified again**: a file
 *   edited on disk, or signed with another key, is refused and ignored.
 * - Its age is the hub's clock minus the list's `issuedAtMs` (never negative: a hub clock behind
 *   the control plane's does not make a list younger than new). A courier unlock needs a list
 *   no older than `maxAgeMs` that names the unlock's grant ({@link GrantBook.courierCheck}).
 * - Listeners hear of every list taken: the keypad's {@link PinBook} re-applies its slots.
 *
 * Without a key (none configured) the book takes nothing and every courier check fails with
 * `grants.none`.
 */
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import type { Clock } from '../core/clock.ts';
import type { DeviceLogger } from '../devices/device-connection.ts';
import { readGrantList } from '../protocol/grant-list-check.ts';
import {
  type GrantListMessage,
  type ListedDeliveryMessage,
  type ListedPinMessage,
  type SignedGrantListMessage,
} from '../protocol/grant-list.ts';

/** Settings of a {@link GrantBook}. */
export interface GrantBookOptions {
  readonly homeId: string;
  readonly lockId: string;
  /** The control plane's grant-list key (raw Ed25519, base64url); null: take no list at all. */
  readonly publicKey: string | null;
  /** A list older than this lets no courier in, ms. */
  readonly maxAgeMs: number;
  readonly clock: Clock;
  /** Where the last list taken is kept across restarts; null keeps it in memory only. */
  readonly statePath: string | null;
  readonly logger: DeviceLogger;
}

/** Why a courier unlock is refused: the reply's error code. */
export type GrantRefusalCode = 'grants.none' | 'grants.stale' | 'grants.not-listed';

/** What {@link GrantBook.courierCheck} found. */
export type CourierCheck =
  | { readonly ok: true; readonly delivery: ListedDeliveryMessage }
  | { readonly ok: false; readonly code: GrantRefusalCode; readonly message: string };

/** What {@link GrantBook.take} did with a payload. */
export type GrantTake =
  | { readonly taken: true; readonly version: number }
  | { readonly taken: false; readonly reason: string };

interface GrantWaiter {
  readonly grantId: string;
  readonly done: (found: boolean) => void;
}

/** See the module comment. */
export class GrantBook {
  private readonly o: GrantBookOptions;
  private signed: SignedGrantListMessage | null = null;
  private readonly listeners = new Set<(list: GrantListMessage) => void>();
  private readonly waiters = new Set<GrantWaiter>();
  private stopped = false;

  /** Loads (and verifies again) the list kept from a previous run, if any. */
  constructor(options: GrantBookOptions) {
    this.o = options;
    if (options.statePath !== null) this.load(options.statePath);
  }

  /** Whether a key is configured, so that a list can be taken at all. */
  hasKey(): boolean {
    return this.o.publicKey !== null;
  }

  /**
   * Checks a `grants` payload (bytes as received, or parsed JSON) and takes it if it verifies
   * and is newer than the list held; then keeps it on disk and tells the listeners. Never throws.
   */
  take(payload: unknown): GrantTake {
    const { lockId } = this.o;
    // An empty retained payload is how MQTT clears a retained message: nothing to read.
    if (payload instanceof Uint8Array && payload.byteLength === 0)
      return { taken: false, reason: 'empty' };
    if (this.o.publicKey === null) {
      this.o.logger.debug({ lockId }, 'grant list ignored: no grant key configured');
      return { taken: false, reason: 'no grant key configured' };
    }
    const reading = readGrantList(payload, {
      homeId: this.o.homeId,
      lockId,
      publicKey: this.o.publicKey,
    });
    if (!reading.ok) {
      this.o.logger.warn(
        { lockId, reason: reading.reason },
        'grant list refused: kept the last one',
      );
      return { taken: false, reason: reading.reason };
    }
    const { list } = reading;
    const held = this.signed?.list.version ?? null;
    if (held !== null && list.version <= held) {
      // The retained list again at every reconnection: the same version, nothing to say.
      if (list.version < held)
        this.o.logger.warn(
          { lockId, version: list.version, held },
          'grant list older than the one held: ignored',
        );
      return { taken: false, reason: `version ${list.version} is not newer than ${held}` };
    }
    const value = (
      payload instanceof Uint8Array ? JSON.parse(Buffer.from(payload).toString('utf8')) : payload
    ) as SignedGrantListMessage;
    this.signed = { list, sig: value.sig };
    this.save();
    const now = this.o.clock.now();
    // Signed and accepted all the same (it is the control plane's word), but its age cannot be
    // trusted to the minute: say so, since freshness is judged by this hub's clock.
    if (list.issuedAtMs > now + 60_000)
      this.o.logger.warn(
        { lockId, issuedAtMs: list.issuedAtMs, now },
        "grant list issued in the hub's future: the clocks disagree",
      );
    this.o.logger.info(
      { lockId, version: list.version, deliveries: list.deliveries.length, pins: list.pins.length },
      'grant list taken',
    );
    this.tell(list);
    return { taken: true, version: list.version };
  }

  /** The list held (verified), or null. */
  current(): GrantListMessage | null {
    return this.signed?.list ?? null;
  }

  /** How old the list held is at `now`, ms (never negative); null without a list. */
  ageMs(now: number): number | null {
    const list = this.current();
    return list === null ? null : Math.max(0, now - list.issuedAtMs);
  }

  /** Whether a list is held and is at most `maxAgeMs` old at `now`. */
  isFresh(now: number): boolean {
    const age = this.ageMs(now);
    return age !== null && age <= this.o.maxAgeMs;
  }

  /** The delivery the list held books under `grantId`, or null. */
  delivery(grantId: string): ListedDeliveryMessage | null {
    return this.current()?.deliveries.find((d) => d.grantId === grantId) ?? null;
  }

  /** The keypad slots of the list held (none without a list). */
  pins(): readonly ListedPinMessage[] {
    return this.current()?.pins ?? [];
  }

  /**
   * Whether a courier unlock under `grantId` may go ahead at `now`: a key, a list, fresh, that
   * names the grant among its deliveries. The message is plain and holds no secret (it ends up
   * in the reply, the hub's log and the control plane's).
   */
  courierCheck(grantId: string | null, now: number): CourierCheck {
    if (this.o.publicKey === null)
      return refusal(
        'grants.none',
        'the hub has no grant key configured, so it lets no courier in',
      );
    const list = this.current();
    if (list === null)
      return refusal('grants.none', 'the hub has received no grant list from the control plane');
    const age = Math.max(0, now - list.issuedAtMs);
    if (age > this.o.maxAgeMs)
      return refusal(
        'grants.stale',
        `grant list ${seconds(age)} s old (bound ${seconds(this.o.maxAgeMs)} s)`,
      );
    if (grantId === null) return refusal('grants.not-listed', 'the unlock names no grant');
    const delivery = this.delivery(grantId);
    if (delivery === null)
      return refusal(
        'grants.not-listed',
        `grant ${grantId} is not in the grant list (version ${list.version})`,
      );
    return { ok: true, delivery };
  }

  /**
   * Calls `listener` with every list taken from now on. Returns the function that removes it.
   */
  onList(listener: (list: GrantListMessage) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  /**
   * Resolves true as soon as the list held names `grantId` among its deliveries (at once if it
   * already does), false after `timeoutMs` or when the book stops. The control plane may publish
   * the list that books a delivery a moment after the unlock command that needs it.
   */
  waitForGrant(grantId: string, timeoutMs: number): Promise<boolean> {
    if (this.delivery(grantId) !== null) return Promise.resolve(true);
    if (this.stopped || this.o.publicKey === null) return Promise.resolve(false);
    return new Promise((resolve) => {
      const waiter: GrantWaiter = {
        grantId,
        done: (found) => {
          cancel();
          this.waiters.delete(waiter);
          resolve(found);
        },
      };
      const cancel = this.o.clock.schedule(this.o.clock.now() + timeoutMs, () =>
        waiter.done(false),
      );
      this.waiters.add(waiter);
    });
  }

  /** Ends every wait (false) and forgets the listeners. The list on disk stays. */
  stop(): void {
    this.stopped = true;
    for (const w of [...this.waiters]) w.done(false);
    this.listeners.clear();
  }

  private tell(list: GrantListMessage): void {
    for (const w of [...this.waiters]) if (this.delivery(w.grantId) !== null) w.done(true);
    for (const listener of [...this.listeners]) {
      try {
        listener(list);
      } catch (err) {
        this.o.logger.error(
          { lockId: this.o.lockId, err: err instanceof Error ? err.message : String(err) },
          'a grant list listener failed',
        );
      }
    }
  }

  private load(path: string): void {
    if (!existsSync(path)) return;
    const { lockId } = this.o;
    let value: unknown;
    try {
      value = JSON.parse(readFileSync(path, 'utf8'));
    } catch (err) {
      this.o.logger.error(
        { lockId, path, err: err instanceof Error ? err.message : String(err) },
        'kept grant list unreadable: ignored (waiting for the control plane to send one)',
      );
      return;
    }
    if (this.o.publicKey === null) return;
    const reading = readGrantList(value, {
      homeId: this.o.homeId,
      lockId,
      publicKey: this.o.publicKey,
    });
    if (!reading.ok) {
      // Edited on disk, or from another control plane: nothing in it can be trusted.
      this.o.logger.error(
        { lockId, path, reason: reading.reason },
        'kept grant list refused: ignored (waiting for the control plane to send one)',
      );
      return;
    }
    this.signed = { list: reading.list, sig: (value as SignedGrantListMessage).sig };
  }

  private save(): void {
    const path = this.o.statePath;
    if (path === null || this.signed === null) return;
    const aside = `${path}.tmp`;
    try {
      // A leftover from a crash may have other permissions; a new file gets 0600.
      rmSync(aside, { force: true });
      // Written aside and renamed, so a crash never leaves half a file.
      writeFileSync(aside, `${JSON.stringify(this.signed)}\n`, { mode: 0o600 });
      renameSync(aside, path);
    } catch (err) {
      // The list is taken all the same: it holds until a restart, as any list in memory.
      this.o.logger.error(
        { lockId: this.o.lockId, path, err: err instanceof Error ? err.message : String(err) },
        'grant list could not be kept on disk',
      );
    }
  }
}

function refusal(code: GrantRefusalCode, message: string): CourierCheck {
  return { ok: false, code, message };
}

/** Whole seconds, rounded up: "900 s" is never shown for 900.4 s over a 900 s bound. */
function seconds(ms: number): number {
  return Math.ceil(ms / 1_000);
}
