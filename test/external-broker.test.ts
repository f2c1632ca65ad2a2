/**
 * `threshold serve --mqtt-url` on a real, external mosquitto (Debian's, with its dynamic
 * security plugin and persistence), as an installation running many homes does: the server
 * writes its own and every device's account at start, a device gets in with its derived
 * password only, and a device event published while the server is dead (kill -9) waits in the
 * broker for the server's session and is in the audit log after the restart.
 */
import { freePort } from '../src/harness/free-port.ts';
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectAsync, type MqttClient } from 'mqtt';
import { afterAll, describe, expect, it } from 'vitest';
import { startMosquitto, type TestMosquitto } from '../src/harness/mosquitto.ts';
import { startServe, type ServeProcess } from '../src/harness/scenarios/steps-integrity.ts';
import { deriveDeviceKey, mqttPassword, sign } from '../src/protocol/device-auth.ts';
import type { DeviceEventMessage } from '../src/protocol/device-messages.ts';
import { deviceTopic } from '../src/protocol/topics.ts';
import { seedDemo } from '../src/server/seed.ts';
import { startSystem } from '../src/server/system.ts';

const ADMIN = {
  adminUsername: 'threshold-admin',
  adminPassword: 'admin-secret-for-this-test-only',
};
const START_TIMEOUT_MS = 120_000;

const dirs: string[] = [];
let mosquitto: TestMosquitto | undefined;
let serve: ServeProcess | undefined;
const clients: MqttClient[] = [];

afterAll(async () => {
  await Promise.all(clients.map((c) => c.endAsync(true).catch(() => {})));
  if (serve) {
    serve.child.kill('SIGKILL');
    await serve.exited;
  }
  await mosquitto?.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `threshold-${name}-`));
  dirs.push(dir);
  return dir;
}

/** `device.event` entries of the audit log in `dataDir`, as `name seq`. */
function auditedEvents(dataDir: string): string[] {
  const db = new Database(join(dataDir, 'threshold.db'), { readonly: true });
  try {
    const rows = db
      .prepare("SELECT data FROM audit_entries WHERE kind = 'device.event' ORDER BY seq")
      .all() as { data: string }[];
    return rows.map((r) => {
      const d = JSON.parse(r.data) as { name: string; seq: number };
      return `${d.name} ${d.seq}`;
    });
  } finally {
    db.close();
  }
}

describe('threshold serve --mqtt-url (external mosquitto)', () => {
  it('writes the accounts, lets devices in by their own password, and loses no event published while it was killed', async () => {
    mosquitto = await startMosquitto({ dynsec: ADMIN, dataDir: tempDir('mosquitto-data') });
    const dataDir = tempDir('external-broker');
    const passwordFile = join(dataDir, 'mqtt-admin-password');
    writeFileSync(passwordFile, `${ADMIN.adminPassword}\n`, { mode: 0o600 });
    const httpPort = await freePort();
    const clientId = 'threshold-server-test-replica';

    // The demo home, seeded through a server on the same broker.
    const seeding = await startSystem({
      dataDir,
      port: 0,
      mqttUrl: mosquitto.url,
      mqttAdmin: { username: ADMIN.adminUsername, password: ADMIN.adminPassword },
      mqttClientId: `${clientId}-seed`,
    });
    const creds = await seedDemo(seeding, dataDir);
    const masterKey = seeding.keys.masterKey;
    await seeding.close();

    const args = [
      '--mqtt-url',
      mosquitto.url,
      '--mqtt-admin-username',
      ADMIN.adminUsername,
      '--mqtt-admin-password-file',
      passwordFile,
      '--mqtt-client-id',
      clientId,
    ];
    serve = await startServe(dataDir, httpPort, 0, START_TIMEOUT_MS, args);

    const lock = creds.devices.lock;
    const key = deriveDeviceKey(masterKey, lock.id);
    // A wrong password, or the camera's client id, is refused by mosquitto itself.
    await expect(
      connectAsync(mosquitto.url, {
        username: lock.id,
        password: 'not-the-password',
        clientId: lock.id,
        reconnectPeriod: 0,
      }),
    ).rejects.toThrow(/not authorized|bad user/i);
    const device = await connectAsync(mosquitto.url, {
      username: lock.id,
      password: mqttPassword(key),
      clientId: lock.id,
      protocolVersion: 4,
      reconnectPeriod: 0,
    });
    clients.push(device);
    const topic = deviceTopic(creds.homeId, lock.id, 'event');
    const event = (seq: number): string =>
      JSON.stringify(
        sign<DeviceEventMessage>(key, topic, {
          seq,
          at: Date.now(),
          name: 'lock.auto-relocked',
        }),
      );

    await device.publishAsync(topic, event(1), { qos: 1 });
    const deadline = (ms: number): number => Date.now() + ms;
    let until = deadline(20_000);
    while (!auditedEvents(dataDir).includes('lock.auto-relocked 1') && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(auditedEvents(dataDir)).toContain('lock.auto-relocked 1');

    // The server dies; the broker acknowledges the device and keeps the event for it.
    serve.child.kill('SIGKILL');
    await serve.exited;
    await device.publishAsync(topic, event(2), { qos: 1 });
    serve = await startServe(dataDir, httpPort, 0, START_TIMEOUT_MS, args);
    until = deadline(20_000);
    while (!auditedEvents(dataDir).includes('lock.auto-relocked 2') && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(auditedEvents(dataDir)).toEqual(['lock.auto-relocked 1', 'lock.auto-relocked 2']);
  }, 400_000);
});
