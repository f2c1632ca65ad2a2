/**
 * Test support for the keypad PIN tests on a fake clock: a clock that can say when its next
 * timer is due, and the gateway's command path to a simulated lock, in memory.
 */
import { FakeClock } from '../src/core/clock.ts';
import type { MemoryLink } from '../src/devices/index.ts';
import { verifyMac } from '../src/protocol/device-auth.ts';
import type { CommandActionName } from '../src/protocol/device-messages.ts';
import type { CommandOptions, CommandOutcome } from '../src/server/device-gateway.ts';
import type { PinGateway } from '../src/server/pin-sync.ts';

/** A fake clock that can say when its next timer is due, so a test can run to it. */
export class SteppingClock extends FakeClock {
  private readonly dues = new Set<{ readonly at: number }>();

  override schedule(atMs: number, fn: () => void): () => void {
    const due = { at: Math.max(atMs, this.now()) };
    this.dues.add(due);
    const cancel = super.schedule(atMs, () => {
      this.dues.delete(due);
      fn();
    });
    return () => {
      this.dues.delete(due);
      cancel();
    };
  }

  /** When the next timer is due, or null if none is. */
  nextDue(): number | null {
    let next: number | null = null;
    for (const d of this.dues) if (next === null || d.at < next) next = d.at;
    return next;
  }
}

/** One command the gateway was asked to send. */
export interface SentCommand {
  readonly at: number;
  readonly action: CommandActionName;
  readonly slot: number | null;
  /** Whether it reached the lock (the lock was reachable). */
  readonly delivered: boolean;
}

/**
 * The gateway's command path, in memory: each command is built and signed for the lock's key,
 * goes through the lock's real endpoint (gate, behaviour, signed reply), and the reply's MAC is
 * checked as the gateway checks it. `reachable = false` plays a lock that is offline.
 */
export class LinkGateway implements PinGateway {
  readonly sent: SentCommand[] = [];
  reachable = true;
  private gate: Promise<void> | null = null;

  constructor(
    private readonly link: MemoryLink,
    private readonly clock: FakeClock,
    private readonly key: Uint8Array,
  ) {}

  async command(
    _deviceId: string,
    action: CommandActionName,
    options: CommandOptions = {},
  ): Promise<CommandOutcome> {
    const command = this.link.command({ action, ...options.pin });
    const record: SentCommand = {
      at: this.clock.now(),
      action,
      slot: options.pin?.slot ?? null,
      delivered: false,
    };
    this.sent.push(record);
    if (this.gate !== null) await this.gate;
    if (!this.reachable) return { status: 'timeout', commandId: command.id };
    this.sent[this.sent.indexOf(record)] = { ...record, delivered: true };
    const reply = await this.link.deliver(command);
    if (reply === null || !verifyMac(this.key, this.link.topic('reply'), reply))
      return { status: 'timeout', commandId: command.id };
    return { status: reply.status, reply, commandId: command.id };
  }

  /** Holds every command on its way until the returned function is called. */
  hold(): () => void {
    let release = (): void => {};
    this.gate = new Promise<void>((resolve) => (release = resolve));
    return () => {
      this.gate = null;
      release();
    };
  }

  /** When each write of this kind was sent. */
  writes(action: 'pin.set' | 'pin.clear' | 'pin.window'): number[] {
    return this.sent.filter((s) => s.action === action).map((s) => s.at);
  }

  /** When the last write (`pin.set`, `pin.window`, `pin.clear`) that reached the lock was sent. */
  lastDeliveredWrite(): number | null {
    const writes = this.sent.filter((s) => s.delivered && s.action !== 'pin.list');
    return writes.at(-1)?.at ?? null;
  }
}

/** Lets promise chains and SQLite writes run out, without moving the clock. */
export async function flush(): Promise<void> {
  for (let i = 0; i < 30; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}
