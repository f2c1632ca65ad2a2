/**
 * The unlock path on two or more checkouts of Threshold at the same moments: one
 * ScenarioWorld per checkout, each in a child process of its own, and their unlock runs
 * interleaved (A B, then B A, …), so a busy neighbour slows each checkout alike. What it
 * reports per checkout: the median, p90 and p99 of the server share and its parts (as
 * bench/unlock-path.ts measures them); and against the first checkout, the median of the
 * paired differences run by run, with how many runs were slower. On a shared machine a
 * difference of a fraction of a millisecond shows this way, where separate runs of
 * `npm run bench` (minutes apart) differ by more than that from the load alone.
 *
 *   node bin/run-ts.js bench/unlock-paired.ts --runs 150 /tmp/threshold-base .
 *
 * Each checkout runs its own sources, harness and bench/unlock-path.ts; it needs its
 * dependencies installed (or a `node_modules` link to these). A checkout made with
 * `git worktree add` at an older commit works back to the commits that have
 * bench/unlock-path.ts with `runUnlockOnce(world, recorder)`.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type * as WorldModule from '../src/harness/scenario-world.ts';
import { median, percentile } from './sample-stats.ts';
import type * as RecorderModule from './trace-recorder.ts';
import type * as UnlockModule from './unlock-path.ts';
import type { UnlockSample } from './unlock-path.ts';

/** Environment variable naming the checkout a child runs (child mode when set). */
const ROOT_ENV = 'THRESHOLD_UNLOCK_PAIRED_ROOT';
const FIGURES = ['serverShareMs', 'httpToArmMs', 'heartbeatToUnlockMs', 'cameraMs'] as const;

const USAGE = `usage: node bin/run-ts.js bench/unlock-paired.ts [--runs N] [--warmup N] [--json] DIR DIR...
  DIR        a checkout of Threshold (the first is the one the others are compared with)
  --runs N   unlock runs per checkout (default 100)
  --warmup N uncounted runs per checkout first (default 5)
  --json     print one JSON object with every sample instead of the summary
`;

/** Child: one world of the checkout at `root`; one unlock run per `run` line on stdin. */
async function child(root: string, warmup: number): Promise<void> {
  const { ScenarioWorld } = (await import(
    join(root, 'src/harness/scenario-world.ts')
  )) as typeof WorldModule;
  const { TraceRecorder } = (await import(
    join(root, 'bench/trace-recorder.ts')
  )) as typeof RecorderModule;
  const { runUnlockOnce } = (await import(
    join(root, 'bench/unlock-path.ts')
  )) as typeof UnlockModule;
  const recorder = new TraceRecorder();
  const dataDir = mkdtempSync(join(tmpdir(), 'threshold-unlock-paired-'));
  const world = await ScenarioWorld.create({ dataDir, trace: recorder.trace });
  try {
    recorder.attach(world.sys.gateway);
    for (let i = 0; i < warmup; i++) await runUnlockOnce(world, recorder);
    process.stdout.write('ready\n');
    for await (const line of createInterface({ input: process.stdin })) {
      if (line !== 'run') break;
      const sample = await runUnlockOnce(world, recorder).catch((err: unknown) => ({
        error: err instanceof Error ? err.message : String(err),
      }));
      process.stdout.write(`${JSON.stringify(sample)}\n`);
    }
  } finally {
    await world.close();
    rmSync(dataDir, { recursive: true, force: true });
    // Nothing more is read: the open pipe must not keep the child alive.
    process.stdin.destroy();
  }
}

type Answer = UnlockSample | { readonly error: string };

/** A child process and the lines it answers with, one at a time. */
class Checkout {
  readonly samples: Answer[] = [];
  private readonly lines: string[] = [];
  private waiting: ((line: string) => void) | null = null;
  private readonly proc: ChildProcessWithoutNullStreams;

