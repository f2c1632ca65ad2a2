/**
 * Start-up with many homes (issue 8): how long `threshold serve` takes from its spawn to
 * `/api/health` answering 200, with N homes in its SQLite store.
 *
 * Every home is seeded as a busy one, so each of the start-up's readers has rows to read: a
 * door with a lock and a camera, an owner and a guest, the guest's weekly grant at the door,
 * a keypad code for each in the lock's slots 1 and 2, and an in-home delivery due today with
 * its grant. The store is seeded once per N (batched transactions through the repositories)
 * and each run starts on a fresh copy of it, so every run does the same work: migrations
 * (none left), the grant lists of every lock signed and published, PIN windows refreshed, and
 * so on, as a fresh node with that many homes would.
 *
 * Run: `node bin/run-ts.js bench/startup.ts [--homes 1000,5000,10000] [--runs 2]`. Prints one
 * line per run and a table of medians. The server starts as `bin/threshold.js serve` starts it:
 * from dist/ when that build is current, else from the sources; `THRESHOLD_FROM_SOURCE=1`
 * makes every run start from the sources, for runs compared across changes to them.
 * Nothing listens beyond 127.0.0.1; the server is stopped
 * (SIGTERM, then SIGKILL after 30 s) and its data removed after each run.
 */
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { Kysely } from 'kysely';
import { freePort } from '../src/harness/free-port.ts';
import { startServeChild } from '../src/harness/serve-child.ts';
import { median } from './sample-stats.ts';
import { seedHomes, type SeededHomeIds } from './seed-homes.ts';
import {
  GuestGrantRepository,
  openStore,
  PinSlotRepository,
  PrincipalRepository,
  type Database,
} from '../src/store/index.ts';

const REPO_ROOT = resolve(fileURLToPath(import.meta.url), '../..');
const CARRIER_ID = 'startup-carrier';
const COURIER_ID = 'startup-courier';
/** How long a start may take before the run is given up, ms. */
const START_LIMIT_MS = 900_000;

/** One timed start. */
export interface StartupRun {
  readonly homes: number;
  /** Spawn to the first 200 from /api/health, s. */
  readonly seconds: number;
  /**
   * The server's CPU time (user + system) by then, s: less sensitive than `seconds` to what
   * else the machine runs; null without Linux's /proc.
   */
  readonly cpuSeconds: number | null;
  /** The 1-minute load average when the run began. */
  readonly load: number;
}

/** The ids of home `i`'s owner and guest (its other rows' ids are {@link seedHomes}'). */
function peopleOf(i: number): Record<'owner' | 'guest', string> {
  const n = String(i).padStart(6, '0');
  return { owner: `startup-owner-${n}`, guest: `startup-guest-${n}` };
}

/** Seeds `count` homes (see the module comment) into a new SQLite file at `path`. */
export async function seedStartupStore(path: string, count: number): Promise<void> {
  const store = await openStore({ dialect: 'sqlite', path });
  try {
    const now = Date.now();
    /** Home `i`'s owner, guest, the guest's grant and both keypad codes. */
    const perHome = async (trx: Kysely<Database>, i: number, ids: SeededHomeIds) => {
      const people = new PrincipalRepository(trx);
      const guests = new GuestGrantRepository(trx);
      const slots = new PinSlotRepository(trx);
      const id = peopleOf(i);
      for (const [pid, role] of [
        [id.owner, 'owner'],
        [id.guest, 'guest'],
      ] as const) {
        await people.create(
          { id: pid, role, displayName: pid, homeId: ids.homeId, carrierId: null },
          { username: pid, passwordHash: 'not-a-password-hash' },
        );
      }
      await guests.create({
        id: `startup-grant-${i}`,
        homeId: ids.homeId,
        doorId: ids.doorId,
        principalId: id.guest,
        grantedBy: id.owner,
        schedule: {
          kind: 'weekly',
          slots: [{ days: ['mon', 'tue', 'wed', 'thu', 'fri'], start: '09:00', end: '17:00' }],
        },
        limits: { maxUses: null, maxMinutesPerEntry: null, requiresRecording: true },
        uses: 0,
        createdAt: now,
        revokedAt: null,
        revokedBy: null,
        revokeReason: null,
      });
      for (const [slot, pid] of [
        [1, id.owner],
        [2, id.guest],
      ] as const) {
        // A digest as locks report them (43 base64url characters), else no list is valid.
        const digest = createHash('sha256').update(`${i}-${slot}`).digest('base64url');
        await slots.save({
          lockDeviceId: ids.lockId,
          slot,
          principalId: pid,
          name: null,
          codeDigest: digest,
          desired: 'set',
          sync: 'confirmed',
          attempts: 1,
          nextAttemptAt: null,
          lastError: null,
          lockDigest: digest,
          checkedAt: now,
          updatedAt: now,
          window: null,
          lockWindow: null,
          windowOnly: false,
        });
      }
    };
    await seedHomes(store, {
      count,
      prefix: 'startup',
      carrier: { id: CARRIER_ID, name: 'Start-up carrier' },
      // Nobody signs in during this bench: the hash only has to be a string.
      courier: {
        id: COURIER_ID,
        username: COURIER_ID,
        displayName: 'Courier',
        passwordHash: 'not-a-password-hash',
      },
      home: (i) => ({
        name: `Home ${i}`,
        address: `Street ${i}`,
        geofence: { lat: 52.52, lon: 13.405, radiusM: 80 },
      }),
      delivery: {
        windowStart: now,
        windowEnd: now + 4 * 3_600_000,
        createdAt: now,
        maxOpenMs: 600_000,
      },
      perHome,
    });
  } finally {
    await store.close();
  }
}

