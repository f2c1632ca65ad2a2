/**
 * Which code the `threshold` command runs (bin/threshold.js): the JavaScript that
 * bin/build-server.js compiled into dist/ while that build matches the sources, else the
 * TypeScript sources through tsx; `THRESHOLD_FROM_SOURCE=1` forces the sources. A stale or
 * half-made build falls back silently, to the same answer. And a command loads only its own
 * modules: `audit verify` starts without the server.
 *
 * Everything runs on a copy of the project in a temporary directory (bin/, src/, package.json,
 * and node_modules linked entry by entry), so building there touches no one else's dist/. Each
 * `threshold` run is a real child process given a module-loading hook (`--import`) that writes
 * down every module it loads: what ran is read from that list, not guessed from timings.
 */
import { spawnSync } from 'node:child_process';
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const REPO_ROOT = join(import.meta.dirname, '..');
/** A command or a build on a loaded machine: generous. */
const RUN_TIMEOUT_MS = 90_000;

/** A hook that appends the URL of every module loaded to the file it is given. */
const LOAD_TRACE_HOOKS = `import { appendFileSync } from 'node:fs';
let file;
export function initialize(data) { file = data.file; }
export async function load(url, context, nextLoad) {
  appendFileSync(file, url + '\\n');
  return nextLoad(url, context);
}`;
/** Given to `--import`: registers the hooks above, writing to THRESHOLD_TEST_LOAD_TRACE. */
const LOAD_TRACE_IMPORT = `data:text/javascript,${encodeURIComponent(
  `import { register } from 'node:module';
