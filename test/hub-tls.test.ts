/**
 * The hub's link over TLS (`mqtts://` with the control plane's CA), against a real Mosquitto
 * with a TLS listener on loopback and certificates made for the test: with the right CA the
 * link comes up and its events are acknowledged; with another CA it never connects.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect as tlsConnect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mqtt from 'mqtt';
import { verifyMac } from '../src/protocol/device-auth.ts';
import { decodePayload } from '../src/protocol/device-messages.ts';
import { systemClock } from '../src/protocol/system-clock.ts';
import { DeviceLink } from '../src/devices/device-link.ts';
import { freePort } from '../src/harness/free-port.ts';

const MOSQUITTO = process.env.MOSQUITTO_BIN ?? '/usr/sbin/mosquitto';
const KEY = new Uint8Array(32).fill(11);
let dir: string;
let broker: ChildProcess | undefined;
let port = 0;

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
}

/** A CA, and a server certificate it signed for 127.0.0.1; `other` is a CA that signed nothing. */
function makeCertificates(): void {
  openssl(
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '1',
    '-subj',
    '/CN=Test CA',
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
  );
  openssl(
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '1',
    '-subj',
    '/CN=Other CA',
    '-keyout',
    'other.key',
    '-out',
    'other.pem',
  );
  openssl(
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-subj',
    '/CN=127.0.0.1',
    '-keyout',
    'server.key',
    '-out',
    'server.csr',
  );
  writeFileSync(join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  openssl(
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-days',
    '1',
    '-extfile',
    'san.ext',
    '-out',
    'server.pem',
  );
}

/** Whether a TLS handshake with the broker succeeds (it listens and speaks TLS). */
function tlsReady(): Promise<boolean> {
  return new Promise((resolve) => {
    const s = tlsConnect({ host: '127.0.0.1', port, ca: readFileSync(join(dir, 'ca.pem')) });
    s.once('secureConnect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'threshold-hub-tls-'));
  makeCertificates();
  // Mosquitto started as root reads its files as the mosquitto user: a test key may be public.
  chmodSync(dir, 0o755);
  for (const f of ['ca.pem', 'server.pem', 'server.key']) chmodSync(join(dir, f), 0o644);
  port = await freePort();
  writeFileSync(
    join(dir, 'mosquitto.conf'),
    [
      `listener ${port} 127.0.0.1`,
      'allow_anonymous true',
      'persistence false',
      `cafile ${join(dir, 'ca.pem')}`,
      `certfile ${join(dir, 'server.pem')}`,
      `keyfile ${join(dir, 'server.key')}`,
      'log_dest stderr',
      'log_type error',
      '',
    ].join('\n'),
  );
  broker = spawn(MOSQUITTO, ['-c', join(dir, 'mosquitto.conf')], { stdio: 'ignore' });
  const end = Date.now() + 5_000;
  while (!(await tlsReady())) {
    if (Date.now() > end || broker.exitCode !== null) throw new Error('mosquitto did not start');
    await new Promise((r) => setTimeout(r, 50));
  }
}, 30_000);

afterAll(async () => {
  if (broker && broker.exitCode === null) {
    const exited = new Promise((r) => broker!.once('exit', r));
    broker.kill('SIGTERM');
    const timer = setTimeout(() => broker?.kill('SIGKILL'), 2_000);
    await exited;
    clearTimeout(timer);
  }
  rmSync(dir, { recursive: true, force: true });
});

function link(ca: string): DeviceLink {
  return new DeviceLink({
    brokerUrl: `mqtts://127.0.0.1:${port}`,
    ca,
    homeId: 'home-1',
    deviceId: 'lock-1',
    deviceKey: KEY,
    clock: systemClock,
    reconnectPeriodMs: 200,
  });
}

describe("DeviceLink over TLS with the hub's options", () => {
  it('connects with the configured CA, and the broker acknowledges its events', async () => {
    const ca = readFileSync(join(dir, 'ca.pem'), 'utf8');
    const watcher = await mqtt.connectAsync(`mqtts://127.0.0.1:${port}`, {
      ca,
      clientId: 'watcher',
    });
    const seen: Buffer[] = [];
    watcher.on('message', (_t, payload) => seen.push(payload));
    await watcher.subscribeAsync('threshold/v1/home-1/lock-1/event', { qos: 1 });
    const l = link(ca);
    l.attach({ handleCommand: () => Promise.resolve({}), onConnect: () => {} });
    try {
      l.connect();
      await l.waitUntilUp(5_000);
      expect(await l.publishEventAcked({ name: 'hub.dead-man', detail: '{"why":"test"}' })).toBe(
        true,
      );
      const end = Date.now() + 3_000;
      while (seen.length === 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
      const decoded = decodePayload('event', seen[0]!);
      expect(decoded.ok).toBe(true);
      if (decoded.ok) {
        expect(decoded.message.name).toBe('hub.dead-man');
        expect(verifyMac(KEY, 'threshold/v1/home-1/lock-1/event', decoded.message)).toBe(true);
      }
      // A link that is down answers at once: not acknowledged.
      l.cutLink();
      expect(await l.publishEventAcked({ name: 'hub.dead-man' })).toBe(false);
    } finally {
      await l.close();
      await watcher.endAsync();
    }
  });

  it('never connects to a broker whose certificate another CA signed', async () => {
    const l = link(readFileSync(join(dir, 'other.pem'), 'utf8'));
    l.attach({ handleCommand: () => Promise.resolve({}), onConnect: () => {} });
    try {
      l.connect();
      await expect(l.waitUntilUp(2_000)).rejects.toThrow(/no connection/);
      expect(l.isConnected()).toBe(false);
    } finally {
      await l.close();
    }
  });
});