  constructor(
    readonly dir: string,
    warmup: number,
  ) {
    const self = fileURLToPath(import.meta.url);
    const runTs = fileURLToPath(new URL('../bin/run-ts.js', import.meta.url));
    this.proc = spawn(process.execPath, [runTs, self, '--warmup', String(warmup)], {
      cwd: dir,
      env: { ...process.env, [ROOT_ENV]: dir },
    });
    this.proc.stderr.pipe(process.stderr);
    createInterface({ input: this.proc.stdout }).on('line', (line) => {
      const w = this.waiting;
      this.waiting = null;
      if (w) w(line);
      else this.lines.push(line);
    });
    this.proc.on('exit', (code) => {
      const w = this.waiting;
      this.waiting = null;
      w?.(`exited ${code}`);
    });
  }

  next(): Promise<string> {
    const line = this.lines.shift();
    if (line !== undefined) return Promise.resolve(line);
    return new Promise((resolve) => (this.waiting = resolve));
  }

  async ready(): Promise<void> {
    const line = await this.next();
    if (line !== 'ready') throw new Error(`${this.dir}: ${line}`);
  }

  async run(): Promise<void> {
    this.proc.stdin.write('run\n');
    this.samples.push(JSON.parse(await this.next()) as Answer);
  }

  async stop(): Promise<void> {
    const exited = new Promise((resolve) => this.proc.once('exit', resolve));
    this.proc.stdin.end('stop\n');
    await exited;
  }
}

const fmt = (v: number | null): string => (v === null ? '-' : v.toFixed(2));

/** The summary: each checkout's figures, then each one's paired differences with the first. */
function summary(checkouts: readonly Checkout[]): string {
  const out: string[] = [];
  const figure = (s: Answer, k: (typeof FIGURES)[number]): number =>
    'error' in s ? Number.NaN : s[k];
  const sorted = (xs: number[]): number[] =>
    xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  for (const c of checkouts) {
    const errors = c.samples.filter((s) => 'error' in s).length;
    out.push(`${c.dir}${errors > 0 ? ` (${errors} failed runs)` : ''}`);
    for (const k of FIGURES) {
      const xs = sorted(c.samples.map((s) => figure(s, k)));
      out.push(
        `  ${k.padEnd(20)} median ${fmt(median(xs))}  p90 ${fmt(percentile(xs, 90))}  p99 ${fmt(percentile(xs, 99))}`,
      );
    }
  }
  const [first, ...others] = checkouts;
  if (first === undefined) return out.join('\n');
  for (const c of others) {
    out.push(`paired differences, ${c.dir} − ${first.dir} (run by run):`);
    for (const k of FIGURES) {
      const d = first.samples.map((s, i) => figure(c.samples[i]!, k) - figure(s, k));
      const slower = d.filter((x) => x > 0).length;
      out.push(
        `  ${k.padEnd(20)} median ${fmt(median(sorted(d)))}  (${slower} of ${d.length} runs slower)`,
      );
    }
  }
  return out.join('\n');
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    runs: { type: 'string', default: '100' },
    warmup: { type: 'string', default: '5' },
    json: { type: 'boolean', default: false },
  },
});
const runs = Number(values.runs);
const warmup = Number(values.warmup);
const root = process.env[ROOT_ENV];
if (!Number.isInteger(runs) || runs < 1 || !Number.isInteger(warmup) || warmup < 0) {
  process.stderr.write(USAGE);
  process.exit(2);
}
if (root !== undefined) {
  await child(root, warmup);
} else {
  if (positionals.length < 2) {
    process.stderr.write(USAGE);
    process.exit(2);
  }
  const checkouts = positionals.map((d) => new Checkout(resolve(d), warmup));
  try {
    await Promise.all(checkouts.map((c) => c.ready()));
    for (let i = 0; i < runs; i++) {
      // Every other round the other way round, so no checkout always runs right after another.
      for (const c of i % 2 === 0 ? checkouts : [...checkouts].reverse()) await c.run();
    }
  } finally {
    await Promise.all(checkouts.map((c) => c.stop()));
  }
  process.stdout.write(
    values.json
      ? `${JSON.stringify(Object.fromEntries(checkouts.map((c) => [c.dir, c.samples])))}\n`
      : `${summary(checkouts)}\n`,
  );
}
