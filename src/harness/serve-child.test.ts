/**
 * `threshold serve` as a child process (serve-child.ts), for real: it answers on the loopback
 * port it was given and stops on SIGTERM; a serve that cannot start (its port taken) is reported
 * with its own words and leaves no process behind. Also the one free-port helper it relies on.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from './free-port.ts';
import { startServeChild, type ServeChild } from './serve-child.ts';

/** Loading the server alone has taken over 30 s on a loaded machine. */
const START_TIMEOUT_MS = 180_000;

const dirs: string[] = [];
const started: ServeChild[] = [];
const listeners: Server[] = [];

afterAll(async () => {
  for (const s of started) s.child.kill('SIGKILL');
  await Promise.all(started.map((s) => s.exited));
  for (const l of listeners) l.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'threshold-serve-child-'));
  dirs.push(dir);
  return dir;
}

/** Whether `pid` names a live process (signal 0 checks without sending anything). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Processes whose command line names `dataDir` (unique per test), from /proc. */
function processesUsing(dataDir: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0').includes(dataDir))
        pids.push(Number(name));
    } catch {
      // Gone between the listing and the read.
    }
  }
  return pids;
}

describe('freePort', () => {
  it('gives a port that can be bound on 127.0.0.1 at once', async () => {
    const port = await freePort();
    expect(port).toBeGreaterThan(0);
    expect(port).toBeLessThan(65_536);
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', resolve);
    });
    expect(server.address()).toMatchObject({ address: '127.0.0.1', port });
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
});

describe('startServeChild', () => {
  it(
    'starts serve on the given loopback ports, logs to the file, and stops it with SIGTERM',
    async () => {
      const dir = tempDir();
      const [httpPort, mqttPort] = [await freePort(), await freePort()];
      const logFile = join(dir, 'serve.log');
      const serve = await startServeChild({
        dataDir: join(dir, 'data'),
        httpPort,
        mqttPort,
        logFile,
        startTimeoutMs: START_TIMEOUT_MS,
      });
      started.push(serve);
      expect(serve.url).toBe(`http://127.0.0.1:${httpPort}`);
      expect(alive(serve.pid)).toBe(true);
      const health = await fetch(`${serve.url}/api/health`);
      expect(health.status).toBe(200);
      await health.body?.cancel();

      await serve.stop(60_000);
      const end = await serve.exited;
      // A clean shutdown on SIGTERM: exit code 0, or the signal if it was still loading.
      expect(end.code === 0 || end.signal === 'SIGTERM').toBe(true);
      expect(alive(serve.pid)).toBe(false);
      await expect(fetch(`${serve.url}/api/health`)).rejects.toThrow();
      expect(serve.output()).toBe(readFileSync(logFile, 'utf8').slice(-4_000));
      expect(serve.output().length).toBeGreaterThan(0);
      // Stopping what has stopped is a no-op.
      await serve.stop();
    },
    START_TIMEOUT_MS + 90_000,
  );

  it(
    'reports a serve that cannot take its port, with what it said, and leaves no process',
    async () => {
      const dir = tempDir();
      const taken = createServer();
      listeners.push(taken);
      await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
      const address = taken.address();
      if (address === null || typeof address !== 'object') throw new Error('no port');
      const dataDir = join(dir, 'data');
      let child: ServeChild['child'] | undefined;
      const t0 = Date.now();
      const failure = await startServeChild({
        dataDir,
        httpPort: address.port,
        mqttPort: await freePort(),
        startTimeoutMs: START_TIMEOUT_MS,
      }).then(
        (s) => {
          child = s.child;
          return null;
        },
        (err: unknown) => err,
      );
      child?.kill('SIGKILL');
      expect(failure).toBeInstanceOf(Error);
      expect((failure as Error).message).toMatch(/^threshold serve exited while starting/);
      expect((failure as Error).message).toMatch(/EADDRINUSE|address already in use/i);
      expect(processesUsing(dataDir)).toEqual([]);
      // Its exit ends the wait, even with a health request hanging on the port's other holder.
      expect(Date.now() - t0).toBeLessThan(START_TIMEOUT_MS);
    },
    START_TIMEOUT_MS + 30_000,
  );
});
