/**
 * The hub's local log: what it did and saw on its own (relocks, dead-man alarms, cut-offs, facts
 * observed while cut off), kept in an append-only JSON-lines file, each line hash-chained to the
 * one before, and sent upstream as `hub.*` events once the control plane can hear them.
 *
 * Two kinds of line, one chain:
 * - `fact`: something that happened, with the hub's time of it;
 * - `sent`: the broker acknowledged the event carrying fact `fact` (QoS 1 PUBACK).
 *
 * A fact is unsent until a `sent` line names it, so after a restart the hub sends exactly the
 * facts that were never acknowledged, in order. Nothing is ever rewritten: marking a fact sent
 * appends a line. If the hub dies between the acknowledgement and writing its `sent` line the
 * fact is sent again (at least once; the audit entry then appears twice, with the same `hubSeq`).
 *
 * Each line's `hash` is SHA-256 over the previous line's hash and the canonical JSON of the line
 * without `hash`; the first line's previous hash is 64 zeros. Changing, removing or reordering
 * a line breaks the chain at that line ({@link verifyHubLog}). The chain proves the file was
 * not edited line by line; someone who can rewrite the whole file can rewrite the whole chain —
 * what settles it is the control plane's copy, which each sent fact reaches signed with the
 * lock's device key.
 */
import { createHash } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fsyncSync,
  openSync,
  readFileSync,
  renameSync,
  writeSync,
} from 'node:fs';
import type { Clock } from '../core/clock.ts';
import { canonicalJson } from '../protocol/device-auth.ts';
import type { DeviceEventNameValue } from '../protocol/device-messages.ts';

/** The names of events that come from the hub's log. */
export type HubEventName = Extract<DeviceEventNameValue, `hub.${string}`>;

/** A fact as the hub records it. */
export interface HubFact {
  readonly name: HubEventName;
  /** The device whose link carries it upstream (the lock of the door it concerns). */
  readonly deviceId: string;
  /** The access session it concerns, or null. */
  readonly sessionId: string | null;
  /** Why, in a few words (at most {@link MAX_WHY} characters; longer is cut). */
  readonly why: string;
}

/** A fact line of the log. */
export interface FactEntry extends HubFact {
  readonly type: 'fact';
  /** Line number, from 1. */
  readonly n: number;
  /** The hub's clock when it happened, ms. */
  readonly at: number;
  readonly prev: string;
  readonly hash: string;
}

/** A line saying the fact on line `fact` reached the broker. */
export interface SentEntry {
  readonly type: 'sent';
  readonly n: number;
  readonly at: number;
  readonly fact: number;
  readonly prev: string;
  readonly hash: string;
}

/** Any line of the log. */
export type HubLogEntry = FactEntry | SentEntry;

/** Longest `why` kept, characters: the event's `detail` must stay within 256. */
export const MAX_WHY = 120;

const GENESIS = '0'.repeat(64);

function hashOf(line: Omit<FactEntry, 'hash'> | Omit<SentEntry, 'hash'>): string {
  return createHash('sha256')
    .update(`${line.prev}\n${canonicalJson(line)}`)
    .digest('hex');
}

/** What {@link verifyHubLog} found. */
export type HubLogVerdict =
  | { readonly ok: true; readonly entries: readonly HubLogEntry[] }
  | { readonly ok: false; readonly line: number; readonly reason: string };

/** Reads and checks a whole log: every line parses, numbers follow, and the chain holds. */
export function verifyHubLog(text: string): HubLogVerdict {
  const entries: HubLogEntry[] = [];
  let prev = GENESIS;
  const lines = text.split('\n');
  // A file always ends with a newline; a last line without one was cut by a crash mid-write.
  if (lines[lines.length - 1] === '') lines.pop();
  const facts = new Set<number>();
  for (let i = 0; i < lines.length; i++) {
    const line = i + 1;
    let value: unknown;
    try {
      value = JSON.parse(lines[i]!);
    } catch {
      return { ok: false, line, reason: 'not JSON' };
    }
    if (!isEntry(value)) return { ok: false, line, reason: 'not a log line' };
    if (value.n !== line) return { ok: false, line, reason: `numbered ${value.n}` };
    if (value.prev !== prev) return { ok: false, line, reason: 'does not follow the line before' };
    const { hash, ...rest } = value;
    if (hashOf(rest) !== hash) return { ok: false, line, reason: 'hash does not match' };
    if (value.type === 'sent' && !facts.has(value.fact))
      return { ok: false, line, reason: `marks line ${value.fact} sent, which is no fact` };
    if (value.type === 'fact') facts.add(value.n);
    entries.push(value);
    prev = hash;
  }
  return { ok: true, entries };
}

function isEntry(v: unknown): v is HubLogEntry {
  if (typeof v !== 'object' || v === null) return false;
  const o = v as Record<string, unknown>;
  const common =
    Number.isSafeInteger(o.n) &&
    Number.isSafeInteger(o.at) &&
    typeof o.prev === 'string' &&
    typeof o.hash === 'string';
  if (!common) return false;
  if (o.type === 'sent') return Number.isSafeInteger(o.fact) && Object.keys(o).length === 6;
  return (
    o.type === 'fact' &&
    typeof o.name === 'string' &&
    o.name.startsWith('hub.') &&
    typeof o.deviceId === 'string' &&
    (o.sessionId === null || typeof o.sessionId === 'string') &&
    typeof o.why === 'string' &&
    Object.keys(o).length === 9
  );
}

