/**
 * A replica's round reads the devices' table only when devices were added since it last did
 * (the count moved), where it once read the whole table every fifth round; and the oldest live
 * replica leads, the next one being told when it takes over. On a real SQLite store, with the
 * real clock and short rounds; the orchestrator is a stand-in with no sessions.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { systemClock } from '../protocol/system-clock.ts';
import { HOME, openTestStore, seedHome, type TestStore } from '../store/test-store.ts';
import { ReplicaCoordinator } from './replicas.ts';

const RENEW_MS = 20;
/** Long beside a round, so a slow machine never loses the lease in this test. */
const LEASE_MS = 5_000;
/** Rounds between two looks at the devices (replicas.ts). */
const REFRESH_EVERY_ROUNDS = 5;

async function until(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('a replica looks for new devices', () => {
  let t: TestStore;
  let coordinator: ReplicaCoordinator | null = null;
  beforeEach(async () => {
    t = await openTestStore('sqlite');
    await seedHome(t.store);
  });
  afterEach(async () => {
    await coordinator?.stop();
    await t.cleanup();
  });

  it('reads them all only when one was added since it last did', async () => {
    const reads: string[][] = [];
    let rounds = 0;
    const homes = t.store.homes;
    coordinator = new ReplicaCoordinator({
      id: 'replica-a',
      leaseMs: LEASE_MS,
      renewEveryMs: RENEW_MS,
      clock: systemClock,
      // Counts rounds by the calls each makes: the devices are counted every fifth round.
      store: {
        replicas: t.store.replicas,
        sessions: t.store.sessions,
        homes: Object.assign(Object.create(homes) as typeof homes, {
          countDevices: () => {
            rounds += REFRESH_EVERY_ROUNDS;
            return homes.countDevices();
          },
        }),
      },
      orchestrator: {
        relinquishAll: () => 0,
        ownedSessionIds: () => [],
        resume: () => Promise.resolve(),
      },
      refreshDevices: async () => {
        reads.push((await homes.listDevices()).map((d) => d.id).sort());
      },
    });
    await coordinator.start();
    // The first round reads them (what the replica registered at start may be older).
    expect(reads).toEqual([['camera-1', 'lock-1', 'sensor-1']]);

    // Several looks later, nothing was added: not read again.
    await until(() => rounds >= 4 * REFRESH_EVERY_ROUNDS, 'four looks at the devices');
    expect(reads).toHaveLength(1);

    // Another replica adds a camera: the next look reads them, once.
    await homes.createDevice({ id: 'camera-2', homeId: HOME.id, kind: 'camera', name: 'Back' });
    await until(() => reads.length === 2, 'the devices read again');
    expect(reads[1]).toEqual(['camera-1', 'camera-2', 'lock-1', 'sensor-1']);
    const after = rounds;
    await until(() => rounds >= after + 3 * REFRESH_EVERY_ROUNDS, 'three more looks');
    expect(reads).toHaveLength(2);
  });
});

describe('the leader', () => {
  let t: TestStore;
  const running: ReplicaCoordinator[] = [];
  beforeEach(async () => {
    t = await openTestStore('sqlite');
    await seedHome(t.store);
  });
  afterEach(async () => {
    for (const c of running) await c.stop();
    running.length = 0;
    await t.cleanup();
  });

  it('is the oldest live replica; the next one is told, once, when it becomes the leader', async () => {
    const replica = (id: string): ReplicaCoordinator => {
      const c = new ReplicaCoordinator({
        id,
        leaseMs: LEASE_MS,
        renewEveryMs: RENEW_MS,
        clock: systemClock,
        store: t.store,
        orchestrator: {
          relinquishAll: () => 0,
          ownedSessionIds: () => [],
          resume: () => Promise.resolve(),
        },
      });
      running.push(c);
      return c;
    };
    const a = replica('replica-a');
    const b = replica('replica-b');
    const told: string[] = [];
    a.onBecameLeader(() => told.push('a'));
    b.onBecameLeader(() => told.push('b'));
    await a.start();
    await b.start();
    expect([a.isLeader(), b.isLeader()]).toEqual([true, false]);
    expect(told).toEqual(['a']);
    // What a new leader looks back over: the whole time the replicas can be without one.
    expect(b.leaderGapMs).toBe(LEASE_MS + 2 * RENEW_MS);

    // A stops (its lease ends at once): B leads from its next round, and is told once.
    await a.stop();
    await until(() => b.isLeader(), 'B leads');
    // Ten rounds later it still leads, and was told only when it began to.
    await new Promise((r) => setTimeout(r, 10 * RENEW_MS));
    expect(b.isLeader()).toBe(true);
    expect(told).toEqual(['a', 'b']);
  });
});
