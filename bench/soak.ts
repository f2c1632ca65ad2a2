/**
 * The long soak (issue 7): 52 simulated weeks of one home's deliveries and guest entries, with
 * ±100 ms jitter and 1 % message loss, against the real session machine and watchdog on a fake
 * clock (src/harness/soak.ts). Four runs, the same visits and faults in each (same seed):
 *
 * 1. `publish-loss`: a lost message is gone (the fault proxy's loss; QoS 1 messages in flight
 *    on a dying connection), at the server's bounds;
 * 2. `tcp-loss`: a lost packet is resent by TCP (200 ms RTO, doubling), at the server's bounds;
 * 3. `publish-loss, silenceMs 1750, relock resent`: candidate bounds — the watchdog waits out
 *    two lost heartbeats, and the server asks the lock again every 1.5 s while relocking;
 * 4. `publish-loss, heartbeat 250 ms, relock resent`: the other candidate — silenceMs stays
 *    1250, the camera beats twice as often.
 *
 * Progress goes to stderr; stdout gets one JSON object: the machine, then each run's report
 * (counts, per fault and alarm type, the first false and missed alarms with what was lost
 * around them, wall time). Exits 0 whatever the counts; 1 only if the soak itself breaks.
 *
 *   node bin/run-ts.js bench/soak.ts [--days N] [--seed N] [--quick]
 */
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { runSoak, type SoakOptions, type SoakReport } from '../src/harness/soak.ts';

const USAGE = `usage: node bin/run-ts.js bench/soak.ts [--days N] [--seed N] [--quick]
  --days N   simulated days per run (default 364: 52 weeks)
  --seed N   seed of the visits, faults, network and people (default 1)
  --quick    28 days per run
`;

const { values: args } = parseArgs({
  args: process.argv.slice(2),
  options: {
    days: { type: 'string' },
    seed: { type: 'string', default: '1' },
    quick: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
  strict: true,
});

if (args.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}

const days = Number(args.days ?? (args.quick ? 28 : 364));
const seed = Number(args.seed);
if (!Number.isInteger(days) || days < 1 || !Number.isInteger(seed)) {
  process.stderr.write(USAGE);
  process.exit(2);
}

/** The issue's conditions: ±100 ms jitter, 1 % loss, one visit in 20 with a true fault. */
const ISSUE: SoakOptions = { days, seed, jitterMs: 100, lossRate: 0.01, faultRate: 0.05 };

const RUNS: readonly { readonly name: string; readonly options: SoakOptions }[] = [
  { name: 'publish-loss', options: { ...ISSUE, lossModel: 'publish' } },
  { name: 'tcp-loss', options: { ...ISSUE, lossModel: 'tcp' } },
  {
    name: 'publish-loss, silenceMs 1750',
    options: {
      ...ISSUE,
      lossModel: 'publish',
      watchdog: { silenceMs: 1_750 },
    },
  },
  {
    name: 'publish-loss, heartbeat 250 ms',
    options: { ...ISSUE, lossModel: 'publish', heartbeatIntervalMs: 250 },
  },
];

const reports: Record<string, SoakReport> = {};
for (const run of RUNS) {
  process.stderr.write(`soak: ${run.name}, ${days} days … `);
  const r = runSoak(run.options);
  reports[run.name] = r;
  process.stderr.write(
    `${r.visits} visits, ${r.messages} messages (${r.lost} lost), ${r.faultsInjected} faults: ` +
      `${r.falseAlarms} false, ${r.missedAlarms} missed alarms, ${(r.wallMs / 1000).toFixed(1)} s\n`,
  );
}

process.stdout.write(
  `${JSON.stringify(
    {
      machine: {
        cpus: cpus().length,
        cpu: cpus()[0]?.model ?? 'unknown',
        node: process.version,
        loadavg: loadavg().map((l) => Math.round(l * 100) / 100),
      },
      runs: reports,
    },
    null,
    2,
  )}\n`,
);
