/**
 * The crash-safety bench (issue 7): `kill -9` the control plane at random points of random
 * sessions and restart it, `--cycles` times (default 1,000), checking after every restart that
 * the audit chain verifies, nothing acknowledged was lost and the open session was closed
 * safely (src/harness/crash-loop.ts). Progress goes to stderr, the JSON report to stdout.
 *
 * Exit code 1 when a cycle failed (a crash-safety failure is a bug, not a figure), 2 when the
 * bench itself could not run.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { mergeCrashLoopReports, runCrashLoop } from '../src/harness/crash-loop.ts';

const USAGE = `usage: node bin/run-ts.js bench/crash.ts [--cycles N] [--seed S] [--workers W] [--data DIR]
  --cycles N   kill-and-restart cycles in all (default 1000)
  --seed S     seed of the random kill points and delays (default: a new one, printed)
  --workers W  loops run side by side, each with its own server, home and data directory;
               loop i gets seed S+i and its share of the cycles (default 1)
  --data DIR   keep the data directory here (default: a temporary one, removed); with
               --workers, loop i uses DIR/i
`;

const { values: args } = parseArgs({
  options: {
    cycles: { type: 'string', default: '1000' },
    seed: { type: 'string' },
    data: { type: 'string' },
    workers: { type: 'string', default: '1' },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const cycles = Number(args.cycles);
const seed = args.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(args.seed);
const workers = Number(args.workers);
if (
  !Number.isInteger(cycles) ||
  cycles < 1 ||
  !Number.isInteger(seed) ||
  !Number.isInteger(workers) ||
  workers < 1 ||
  workers > cycles
) {
  process.stderr.write(USAGE);
  process.exit(2);
}
/** The data directory of loop `i` under `--data`. */
function loopDir(data: string, i: number): string {
  if (workers === 1) return data;
  const dir = join(data, String(i));
  mkdirSync(dir, { recursive: true });
  return dir;
}

process.stderr.write(`seed ${seed}, ${cycles} cycles, ${workers} loop(s)\n`);
try {
  const reports = await Promise.all(
    Array.from({ length: workers }, (_, i) => {
      // The cycles are shared out so that the loops' shares differ by one at most.
      const share = Math.floor(cycles / workers) + (i < cycles % workers ? 1 : 0);
      const tag = workers === 1 ? '' : `[loop ${i}] `;
      return runCrashLoop({
        cycles: share,
        seed: seed + i,
        ...(args.data === undefined ? {} : { dataDir: loopDir(args.data, i) }),
        log: (line) => process.stderr.write(`${tag}${line}\n`),
      });
    }),
  );
  const report = mergeCrashLoopReports(reports);
  const { restartsMs: _samples, ...summary } = report;
  process.stdout.write(`${JSON.stringify({ seed, workers, ...summary }, null, 2)}\n`);
  process.exit(report.failures.length === 0 ? 0 : 1);
} catch (err) {
  process.stderr.write(`the crash bench could not run: ${String(err)}\n`);
  process.exit(2);
}
