/**
 * The control plane stops in the middle of a delivery, with the door unlocked. When it comes
 * back it cannot honestly resume the session (its watchdog's memory is gone), so it closes it
 * safely: the session is aborted with `session.interrupted`, the lock is asked to lock until
 * its own report says it did, and all of it is in the audit log, which verifies.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SimHome } from '../src/devices/index.ts';
import { systemClock } from '../src/protocol/system-clock.ts';
import { verifyEd25519 } from '../src/server/keys.ts';
import { createDemoDelivery, DEMO_DOORSTEP, seedDemo } from '../src/server/seed.ts';
import { startSystem, systemStoreOptions, type RunningSystem } from '../src/server/system.ts';
import { testDatabaseOptions } from '../src/store/test-postgres.ts';
import type { AccessSession } from '../src/core/access-session.ts';
import { openStore } from '../src/store/index.ts';
import { freePort } from '../src/harness/free-port.ts';

async function until(pred: () => boolean | Promise<boolean>, timeoutMs: number, what: string) {
  const end = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

describe('restart in the middle of a session', () => {
  it('given an open door, when the server stops and starts again, then the session is closed safely and the door locked', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'threshold-restart-'));
    cleanups.push(() => Promise.resolve(rmSync(dir, { recursive: true, force: true })));
    const mqttPort = await freePort();

    // Given: a delivery in progress, the door unlocked and open for the courier.
    const database = await testDatabaseOptions(dir);
    let sys: RunningSystem = await startSystem({ dataDir: dir, port: 0, mqttPort, ...database });
    const first = sys;
    cleanups.push(() => first.close());
    const creds = await seedDemo(sys, dir);
    const home = new SimHome({
      brokerUrl: `mqtt://127.0.0.1:${mqttPort}`,
      homeId: creds.homeId,
      devices: {
        lock: { id: creds.devices.lock.id, key: creds.devices.lock.secret },
        doorSensor: { id: creds.devices.doorSensor.id, key: creds.devices.doorSensor.secret },
        camera: { id: creds.devices.camera.id, key: creds.devices.camera.secret },
      },
      // No auto-relock by default: only the server's command can lock the door here.
      options: { lock: { autoRelockMs: null } },
      clock: systemClock,
    });
    await home.start();
    cleanups.push(() => home.stop());
    const ids = [creds.devices.lock.id, creds.devices.doorSensor.id, creds.devices.camera.id];
    await until(
      () => ids.every((id) => sys.gateway.liveStatus(id)?.state != null),
      10_000,
      'every device reported',
    );
    const now = Date.now();
    const delivery = await createDemoDelivery(
      sys,
      creds.homeId,
      creds.doorId,
      creds.carrier.id,
      creds.courier.id,
      now - 60_000,
      3_600_000,
      600_000,
    );
    const courier = (await sys.store.principals.get(creds.courier.id))!;
    const started = await sys.orchestrator.requestAccess(courier, delivery.id, DEMO_DOORSTEP);
    expect(started.ok).toBe(true);
    const sessionId = started.ok ? started.value.id : '';
    await until(
      async () => (await sys.orchestrator.view(sessionId))?.state === 'open',
      10_000,
      'the lock opened and said so',
    );
    home.doorSensor.open();
    home.doorSensor.close();

    // When: the server stops mid-session and starts again.
    await sys.close();
    expect((await (await startStoreOnly(dir, database)).state(sessionId)).state).toBe('open');
    sys = await startSystem({ dataDir: dir, port: 0, mqttPort, ...database });
    const second = sys;
    cleanups.push(() => second.close());

    // Then: the session is closed as interrupted, and the lock, once back, is locked.
    const row = await sys.store.sessions.get(sessionId);
    expect(row?.state).toBe('aborted');
    expect((row?.data as AccessSession).outcome?.code).toBe('session.interrupted');
    await until(() => home.lock.bolt() === 'locked', 15_000, 'the lock is locked again');
    await until(
      async () =>
        (await sys.store.audit.entriesForSubject(`session:${sessionId}`)).some(
          (e) => e.kind === 'recovery.door-secured',
        ),
      10_000,
      'the door is recorded as secured',
    );
    await sys.audit.checkpoint();
    const v = await sys.audit.verify(verifyEd25519);
    expect(v.ok).toBe(true);
    expect(v.unsignedTail).toBe(0);
  }, 60_000);
});

/** Reads a stored session without starting a server (the stopped server's database). */
async function startStoreOnly(dir: string, database: { databaseUrl?: string }) {
  const store = await openStore(await systemStoreOptions({ dataDir: dir, ...database }));
  return {
    async state(id: string) {
      const row = await store.sessions.get(id);
      await store.close();
      return { state: row?.state };
    },
  };
}
