/** The demo seeds its home once, and on a later start offers a delivery the courier can still use. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { seedDemo } from '../src/server/seed.ts';
import { startSystem, type RunningSystem } from '../src/server/system.ts';
import { testDatabaseOptions } from '../src/store/test-postgres.ts';

let dir = '';
let sys: RunningSystem | null = null;
afterEach(async () => {
  await sys?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('demo seed', () => {
  it('seeds once; after the delivery was made, the next start offers a fresh one with its grant', async () => {
    dir = mkdtempSync(join(tmpdir(), 'threshold-seed-'));
    sys = await startSystem({
      dataDir: dir,
      port: 0,
      mqttPort: 0,
      ...(await testDatabaseOptions(dir)),
    });
    const first = await seedDemo(sys, dir);
    const again = await seedDemo(sys, dir);
    expect(again).toEqual(first);
    expect(await sys.store.homes.listHomes()).toHaveLength(1);

    await sys.store.deliveries.updateStatus(first.deliveryId, 'delivered');
    const later = await seedDemo(sys, dir);
    expect(later.deliveryId).not.toBe(first.deliveryId);
    expect({ ...later, deliveryId: '' }).toEqual({ ...first, deliveryId: '' });
    const delivery = await sys.store.deliveries.get(later.deliveryId);
    expect(delivery).toMatchObject({ status: 'scheduled', courierId: first.courier.id });
    expect(delivery!.windowEnd).toBeGreaterThan(Date.now() + 3_600_000);
    const grant = await sys.store.deliveries.getGrantForDelivery(later.deliveryId);
    expect(grant).toMatchObject({ principalId: first.courier.id, uses: 0, maxUses: 1 });
    expect(await sys.store.homes.listHomes()).toHaveLength(1);
  });
});
