/**
 * Session clips are deleted after the retention period, while the audit log keeps what they
 * were: the frame digests recorded when the session ended, and a `clip.deleted` entry.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ClipStore } from '../src/server/clip-store.ts';
import { verifyEd25519 } from '../src/server/keys.ts';
import { seedDemo } from '../src/server/seed.ts';
import { startSystem, type RunningSystem } from '../src/server/system.ts';
import { testDatabaseOptions } from '../src/store/test-postgres.ts';

let dir = '';
let sys: RunningSystem | null = null;
afterEach(async () => {
  await sys?.close();
  sys = null;
  rmSync(dir, { recursive: true, force: true });
});

describe('clip retention', () => {
  it('deletes clips older than the retention period at start-up and records it; younger clips stay', async () => {
    dir = mkdtempSync(join(tmpdir(), 'threshold-retention-'));
    sys = await startSystem({
      dataDir: dir,
      port: 0,
      mqttPort: 0,
      ...(await testDatabaseOptions(dir)),
    });
    const creds = await seedDemo(sys, dir);
    const clips = new ClipStore(dir, sys.store.clips);
    const now = Date.now();
    const day = 24 * 60 * 60 * 1000;
    for (const [id, age] of [
      ['old-session', 3 * day],
      ['new-session', 1 * day],
    ] as const) {
      await sys.store.sessions.save({
        id,
        homeId: creds.homeId,
        doorId: creds.doorId,
        deliveryId: null,
        principalId: creds.courier.id,
        state: 'completed',
        createdAt: now - age,
        updatedAt: now - age,
        endedAt: now - age,
        data: {},
      });
      await clips.add(
        id,
        0,
        now - age,
        now - age,
        'a'.repeat(64),
        Buffer.from([0xff, 0xd8, 0xff, 0xd9]),
      );
    }
    const oldFile = join(dir, 'clips', 'old-session', '000000.jpg');
    const newFile = join(dir, 'clips', 'new-session', '000000.jpg');
    expect(existsSync(oldFile) && existsSync(newFile)).toBe(true);
    await sys.close();

    // Restart with a two-day retention: the three-day-old clip goes, the one-day-old stays.
    sys = await startSystem({
      dataDir: dir,
      port: 0,
      mqttPort: 0,
      clipRetentionDays: 2,
      ...(await testDatabaseOptions(dir)),
    });
    expect(existsSync(oldFile)).toBe(false);
    expect(existsSync(newFile)).toBe(true);
    expect(await sys.store.clips.list('old-session')).toEqual([]);
    expect(await sys.store.clips.list('new-session')).toHaveLength(1);
    const deleted = await sys.store.audit.entriesForSubject('session:old-session');
    expect(deleted.map((e) => e.kind)).toEqual(['clip.deleted']);
    expect(deleted[0]?.data).toEqual({ retentionDays: 2 });
    await sys.audit.checkpoint();
    expect((await sys.audit.verify(verifyEd25519)).ok).toBe(true);
  });
});