/** The `detail` of the event that carries a fact upstream (compact JSON, under 256 characters). */
export function factDetail(fact: FactEntry): string {
  return JSON.stringify({
    hubAt: fact.at,
    hubSeq: fact.n,
    ...(fact.sessionId === null ? {} : { session: fact.sessionId }),
    why: fact.why,
  });
}

/** What {@link HubLog.open} did with the file it found. */
export interface HubLogOpening {
  readonly log: HubLog;
  /**
   * Set when the file did not verify: it was moved to `movedTo` and a new log begun, whose first
   * fact says so (the broken file is kept for whoever investigates).
   */
  readonly broken: {
    readonly line: number;
    readonly reason: string;
    readonly movedTo: string;
  } | null;
}

/** See the module comment. */
export class HubLog {
  private lastHash = GENESIS;
  private nextN = 1;
  private readonly pending: FactEntry[] = [];

  private constructor(
    private readonly path: string,
    private readonly clock: Clock,
  ) {}

  /**
   * Opens the log at `path` (created when missing). A file that does not verify is never
   * appended to: it is moved aside (`<path>.broken-<time>`) and a new log begun.
   */
  static open(path: string, clock: Clock, deviceId: string): HubLogOpening {
    const log = new HubLog(path, clock);
    if (!existsSync(path)) return { log, broken: null };
    const verdict = verifyHubLog(readFileSync(path, 'utf8'));
    if (!verdict.ok) {
      const movedTo = `${path}.broken-${clock.now()}`;
      renameSync(path, movedTo);
      log.append({
        name: 'hub.observed',
        deviceId,
        sessionId: null,
        why: `local log broken at line ${verdict.line} (${verdict.reason}); kept as ${movedTo}`,
      });
      return { log, broken: { line: verdict.line, reason: verdict.reason, movedTo } };
    }
    const sent = new Set<number>();
    for (const e of verdict.entries) if (e.type === 'sent') sent.add(e.fact);
    for (const e of verdict.entries) {
      if (e.type === 'fact' && !sent.has(e.n)) log.pending.push(e);
      log.lastHash = e.hash;
      log.nextN = e.n + 1;
    }
    return { log, broken: null };
  }

  /** Records a fact (durably: the line is on disk when this returns). */
  append(fact: HubFact): FactEntry {
    const body: Omit<FactEntry, 'hash'> = {
      type: 'fact',
      n: this.nextN,
      at: this.clock.now(),
      name: fact.name,
      deviceId: fact.deviceId,
      sessionId: fact.sessionId,
      why: fact.why.slice(0, MAX_WHY),
      prev: this.lastHash,
    };
    const entry: FactEntry = { ...body, hash: hashOf(body) };
    this.write(entry);
    this.pending.push(entry);
    return entry;
  }

  /** Records that the fact on line `n` reached the broker; it is not sent again. */
  markSent(n: number): void {
    const i = this.pending.findIndex((f) => f.n === n);
    if (i < 0) return;
    const body: Omit<SentEntry, 'hash'> = {
      type: 'sent',
      n: this.nextN,
      at: this.clock.now(),
      fact: n,
      prev: this.lastHash,
    };
    this.write({ ...body, hash: hashOf(body) });
    this.pending.splice(i, 1);
  }

  /** The facts not yet acknowledged, oldest first. */
  unsent(): readonly FactEntry[] {
    return [...this.pending];
  }

  private write(entry: HubLogEntry): void {
    const fd = openSync(this.path, 'a', 0o600);
    try {
      writeSync(fd, `${JSON.stringify(entry)}\n`);
      // An alarm the hub raised must survive a power cut right after it.
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    this.lastHash = entry.hash;
    this.nextN = entry.n + 1;
  }
}

/**
 * Sends a log's unsent facts upstream, one at a time, in order: each is marked sent only when
 * `send` resolves true (the broker acknowledged it); on false it stops and waits for the next
 * {@link HubLogPump.kick} (the link came back, a new fact arrived).
 */
export class HubLogPump {
  private running = false;
  private again = false;
  private stopped = false;

  constructor(
    private readonly log: HubLog,
    private readonly send: (fact: FactEntry) => Promise<boolean>,
    private readonly onError: (err: unknown) => void = () => {},
  ) {}

  /** Tries to send what is unsent; returns when this round is over. */
  async kick(): Promise<void> {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    try {
      do {
        this.again = false;
        for (const fact of this.log.unsent()) {
          if (this.stopped) return;
          let ok = false;
          try {
            ok = await this.send(fact);
          } catch (err) {
            this.onError(err);
          }
          if (!ok) break;
          this.log.markSent(fact.n);
        }
      } while (this.again && !this.stopped);
    } finally {
      this.running = false;
    }
  }

  /** No more sending. */
  stop(): void {
    this.stopped = true;
  }
}
