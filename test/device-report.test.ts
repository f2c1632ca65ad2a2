/**
 * A quiet device still proves it is alive: the link republishes its state on a period, so the
 * server can tell "quiet" from "dead" (principle 4: stale is shown as stale).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DeviceLink, SimLock } from '../src/devices/index.ts';
import { systemClock } from '../src/protocol/system-clock.ts';
import { startSystem, type RunningSystem } from '../src/server/system.ts';
import { testDatabaseOptions } from '../src/store/test-postgres.ts';
import { DEFAULT_DELIVERY_PREFERENCES } from '../src/core/model.ts';

let sys: RunningSystem | null = null;
let link: DeviceLink | null = null;
let dir = '';

afterEach(async () => {
  await link?.close();
  await sys?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('periodic state report', () => {
  it('a connected lock republishes its state every reportIntervalMs, with a new seq each time', async () => {
    dir = mkdtempSync(join(tmpdir(), 'threshold-report-'));
    sys = await startSystem({
      dataDir: dir,
      port: 0,
      mqttPort: 0,
      ...(await testDatabaseOptions(dir)),
    });
    await sys.store.homes.createHome({
      id: 'home-a',
      name: 'A',
      address: 'a',
      geofence: { lat: 0, lon: 0, radiusM: 50 },
      timeZone: 'UTC',
      inHomeDelivery: true,
      delivery: DEFAULT_DELIVERY_PREFERENCES,
    });
    const secret = await sys.provisionDevice({
      id: 'lock-a',
      homeId: 'home-a',
      kind: 'lock',
      name: 'Lock',
    });
    const seqs: number[] = [];
    sys.gateway.addListener({ onState: (_d, s) => void seqs.push(s.seq) });
    link = new DeviceLink({
      brokerUrl: sys.brokerUrl,
      homeId: 'home-a',
      deviceId: 'lock-a',
      deviceKey: Buffer.from(secret, 'base64url'),
      clock: systemClock,
      reportIntervalMs: 200,
    });
    new SimLock(link, { clock: systemClock });
    await link.start();
    const deadline = Date.now() + 5_000;
    while (seqs.length < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(seqs.length).toBeGreaterThanOrEqual(4);
    expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
    expect(new Set(seqs).size).toBe(seqs.length);
    expect(sys.gateway.liveStatus('lock-a')?.state).toMatchObject({ kind: 'lock', bolt: 'locked' });
  });
});