/** User + system CPU time of a process, s (Linux /proc, clock ticks of 10 ms); null without. */
function cpuSecondsOf(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return null;
  }
}

/**
 * Starts `threshold serve` on `dataDir` and times it to its first healthy answer: wall clock
 * and the server's CPU time, s.
 */
export async function timeStartup(
  dataDir: string,
): Promise<{ seconds: number; cpuSeconds: number | null }> {
  const [httpPort, mqttPort] = [await freePort(), await freePort()];
  const startedAt = performance.now();
  const serve = await startServeChild({
    dataDir,
    httpPort,
    mqttPort,
    cwd: REPO_ROOT,
    startTimeoutMs: START_LIMIT_MS,
    pollMs: 50,
  });
  try {
    return {
      seconds: (performance.now() - startedAt) / 1000,
      cpuSeconds: cpuSecondsOf(serve.pid),
    };
  } finally {
    await serve.stop(30_000);
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { homes: { type: 'string', default: '1000,5000,10000' }, runs: { type: 'string' } },
  });
  const counts = values.homes.split(',').map(Number);
  const runs = Number(values.runs ?? '2');
  if (counts.some((n) => !Number.isInteger(n) || n < 1) || !Number.isInteger(runs) || runs < 1)
    throw new Error('--homes is a list of whole numbers, --runs a whole number');
  const root = mkdtempSync(join(tmpdir(), 'threshold-bench-startup-'));
  const results: StartupRun[] = [];
  try {
    for (const homes of counts) {
      const seeded = join(root, `seed-${homes}.db`);
      const t0 = performance.now();
      await seedStartupStore(seeded, homes);
      console.log(`seeded ${homes} homes in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      for (let r = 0; r < runs; r++) {
        const dataDir = join(root, `run-${homes}-${r}`);
        mkdirSync(dataDir);
        copyFileSync(seeded, join(dataDir, 'threshold.db'));
        const load = loadavg()[0] ?? 0;
        const { seconds, cpuSeconds } = await timeStartup(dataDir);
        results.push({ homes, seconds, cpuSeconds, load });
        console.log(
          `${homes} homes, run ${r + 1}: ${seconds.toFixed(2)} s, server CPU ${cpuSeconds?.toFixed(2) ?? '—'} s (load ${load.toFixed(2)})`,
        );
        rmSync(dataDir, { recursive: true, force: true });
      }
      rmSync(seeded, { force: true });
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  console.log(
    `\n${'homes'.padStart(8)}${'median s'.padStart(10)}${'min s'.padStart(8)}${'median CPU s'.padStart(14)}`,
  );
  for (const homes of counts) {
    const mine = results.filter((r) => r.homes === homes);
    const wall = mine.map((r) => r.seconds).sort((a, b) => a - b);
    const cpu = mine
      .flatMap((r) => (r.cpuSeconds === null ? [] : [r.cpuSeconds]))
      .sort((a, b) => a - b);
    console.log(
      `${String(homes).padStart(8)}${(median(wall) ?? NaN).toFixed(2).padStart(10)}${Math.min(
        ...wall,
      )
        .toFixed(2)
        .padStart(8)}${(median(cpu) ?? NaN).toFixed(2).padStart(14)}`,
    );
  }
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url))
  await main();
