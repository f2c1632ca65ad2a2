/**
 * The in-memory lock and contact drivers (`src/hub/drivers/memory.ts`) against the same driver
 * contracts as the real ones, so the simulated devices the hub's tests rely on keep the rules
 * the real drivers keep.
 */
import type { Clock } from '../../src/core/clock.ts';
import { MemoryContact, MemoryLock } from '../../src/hub/drivers/memory.ts';
import { describeContactDriverContract } from './contact-contract.ts';
import { describeLockDriverContract } from './lock-contract.ts';

/**
 * Real time, with a switch that holds every newly scheduled call until released: the lock's
 * motor then waits, as a lock that took a command but has not moved yet.
 */
class HoldableClock implements Clock {
  private holding = false;
  private held: (() => void)[] = [];

  now(): number {
    return Date.now();
  }

  schedule(atMs: number, fn: () => void): () => void {
    let cancelled = false;
    let timer: NodeJS.Timeout | undefined;
    const arm = (): void => {
      if (cancelled) return;
      timer = setTimeout(() => fn(), Math.max(0, atMs - Date.now()));
    };
    if (this.holding) this.held.push(arm);
    else arm();
    return () => {
      cancelled = true;
      clearTimeout(timer);
    };
  }

  hold(): void {
    this.holding = true;
  }

  release(): void {
    this.holding = false;
    for (const arm of this.held.splice(0)) arm();
  }
}

describeLockDriverContract('MemoryLock', async (o) => {
  const clock = new HoldableClock();
  const lock = new MemoryLock({
    id: 'lock-1',
    clock,
    motorDelayMs: 30,
    initialBolt: o.bolt ?? 'locked',
    onListenerError: () => undefined,
  });
  if (o.online === false) lock.setAvailable(false);
  return {
    driver: lock,
    device: {
      bolt: () => {
        const bolt = lock.actualBolt();
        if (bolt === 'unknown') throw new Error('the memory lock lost its bolt');
        return bolt;
      },
      turnByHand: async (bolt) => lock.turnByHand(bolt),
      jamNextMove: () => lock.jam(),
      holdMovements: () => clock.hold(),
      releaseMovements: () => clock.release(),
      goOffline: async () => lock.setAvailable(false),
      goOnline: async () => lock.setAvailable(true),
      keypadUnlock: async (slot) => {
        // The memory keypad opens for a code it holds: put one in the slot at the lock first.
        lock.pins?.setLocally(slot, String(700_000 + slot));
        lock.keypadUnlock(slot);
      },
    },
    reportsManual: true,
    holdsConnections: false,
    heldResources: () => 0,
    close: async () => undefined,
  };
});

describeContactDriverContract('MemoryContact', async (o) => {
  const contact = new MemoryContact({
    id: 'door-1',
    clock: new HoldableClock(),
    initialPosition: (o.closed ?? true) ? 'closed' : 'open',
    onListenerError: () => undefined,
  });
  if (o.online === false) contact.setAvailable(false);
  return {
    driver: contact,
    device: {
      open: async () => contact.open(),
      close: async () => contact.close(),
      goOffline: async () => contact.setAvailable(false),
      goOnline: async () => contact.setAvailable(true),
    },
    holdsConnections: false,
    heldResources: () => 0,
    close: async () => undefined,
  };
});
