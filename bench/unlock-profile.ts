/**
 * The unlock path alone, many runs, for profiling and for comparing two builds: one
 * ScenarioWorld on SQLite (control plane, embedded broker and simulated home in this process,
 * loopback only), warm-up runs, then `--runs` runs of {@link runUnlockOnce}, and the summary of
 * the server share and its two parts as one JSON line on stdout.
 *
 * It has none of the floors `npm run bench` measures between runs, so it is not a substitute for
 * the bench's figures: it is the short loop to run under `node --cpu-prof` (see
 * docs/benchmarks.md) or alternately on two commits.
 *
 *   node --cpu-prof --cpu-prof-dir DIR bin/run-ts.js bench/unlock-profile.ts --runs 200
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ScenarioWorld } from '../src/harness/scenario-world.ts';
import { summarize } from './sample-stats.ts';
import { TraceRecorder } from './trace-recorder.ts';
import { runUnlockOnce, type UnlockSample } from './unlock-path.ts';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '100' },
    warmup: { type: 'string', default: '10' },
    'data-dir': { type: 'string' },
  },
});
const runs = Number(values.runs);
const warmup = Number(values.warmup);
if (!Number.isInteger(runs) || runs < 1 || !Number.isInteger(warmup) || warmup < 0) {
  process.stderr.write('usage: bench/unlock-profile.ts [--runs N ≥ 1] [--warmup N ≥ 0]\n');
  process.exit(2);
}

const dataDir = mkdtempSync(join(values['data-dir'] ?? tmpdir(), 'threshold-unlock-profile-'));
const recorder = new TraceRecorder();
const world = await ScenarioWorld.create({ dataDir, trace: recorder.trace });
try {
  recorder.attach(world.sys.gateway);
  for (let i = 0; i < warmup; i++) await runUnlockOnce(world, recorder);
  const samples: UnlockSample[] = [];
  const anomalies: string[] = [];
  for (let i = 0; i < runs; i++) {
    const s = await runUnlockOnce(world, recorder);
    samples.push(s);
    if (s.anomaly !== null) anomalies.push(`run ${i + 1}: ${s.anomaly}`);
  }
  const pick = (f: (s: UnlockSample) => number) => summarize(samples.map(f));
  process.stdout.write(
    `${JSON.stringify({
      runs,
      serverShareMs: pick((s) => s.serverShareMs),
      httpToArmMs: pick((s) => s.httpToArmMs),
      heartbeatToUnlockMs: pick((s) => s.heartbeatToUnlockMs),
      cameraMs: pick((s) => s.cameraMs),
      anomalies,
    })}\n`,
  );
} finally {
  await world.close();
  rmSync(dataDir, { recursive: true, force: true });
}
