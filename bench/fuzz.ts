/**
 * The fuzzing bench (issue 7): both property suites — every HTTP route (test/fuzz-api.test.ts)
 * and every device message type (test/fuzz-device.test.ts) — run with many more cases than CI
 * gives them, 100,000 in all by default, and a report of what ran: cases, time and failures, by
 * suite.
 *
 * Each suite runs in its own vitest process (the same files CI runs, so the bench fuzzes
 * exactly what the tests check), with `FUZZ_RUNS` set from the case budget, `FUZZ_SEED` when
 * given, and `FUZZ_REPORT` pointing at a file where every property writes one line: its name,
 * the requests or messages it sent, its seconds, and whether it failed. vitest's own output
 * (with fast-check's seed and counterexample of any failure) goes to a log file named at the
 * end. Progress goes to stderr; stdout gets the report, or with --json one JSON object.
 *
 * Exit code 1 when a property failed (a fuzz failure is a bug to fix, not a figure), 2 when the
 * bench itself could not run.
 */
import { spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const USAGE = `usage: npm run bench:fuzz [-- --cases N] [-- --seed S] [-- --only api|device] [-- --json]
  --cases N   cases in all, both suites together (default 100000)
  --seed S    fast-check seed for every property (default: a new one each; printed on failure)
  --only X    run one suite: api (HTTP routes) or device (MQTT messages and decoding)
  --json      print one JSON object instead of the table
`;

const { values: args } = parseArgs({
  args: process.argv.slice(2),
  options: {
    cases: { type: 'string', default: '100000' },
    seed: { type: 'string' },
    only: { type: 'string' },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
  strict: true,
});

if (args.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}

/** Share of the case budget the HTTP suite gets (its cases cost about ten times more). */
const API_SHARE = 0.3;
/** Routes the app registers, about (each gets `FUZZ_RUNS` cases, the framing 4× that). */
const API_ROUTES = 200;
/**
 * Cases the device suite sends per unit of `FUZZ_RUNS`: 9 decoding properties at `FUZZ_RUNS`
 * each, and 11 live ones at half of it with two messages per case.
 */
const DEVICE_CASES_PER_RUN = 9 + 11;

interface ReportLine {
  readonly suite: 'api' | 'device';
  readonly property: string;
  readonly cases: number;
  readonly seconds: number;
  readonly failed: boolean;
}

interface SuiteResult {
  readonly suite: 'api' | 'device';
  readonly file: string;
  readonly runsPerProperty: number;
  readonly properties: number;
  readonly cases: number;
  readonly seconds: number;
  readonly failedProperties: readonly string[];
  readonly exitCode: number;
}

function progress(line: string): void {
  process.stderr.write(`[bench:fuzz] ${line}\n`);
}

function fail(message: string): never {
  process.stderr.write(`${message}\n${USAGE}`);
  process.exit(2);
}

const total = Number(args.cases);
if (!Number.isInteger(total) || total < 1_000) fail('--cases must be a whole number ≥ 1000');
if (args.seed !== undefined && !/^-?\d+$/.test(args.seed)) fail('--seed must be an integer');
if (args.only !== undefined && args.only !== 'api' && args.only !== 'device')
  fail('--only must be api or device');

const suites = [
  {
    suite: 'api' as const,
    file: 'test/fuzz-api.test.ts',
    runs: Math.max(
      1,
      Math.ceil((total * (args.only === 'api' ? 1 : API_SHARE)) / (API_ROUTES + 4)),
    ),
  },
  {
    suite: 'device' as const,
    file: 'test/fuzz-device.test.ts',
    runs: Math.max(
      2,
      Math.ceil((total * (args.only === 'device' ? 1 : 1 - API_SHARE)) / DEVICE_CASES_PER_RUN),
    ),
  },
].filter((s) => args.only === undefined || s.suite === args.only);

const workDir = mkdtempSync(join(tmpdir(), 'threshold-fuzz-bench-'));
const vitest = resolve('node_modules/vitest/vitest.mjs');
if (!existsSync(vitest)) fail('vitest is not installed (run npm install)');

/** Runs one suite's file in vitest; resolves with its exit code. */
function runSuite(
  file: string,
  runs: number,
  reportFile: string,
  logFile: string,
): Promise<number> {
  return new Promise((done) => {
    const log = createWriteStream(logFile);
    const child = spawn(process.execPath, [vitest, 'run', file], {
      env: {
        ...process.env,
        FUZZ_RUNS: String(runs),
        FUZZ_REPORT: reportFile,
        ...(args.seed === undefined ? {} : { FUZZ_SEED: args.seed }),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.pipe(log, { end: false });
    child.stderr.pipe(log, { end: false });
    // Ctrl-C reaches the child through the process group; its report is kept.
    child.on('close', (code) => {
      log.end();
      done(code ?? 1);
    });
  });
}

function readReport(file: string): ReportLine[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim().length > 0)
    .map((l) => JSON.parse(l) as ReportLine);
}

async function main(): Promise<void> {
  const started = performance.now();
  const load = loadavg()[0] ?? 0;
  const results: SuiteResult[] = [];
  for (const s of suites) {
    const reportFile = join(workDir, `${s.suite}.jsonl`);
    const logFile = join(workDir, `${s.suite}.log`);
    progress(`${s.suite}: ${s.file} with FUZZ_RUNS=${s.runs} (log: ${logFile})`);
    const t0 = performance.now();
    const exitCode = await runSuite(s.file, s.runs, reportFile, logFile);
    const lines = readReport(reportFile);
    const result: SuiteResult = {
      suite: s.suite,
      file: s.file,
      runsPerProperty: s.runs,
      properties: lines.length,
      cases: lines.reduce((n, l) => n + l.cases, 0),
      seconds: (performance.now() - t0) / 1000,
      failedProperties: lines.filter((l) => l.failed).map((l) => l.property),
      exitCode,
    };
    results.push(result);
    progress(
      `${s.suite}: ${result.cases} cases in ${result.seconds.toFixed(0)} s, ` +
        `${result.failedProperties.length} properties failed, vitest exit ${exitCode}`,
    );
  }
  const seconds = (performance.now() - started) / 1000;
  const cases = results.reduce((n, r) => n + r.cases, 0);
  const failed = results.some((r) => r.exitCode !== 0 || r.failedProperties.length > 0);
  const machine = { cpus: cpus().length, node: process.version, loadAtStart: load };
  if (args.json) {
    process.stdout.write(
      `${JSON.stringify({ cases, seconds, failed, suites: results, machine, logs: workDir }, null, 2)}\n`,
    );
  } else {
    const rows = results.map(
      (r) =>
        `${r.suite.padEnd(7)} ${String(r.runsPerProperty).padStart(6)} ${String(r.properties).padStart(10)} ` +
        `${String(r.cases).padStart(8)} ${r.seconds.toFixed(0).padStart(7)} ` +
        `${String(r.failedProperties.length).padStart(7)}  ${r.exitCode === 0 ? 'passed' : `vitest exit ${r.exitCode}`}`,
    );
    process.stdout.write(
      [
        'suite    runs/p properties    cases       s  failed  result',
        ...rows,
        `total  ${String(cases).padStart(26)} ${seconds.toFixed(0).padStart(7)}`,
        '',
        ...results.flatMap((r) => r.failedProperties.map((p) => `failed (${r.suite}): ${p}`)),
        `machine: ${machine.cpus} CPUs, Node ${machine.node}, load ${load.toFixed(2)} at start`,
        `vitest output (seeds and counterexamples of failures): ${workDir}`,
        '',
      ].join('\n'),
    );
  }
  process.exitCode = failed ? 1 : 0;
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(2);
});
