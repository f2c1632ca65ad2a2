/** `threshold hub` as a user runs it: a child process with a config file, against a real control plane. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { hubYamlFor } from '../src/harness/scenarios/hub-home.ts';
import { seedDemo } from '../src/server/seed.ts';
import { startSystem } from '../src/server/system.ts';

const BIN = join(import.meta.dirname, '..', 'bin', 'threshold.js');

function threshold(...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'threshold-hub-cli-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function until(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('threshold hub', () => {
  it('prints its help', () => {
    const r = threshold('hub', '--help');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Usage: threshold hub/);
    expect(r.stdout).toContain('--config <file>');
  });

  it('refuses a bad config with exit code 2, naming each bad key, and starts nothing', () => {
    const dir = tempDir();
    const path = join(dir, 'hub.yaml');
    writeFileSync(
      path,
      'controlPlane: { url: mqtt://127.0.0.1:1 }\nhomeId: home-1\ndevices:\n  - { id: l, kind: lock, secret: nope, driver: memory, options: { motorDelay: 3 } }\n',
    );
    const r = threshold('hub', '--config', path);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('devices[0].secret: a device secret is 43 characters');
    expect(r.stderr).toContain('devices[0].options.motorDelay: unknown key');
    expect(threshold('hub', '--config', join(dir, 'missing.yaml')).stderr).toContain('ENOENT');
    expect(threshold('hub').code).toBe(2);
  });

  it('checks the example configs: simulated devices, and one of each real kind', () => {
    for (const [file, devices] of [
      ['hub.yaml', 3],
      ['hub-real-devices.yaml', 6],
    ] as const) {
      const r = threshold(
        'hub',
        '--config',
        join(import.meta.dirname, '..', 'examples', file),
        '--check',
      );
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain(`config OK (home home-maple-12: ${devices} devices`);
    }
  });

  it('runs against a control plane: its devices come online, and go offline when it stops', async () => {
    const dir = tempDir();
    const sys = await startSystem({ dataDir: join(dir, 'cp'), port: 0, mqttPort: 0 });
    cleanups.push(() => sys.close());
    const creds = await seedDemo(sys, join(dir, 'cp'));
    const config = join(dir, 'hub.yaml');
    writeFileSync(
      config,
      hubYamlFor(creds, sys.brokerUrl, { grantKey: sys.keys.grantSigner.publicKey }),
    );

    const child: ChildProcess = spawn(process.execPath, [BIN, 'hub', '--config', config], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LOG_LEVEL: 'warn' },
    });
    let stdout = '';
    child.stdout!.on('data', (b: Buffer) => (stdout += b.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    cleanups.push(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });

    const ids = Object.values(creds.devices).map((d) => d.id);
    await until(
      () => ids.every((id) => sys.gateway.liveStatus(id)?.online === true),
      20_000,
      'the hub’s devices are online',
    );
    await until(() => stdout.includes('Connected to the control plane.'), 10_000, 'it says so');
    expect(sys.gateway.liveStatus(creds.devices.lock.id)?.state).toMatchObject({
      kind: 'lock',
      bolt: 'locked',
    });

    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    await until(
      () => ids.every((id) => sys.gateway.liveStatus(id)?.online === false),
      5_000,
      'the devices are offline',
    );
  }, 60_000);
});
