import { describe, expect, it } from 'vitest';
import { ControllerLease, SharedController } from './shared-controller.ts';

/** A promise settled from outside: an open or a close that takes as long as the test says. */
function deferred<T>(): {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (err: unknown) => void;
} {
  let resolve!: (value: T) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** The i-th open or close asked for; throws (rather than hang) when it was not asked for. */
function nth<T>(list: readonly T[], i: number): T {
  const item = list[i];
  if (item === undefined) throw new Error(`no call ${i + 1} was made`);
  return item;
}

/** Lets every settled promise's callbacks run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

/**
 * A controller whose opens and closes are recorded and finish when the test says: `opens[i]`
 * settles the i-th open, `closes[i]` the i-th close.
 */
function recorded() {
  const log: string[] = [];
  const opens: ReturnType<typeof deferred<string>>[] = [];
  const closes: ReturnType<typeof deferred<void>>[] = [];
  const controller = new SharedController<string>({
    open: () => {
      log.push(`open ${opens.length + 1}`);
      const d = deferred<string>();
      opens.push(d);
      return d.promise;
    },
    close: (opened) => {
      log.push(`close ${opened}`);
      const d = deferred<void>();
      closes.push(d);
      return d.promise;
    },
  });
  return { controller, log, opens, closes };
}

describe('SharedController', () => {
  it('opens once for two users, and closes once when both released', async () => {
    const { controller, log, opens, closes } = recorded();
    const a = controller.acquire();
    const b = controller.acquire();
    await settle();
    expect(log).toEqual(['open 1']);
    expect(controller.current).toBeNull();
    nth(opens, 0).resolve('stick');
    expect(await a).toBe('stick');
    expect(await b).toBe('stick');
    expect(controller.current).toBe('stick');
    expect(controller.users).toBe(2);

    // A third user while open: no second open.
    expect(await controller.acquire()).toBe('stick');
    expect(log).toEqual(['open 1']);

    await controller.release();
    await controller.release();
    expect(log).toEqual(['open 1']);
    expect(controller.current).toBe('stick');
    const last = controller.release();
    await settle();
    expect(log).toEqual(['open 1', 'close stick']);
    expect(controller.current).toBeNull();
    nth(closes, 0).resolve();
    await last;
    expect(controller.users).toBe(0);

    // More releases than acquires change nothing.
    await controller.release();
    expect(log).toEqual(['open 1', 'close stick']);
    expect(controller.users).toBe(0);
  });

  it('opens again only once the close is done, when acquired while closing', async () => {
    const { controller, log, opens, closes } = recorded();
    const first = controller.acquire();
    await settle();
    nth(opens, 0).resolve('stick 1');
    await first;
    const closing = controller.release();
    await settle();
    expect(log).toEqual(['open 1', 'close stick 1']);

    const again = controller.acquire();
    const also = controller.acquire();
    await settle();
    // Two drivers on one port would fight over it: nothing opens until the close is done.
    expect(log).toEqual(['open 1', 'close stick 1']);
    nth(closes, 0).resolve();
    await closing;
    await settle();
    expect(log).toEqual(['open 1', 'close stick 1', 'open 2']);
    nth(opens, 1).resolve('stick 2');
    expect(await again).toBe('stick 2');
    expect(await also).toBe('stick 2');
    expect(controller.current).toBe('stick 2');
    expect(controller.users).toBe(2);
  });

  it('rejects every waiting user when the open fails, counts none, and tries again next time', async () => {
    const { controller, log, opens } = recorded();
    const a = controller.acquire();
    const b = controller.acquire();
    await settle();
    nth(opens, 0).reject(new Error('no such port'));
    await expect(a).rejects.toThrow('no such port');
    await expect(b).rejects.toThrow('no such port');
    expect(controller.users).toBe(0);
    expect(controller.current).toBeNull();
    // Nothing is open, so a release (a driver stopping after all) closes nothing.
    await controller.release();
    expect(log).toEqual(['open 1']);

    const c = controller.acquire();
    await settle();
    expect(log).toEqual(['open 1', 'open 2']);
    // A library that rejects with something else than an Error still gives an Error.
    nth(opens, 1).reject('busy');
    await expect(c).rejects.toThrow(new Error('busy'));

    const d = controller.acquire();
    await settle();
    nth(opens, 2).resolve('stick');
    expect(await d).toBe('stick');
    expect(controller.users).toBe(1);
  });

  it('closes a controller still opening when its last user leaves, once it is open', async () => {
    const { controller, log, opens, closes } = recorded();
    const a = controller.acquire();
    await settle();
    const released = controller.release();
    nth(opens, 0).resolve('stick');
    // The user that left still gets what was opened; nobody keeps it open.
    expect(await a).toBe('stick');
    await settle();
    expect(log).toEqual(['open 1', 'close stick']);
    expect(controller.current).toBeNull();
    nth(closes, 0).resolve();
    await released;
  });

  it('opens again after a close that failed', async () => {
    const { controller, log, opens, closes } = recorded();
    const a = controller.acquire();
    await settle();
    nth(opens, 0).resolve('stick');
    await a;
    const released = controller.release();
    await settle();
    nth(closes, 0).reject(new Error('port hung'));
    await expect(released).rejects.toThrow('port hung');

    const b = controller.acquire();
    await settle();
    expect(log).toEqual(['open 1', 'close stick', 'open 2']);
    nth(opens, 1).resolve('stick again');
    expect(await b).toBe('stick again');
  });
});

describe('ControllerLease', () => {
  it('takes one share and gives it back once', async () => {
    const { controller, log, opens, closes } = recorded();
    const lease = new ControllerLease(controller);
    const taking = lease.take(() => false);
    await settle();
    nth(opens, 0).resolve('stick');
    expect(await taking).toBe('stick');
    expect(lease.taken).toBe(true);
    await expect(lease.take(() => false)).rejects.toThrow(/held already/);
    expect(controller.users).toBe(1);

    const back = lease.giveBack();
    await settle();
    nth(closes, 0).resolve();
    await back;
    await lease.giveBack();
    expect(lease.taken).toBe(false);
    expect(controller.users).toBe(0);
    expect(log).toEqual(['open 1', 'close stick']);
  });

  it('gives the share back at once when its driver stopped while the controller opened', async () => {
    const { controller, log, opens, closes } = recorded();
    const lease = new ControllerLease(controller);
    let stopped = false;
    const taking = lease.take(() => stopped);
    await settle();
    stopped = true;
    nth(opens, 0).resolve('stick');
    await settle();
    nth(closes, 0).resolve();
    expect(await taking).toBeNull();
    expect(lease.taken).toBe(false);
    expect(controller.users).toBe(0);
    expect(log).toEqual(['open 1', 'close stick']);
  });

  it('holds nothing when the controller cannot be opened', async () => {
    const { controller, opens } = recorded();
    const lease = new ControllerLease(controller);
    const taking = lease.take(() => false);
    await settle();
    nth(opens, 0).reject(new Error('no such port'));
    await expect(taking).rejects.toThrow('no such port');
    expect(lease.taken).toBe(false);
    expect(controller.users).toBe(0);
  });
});
