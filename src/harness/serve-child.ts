/**
 * `threshold serve` as a process of its own, the way an operator runs it: for the scenarios and
 * tests that kill the control plane (`kill -9`) and start it again on the same data, and for the
 * benches that measure its CPU time and resident memory apart from the load they put on it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The `threshold` command of this checkout (bin/threshold.js), by absolute path. */
export const THRESHOLD_BIN = fileURLToPath(new URL('../../bin/threshold.js', import.meta.url));

/** How much of a child's output is kept for error messages, characters. */
const OUTPUT_TAIL_CHARS = 4_000;

/** How a {@link startServeChild} child is started. */
export interface ServeChildOptions {
  /** Its data directory (`--data`). */
  readonly dataDir: string;
  /** Its HTTP port on 127.0.0.1 (`--port`); its health is asked for there. */
  readonly httpPort: number;
  /**
   * Its embedded broker's port on 127.0.0.1 (`--mqtt-port`); 0 lets the kernel pick one (as
   * with `--mqtt-url`, when the embedded broker does not run). Omitted: serve's default.
   */
  readonly mqttPort?: number;
  /** More `serve` options, after the ones above (e.g. `--database-url`, `--silence-ms`). */
  readonly args?: readonly string[];
  /** Options for Node itself, before the script (e.g. `--cpu-prof --cpu-prof-dir DIR`). */
  readonly nodeArgs?: readonly string[];
  /** Its environment; this process's when omitted. */
  readonly env?: NodeJS.ProcessEnv;
  /** Its working directory (where relative paths in `nodeArgs` point); this process's if omitted. */
  readonly cwd?: string;
  /**
   * A file its stdout and stderr are appended to, written by the child itself (so a busy parent
   * never holds it up). Omitted: stdout is dropped and the end of stderr is kept in memory.
   */
  readonly logFile?: string;
  /** How long it may take to answer `GET /api/health` with 200, ms (default 30 s). */
  readonly startTimeoutMs?: number;
  /** How often its health is asked for while it starts, ms (default 100). */
  readonly pollMs?: number;
}

/** How a child process ended: its exit code, or the signal that ended it. */
export interface ChildExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** A running `threshold serve` child, started by {@link startServeChild}. */
export interface ServeChild {
  readonly child: ChildProcess;
  /** Its process id (for /proc CPU time and resident set). */
  readonly pid: number;
  /** `http://127.0.0.1:<httpPort>`. */
  readonly url: string;
  /** Resolves when the process has ended. */
  readonly exited: Promise<ChildExit>;
  /** The end of what it wrote: its log file's, or its stderr's when it has no log file. */
  output(): string;
  /** Ends it gently (SIGTERM), then by force (SIGKILL) after `graceMs`; resolves once it is gone. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Starts `node [nodeArgs] bin/threshold.js serve --data … --port … --host 127.0.0.1
 * [--mqtt-port … --mqtt-host 127.0.0.1] [args]` and waits until it answers its health check.
 * HTTP and MQTT are bound to loopback explicitly, whatever serve's defaults become.
 *
 * Throws, with the process ended (SIGKILL) and the end of its output in the message, if it
 * exits while starting or does not answer within `startTimeoutMs`.
 */
export async function startServeChild(opts: ServeChildOptions): Promise<ServeChild> {
  const args = [
    ...(opts.nodeArgs ?? []),
    THRESHOLD_BIN,
    'serve',
    '--data',
    opts.dataDir,
    '--port',
    String(opts.httpPort),
    '--host',
    '127.0.0.1',
    ...(opts.mqttPort === undefined
      ? []
      : ['--mqtt-port', String(opts.mqttPort), '--mqtt-host', '127.0.0.1']),
    ...(opts.args ?? []),
  ];
  let child: ChildProcess;
  let output: () => string;
  const logFile = opts.logFile;
  if (logFile !== undefined) {
    const fd = openSync(logFile, 'a');
    try {
      child = spawn(process.execPath, args, {
        cwd: opts.cwd,
        env: opts.env,
        stdio: ['ignore', fd, fd],
      });
    } finally {
      // The child holds its own copy of the descriptor.
      closeSync(fd);
    }
    output = () => fileTail(logFile, OUTPUT_TAIL_CHARS);
  } else {
    child = spawn(process.execPath, args, {
      cwd: opts.cwd,
      env: opts.env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let tail = '';
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (text: string) => {
      tail = (tail + text).slice(-OUTPUT_TAIL_CHARS);
    });
    output = () => tail;
  }
  const exited = exitOf(child);
  let gone = false;
  void exited.then(() => {
    gone = true;
  });
  const url = `http://127.0.0.1:${opts.httpPort}`;
  const timeoutMs = opts.startTimeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  let up = false;
  while (!gone && Date.now() <= deadline) {
    up = await answersHealth(url, deadline, exited);
    if (up) break;
    await new Promise((r) => setTimeout(r, opts.pollMs ?? 100));
  }
  if (!up || gone || child.pid === undefined) {
    child.kill('SIGKILL');
    const end = await exited;
    const why = gone
      ? `exited while starting (${end.signal ?? `code ${end.code}`})`
      : `did not answer /api/health within ${timeoutMs} ms`;
    throw new Error(`threshold serve ${why}: ${output().trim().slice(-500)}`);
  }
  return {
    child,
    pid: child.pid,
    url,
    exited,
    output,
    stop: (graceMs) => stopChildProcess(child, graceMs),
  };
}

/**
 * Ends a child process: SIGTERM, then SIGKILL if it is still there after `graceMs` (default
 * 15 s). Resolves once it has exited; at once if it already had.
 */
export function stopChildProcess(child: ChildProcess, graceMs = 15_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const force = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(force);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** Resolves when `child` ends; also when it could not be started at all (no pid, no exit). */
function exitOf(child: ChildProcess): Promise<ChildExit> {
  return new Promise((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.on('error', () => {
      // A failed kill also reports here; only a spawn that failed means there is no process.
      if (child.pid === undefined) resolve({ code: null, signal: null });
    });
  });
}

/** One health request may take this long, ms, before it is asked again (a loaded machine). */
const HEALTH_ATTEMPT_MS = 10_000;

/**
 * Whether `url` answers `GET /api/health` with 200: one attempt, given up after
 * {@link HEALTH_ATTEMPT_MS}, at `deadline` (epoch ms), or as soon as the child exits (something
 * else holding the port may accept the connection and never answer).
 */
async function answersHealth(
  url: string,
  deadline: number,
  exited: Promise<unknown>,
): Promise<boolean> {
  const abort = new AbortController();
  const timer = setTimeout(
    () => abort.abort(),
    Math.max(0, Math.min(HEALTH_ATTEMPT_MS, deadline - Date.now())),
  );
  void exited.then(() => abort.abort());
  try {
    const res = await fetch(`${url}/api/health`, { signal: abort.signal });
    await res.body?.cancel();
    return res.status === 200;
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

/** The last `chars` characters (about: read as bytes) of a file; '' if it cannot be read. */
function fileTail(path: string, chars: number): string {
  try {
    const size = statSync(path).size;
    const length = Math.min(size, chars);
    const buf = Buffer.alloc(length);
    const fd = openSync(path, 'r');
    try {
      readSync(fd, buf, 0, length, size - length);
    } finally {
      closeSync(fd);
    }
    return buf.toString('utf8');
  } catch {
    return '';
  }
}
