/**
 * The crash-safety bench (issue 7): `kill -9` the control plane at random points of random
 * sessions and restart it, `--cycles` times (default 1,000), checking after every restart that
 * the audit chain verifies, nothing acknowledged was lost and the open session was closed
 * safely (src/harness/crash-loop.ts). Progress goes to stderr, the JSON report to stdout.
 *
 * Exit code 1 when a cycle failed (a crash-safety failure is a bug, not a figure), 2 when the
 * bench itself could not run.
 */
import { parseArgs } from 'node:util';
import { runCrashLoop } from '../src/harness/crash-loop.ts';

const USAGE = `usage: node bin/run-ts.js bench/crash.ts [--cycles N] [--seed S] [--data DIR]
  --cycles N  kill-and-restart cycles (default 1000)
  --seed S    seed of the random kill points and delays (default: a new one, printed)
  --data DIR  keep the data directory here (default: a temporary one, removed)
`;

const { values: args } = parseArgs({
  options: {
    cycles: { type: 'string', default: '1000' },
    seed: { type: 'string' },
    data: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const cycles = Number(args.cycles);
const seed = args.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(args.seed);
if (!Number.isInteger(cycles) || cycles < 1 || !Number.isInteger(seed)) {
  process.stderr.write(USAGE);
  process.exit(2);
}
try {
  const report = await runCrashLoop({
    cycles,
    seed,
    ...(args.data === undefined ? {} : { dataDir: args.data }),
    log: (line) => process.stderr.write(`${line}\n`),
  });
  process.stdout.write(`${JSON.stringify({ seed, ...report }, null, 2)}\n`);
  process.exit(report.failures.length === 0 ? 0 : 1);
} catch (err) {
  process.stderr.write(`the crash bench could not run: ${String(err)}\n`);
  process.exit(2);
}