register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(LOAD_TRACE_HOOKS)}`)}, {
  data: { file: process.env.THRESHOLD_TEST_LOAD_TRACE },
});`,
)}`;

let root: string;
let dataDir: string;
let traces = 0;

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /** Every module the process loaded, as URLs. */
  readonly loaded: readonly string[];
}

/** `node bin/threshold.js <args>` in the copy, with its modules traced. */
function threshold(args: readonly string[], env: Record<string, string> = {}): Run {
  const trace = join(root, `load-trace-${++traces}.txt`);
  writeFileSync(trace, '');
  const r = spawnSync(
    process.execPath,
    ['--import', LOAD_TRACE_IMPORT, join(root, 'bin', 'threshold.js'), ...args],
    {
      cwd: root,
      encoding: 'utf8',
      timeout: RUN_TIMEOUT_MS,
      env: {
        ...process.env,
        THRESHOLD_FROM_SOURCE: '',
        THRESHOLD_DATABASE_URL: '',
        THRESHOLD_TEST_LOAD_TRACE: trace,
        ...env,
      },
    },
  );
  const loaded = readFileSync(trace, 'utf8').split('\n').filter(Boolean);
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, loaded };
}

const distUrl = (path: string): string => pathToFileURL(join(root, 'dist', path)).href;
const srcUrl = (path: string): string => pathToFileURL(join(root, 'src', path)).href;

/** Which code a run ran, read from what it loaded; throws if it was neither or both. */
function ranFrom(run: Run): 'dist' | 'sources' {
  const fromDist = run.loaded.includes(distUrl('cli/main.js'));
  const fromSources = run.loaded.includes(srcUrl('cli/main.ts'));
  if (fromDist === fromSources)
    throw new Error(`ran from ${fromDist ? 'both' : 'neither'}: ${run.stderr}`);
  return fromDist ? 'dist' : 'sources';
}

/** Compiles the copy's src/ into its dist/. */
function build(): void {
  const r = spawnSync(process.execPath, [join(root, 'bin', 'build-server.js')], {
    cwd: root,
    encoding: 'utf8',
    timeout: RUN_TIMEOUT_MS,
  });
  expect(r.status, r.stderr).toBe(0);
  expect(existsSync(join(root, 'dist', '.source-fingerprint'))).toBe(true);
}

const verify = (env: Record<string, string> = {}): Run =>
  threshold(['audit', 'verify', '--data', dataDir, '--json'], env);

/** The verdict `audit verify --json` printed, after checking it said intact. */
function intact(run: Run): { entries: number; lastHash: string } {
  expect(run.code, run.stderr).toBe(0);
  // Falling back to the sources says nothing: the command's output is all there is.
  expect(run.stderr).toBe('');
  const verdict = JSON.parse(run.stdout) as { ok: boolean; entries: number; lastHash: string };
  expect(verdict.ok).toBe(true);
  return { entries: verdict.entries, lastHash: verdict.lastHash };
}

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'threshold-cli-build-'));
  cpSync(join(REPO_ROOT, 'bin'), join(root, 'bin'), { recursive: true });
  cpSync(join(REPO_ROOT, 'src'), join(root, 'src'), { recursive: true });
  copyFileSync(join(REPO_ROOT, 'package.json'), join(root, 'package.json'));
  // Linked entry by entry rather than as a whole: the build stages its output in
  // node_modules/.cache, which must be the copy's own.
  mkdirSync(join(root, 'node_modules'));
  for (const name of readdirSync(join(REPO_ROOT, 'node_modules'))) {
    if (name === '.cache') continue;
    symlinkSync(join(REPO_ROOT, 'node_modules', name), join(root, 'node_modules', name));
  }
  dataDir = join(root, 'data');
}, RUN_TIMEOUT_MS);

afterAll(() => {
  if (root) rmSync(root, { recursive: true, force: true });
});

describe('bin/threshold.js: the build in dist/ or the sources', () => {
  let fromSources: { entries: number; lastHash: string };

  it('with no build, runs every command from the sources', () => {
    expect(existsSync(join(root, 'dist'))).toBe(false);
    // A real log to verify: a carrier made by the CLI is recorded in the audit log.
    const add = threshold([
      'carrier',
      'add',
      '--name',
      'Birch Express',
      '--admin-username',
      'birch-admin',
      '--data',
      dataDir,
      '--json',
    ]);
    expect(add.code, add.stderr).toBe(0);
    expect(ranFrom(add)).toBe('sources');
    const run = verify();
    expect(ranFrom(run)).toBe('sources');
    fromSources = intact(run);
    expect(fromSources.entries).toBeGreaterThanOrEqual(2);
  }, 180_000);

  it('runs the build once it matches the sources: without tsx, nothing from src/, the same answers', () => {
    build();
    const run = verify();
    expect(ranFrom(run)).toBe('dist');
    expect(intact(run)).toEqual(fromSources);
    expect(run.loaded.filter((url) => url.startsWith(srcUrl('')))).toEqual([]);
    expect(run.loaded.filter((url) => url.includes('/node_modules/tsx/'))).toEqual([]);

    // --help, and serve's option checks (two of them the server's own), as from the sources.
    for (const args of [
      ['--help'],
      ['audit', 'verify', '--help'],
      ['serve', '--help'],
      ['serve', '--offline-grants-hours', '500'],
      ['serve', '--replica-id', '!bad'],
    ]) {
      const built = threshold(args);
      const sources = threshold(args, { THRESHOLD_FROM_SOURCE: '1' });
      expect(ranFrom(built), args.join(' ')).toBe('dist');
      expect(ranFrom(sources), args.join(' ')).toBe('sources');
      expect({ code: built.code, stdout: built.stdout, stderr: built.stderr }).toEqual({
        code: sources.code,
        stdout: sources.stdout,
        stderr: sources.stderr,
      });
    }
    const badHours = threshold(['serve', '--offline-grants-hours', '500']);
    expect(badHours.code).toBe(2);
    expect(badHours.stderr).toContain('a number of hours from 1 to 168 (7 days)');
  }, 180_000);

  it('audit verify and --help load only what they need: not the server', () => {
    for (const args of [['--help'], ['audit', 'verify', '--data', dataDir, '--json']]) {
      const run = threshold(args);
      expect(run.code, run.stderr).toBe(0);
      expect(ranFrom(run)).toBe('dist');
      const heavy = run.loaded.filter(
        (url) =>
          url.startsWith(distUrl('server/system.js')) ||
          url.startsWith(distUrl('cli/serve-command.js')) ||
          url.startsWith(distUrl('harness/')) ||
          /\/node_modules\/(fastify|aedes|web-push|mqtt|pino|@fastify\/[^/]+)\//.test(url),
      );
      expect(heavy, args.join(' ')).toEqual([]);
    }
    // What `serve` needs is still there when it runs: its module loads before its options parse.
    const serve = threshold(['serve', '--replica-lease-ms', '3000']);
    expect(serve.code).toBe(2);
    expect(serve.stderr).toContain('--replica-lease-ms needs --replica-id');
    expect(serve.loaded).toContain(distUrl('cli/serve-command.js'));
  }, 120_000);

  it('THRESHOLD_FROM_SOURCE=1 runs the sources though the build matches', () => {
    const run = verify({ THRESHOLD_FROM_SOURCE: '1' });
    expect(ranFrom(run)).toBe('sources');
    expect(intact(run)).toEqual(fromSources);
  }, 120_000);

  it('falls back to the sources, silently and with the same answer, when the build is stale or half-made', () => {
    // A source edited since the build (a new modification time is all it takes).
    const edited = join(root, 'src', 'core', 'audit-chain.ts');
    const later = new Date(Date.now() + 60_000);
    utimesSync(edited, later, later);
    let run = verify();
    expect(ranFrom(run)).toBe('sources');
    expect(intact(run)).toEqual(fromSources);
    build();
    expect(ranFrom(verify())).toBe('dist');

    // A source file added since the build; removed again, the build matches again.
    const added = join(root, 'src', 'cli', 'added-since-the-build.ts');
    writeFileSync(added, 'export const ADDED = 1;\n');
    run = verify();
    expect(ranFrom(run)).toBe('sources');
    expect(intact(run)).toEqual(fromSources);
    unlinkSync(added);
    expect(ranFrom(verify())).toBe('dist');

    // A build without its fingerprint, as one that stopped before writing it.
    unlinkSync(join(root, 'dist', '.source-fingerprint'));
    run = verify();
    expect(ranFrom(run)).toBe('sources');
    expect(intact(run)).toEqual(fromSources);
  }, 240_000);

  it('the build points every relative .ts specifier at its .js file, a child script found by URL too', () => {
    build();
    const files = readdirSync(join(root, 'dist'), { recursive: true, encoding: 'utf8' }).filter(
      (path) => path.endsWith('.js'),
    );
    expect(files.length).toBeGreaterThan(100);
    const leftOver = files.filter((path) =>
      /(?:\bfrom|\bimport|\bnew URL\()\s*\(?\s*["']\.\.?\/[^"']*\.ts["']/.test(
        readFileSync(join(root, 'dist', path), 'utf8'),
      ),
    );
    expect(leftOver).toEqual([]);
    // The camera-link-down scenario runs this file as a child process, found from its own URL.
    expect(
      readFileSync(join(root, 'dist', 'harness', 'scenarios', 'camera-link-down.js'), 'utf8'),
    ).toContain('new URL("../camera-child.js", import.meta.url)');
    expect(existsSync(join(root, 'dist', 'harness', 'camera-child.js'))).toBe(true);
  }, 120_000);
});
