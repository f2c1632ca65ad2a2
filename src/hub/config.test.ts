import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HubConfigError, loadHubConfig, parseHubConfig } from './config.ts';

const SECRET = Buffer.alloc(32, 7).toString('base64url');
let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'hub-config-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const GOOD = `
controlPlane:
  url: mqtt://127.0.0.1:1883
homeId: home-1
devices:
  - { id: lock-1, kind: lock, secret: ${SECRET}, driver: memory, options: { pinCapacity: 10 } }
  - { id: door-1, kind: door-sensor, secret: ${SECRET}, driver: memory }
  - { id: cam-1, kind: camera, secretFile: cam.key, driver: memory }
doors:
  - { id: front, lock: lock-1, doorSensor: door-1, camera: cam-1 }
`;

function problems(text: string): string[] {
  try {
    parseHubConfig(text, { baseDir: dir });
  } catch (err) {
    if (err instanceof HubConfigError) return [...err.problems];
    throw err;
  }
  return [];
}

describe('hub config', () => {
  it('reads a good file, with defaults and the secret from its file', () => {
    writeFileSync(join(dir, 'cam.key'), `${Buffer.alloc(32, 9).toString('base64url')}\n`);
    const c = parseHubConfig(GOOD, { baseDir: dir });
    expect(c.homeId).toBe('home-1');
    expect(c.dataDir).toBe(join(dir, 'hub-data'));
    expect(c).toMatchObject({ deadManMs: 1_250, freezeMs: 3_000, cutOffMs: 30_000 });
    expect(c.devices.map((d) => [d.id, d.kind, d.driver])).toEqual([
      ['lock-1', 'lock', 'memory'],
      ['door-1', 'door-sensor', 'memory'],
      ['cam-1', 'camera', 'memory'],
    ]);
    expect(Buffer.from(c.devices[2]!.key)).toEqual(Buffer.alloc(32, 9));
    expect(c.doors).toEqual([
      {
        id: 'front',
        name: 'front',
        lock: 'lock-1',
        doorSensor: 'door-1',
        camera: 'cam-1',
        relockMs: 30_000,
      },
    ]);
    expect(c.homeAssistant).toBeNull();
    // No grant key: the hub runs, refuses couriers, and the file's reader is told so.
    expect(c.controlPlane).toEqual({ url: 'mqtt://127.0.0.1:1883', ca: null, grantKey: null });
    expect(c.grants).toEqual({ maxAgeMs: 900_000 });
    expect(c.warnings).toEqual([
      expect.stringMatching(
        /^controlPlane\.grantKey: not set, so the hub cannot check the control plane's grant list and refuses every courier unlock/,
      ),
    ]);
  });

  it('reads the grant key inline or from its file, and the grant list bound', () => {
    writeFileSync(join(dir, 'cam.key'), Buffer.alloc(32, 9).toString('base64url'));
    const key = Buffer.alloc(32, 5).toString('base64url');
    const inline = parseHubConfig(
      GOOD.replace(
        '  url: mqtt://127.0.0.1:1883',
        `  url: mqtt://127.0.0.1:1883\n  grantKey: ${key}`,
      ) + 'grants: { maxAgeMs: 10000 }\n',
      { baseDir: dir },
    );
    expect(inline.controlPlane.grantKey).toBe(key);
    expect(inline.grants).toEqual({ maxAgeMs: 10_000 });
    expect(inline.warnings).toEqual([]);
    // The server writes grants-ed25519.pub with a final newline.
    writeFileSync(join(dir, 'grants-ed25519.pub'), `${key}\n`);
    const fromFile = parseHubConfig(
      GOOD.replace(
        '  url: mqtt://127.0.0.1:1883',
        '  url: mqtt://127.0.0.1:1883\n  grantKeyFile: grants-ed25519.pub',
      ),
      { baseDir: dir },
    );
    expect(fromFile.controlPlane.grantKey).toBe(key);
    expect(fromFile.warnings).toEqual([]);
  });

  it('names a bad grant key, a missing key file, both ways at once, and a bound out of range', () => {
    writeFileSync(join(dir, 'cam.key'), Buffer.alloc(32, 9).toString('base64url'));
    const withControlPlane = (lines: string, rest = '') =>
      GOOD.replace('  url: mqtt://127.0.0.1:1883', `  url: mqtt://127.0.0.1:1883\n${lines}`) + rest;
    expect(problems(withControlPlane('  grantKey: not-a-key'))).toEqual([
      "controlPlane.grantKey: a grant key is 43 characters of base64url (the control plane's <data>/keys/grants-ed25519.pub)",
    ]);
    expect(problems(withControlPlane('  grantKeyFile: nope.pub'))).toEqual([
      expect.stringMatching(/^controlPlane\.grantKeyFile: cannot read nope\.pub \(ENOENT\)/),
    ]);
    writeFileSync(join(dir, 'pem.pub'), '-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n');
    expect(problems(withControlPlane('  grantKeyFile: pem.pub'))).toEqual([
      "controlPlane.grantKeyFile: a grant key is 43 characters of base64url (the control plane's <data>/keys/grants-ed25519.pub)",
    ]);
    const key = Buffer.alloc(32, 5).toString('base64url');
    expect(
      problems(withControlPlane(`  grantKey: ${key}\n  grantKeyFile: grants-ed25519.pub`)),
    ).toEqual(['controlPlane: give the grant key as grantKey or as grantKeyFile, not both']);
    expect(problems(`${GOOD}grants: { maxAgeMs: 9999 }\n`)).toEqual([
      'grants.maxAgeMs: must be >= 10000',
    ]);
    expect(problems(`${GOOD}grants: { maxAgeMs: 86400001 }\n`)).toEqual([
      'grants.maxAgeMs: must be <= 86400000',
    ]);
    expect(problems(`${GOOD}grants: { maxAgeMs: "15 min", refreshMs: 1 }\n`)).toEqual(
      expect.arrayContaining([
        'grants.refreshMs: unknown key',
        expect.stringMatching(/^grants\.maxAgeMs: /),
      ]),
    );
  });

  it('reads the example file shipped in examples/', () => {
    const path = join(import.meta.dirname, '..', '..', 'examples', 'hub.yaml');
    const c = loadHubConfig(path);
    expect(c.doors.map((d) => d.id)).toEqual(['front-door']);
    expect(readFileSync(path, 'utf8')).toContain('REPLACE-with-front-lock-secret');
    expect(c.controlPlane.grantKey).toMatch(/^REPLACE-with-/);
    expect(c.grants).toEqual({ maxAgeMs: 900_000 });
    expect(c.warnings).toEqual([]);
  });

  it('names every bad key at once', () => {
    const bad = `
controlPlane: { url: http://example.com, ca: ca.pem, port: 1 }
homeId: Home_1
deadManMs: 10
devices:
  - { id: lock-1, kind: lokc, secret: short, driver: memory }
  - { id: lock-1, kind: lock, driver: no-such-driver }
  - { id: cam-1, kind: camera, secret: ${SECRET}, driver: memory, options: { frameIntervalMs: 1, fps: 3 } }
doors:
  - { id: front, lock: cam-1, camera: nobody }
`;
    const p = problems(bad);
    // Schema problems come first, and alone: the file's shape must hold before anything else.
    expect(p).toEqual(
      expect.arrayContaining([
        'controlPlane.port: unknown key',
        expect.stringMatching(/^homeId: /),
        'deadManMs: must be >= 250',
        'devices[0].kind: must be one of "lock", "door-sensor", "camera"',
      ]),
    );
    const fixed = bad
      .replace(', port: 1', '')
      .replace('Home_1', 'home-1')
      .replace('deadManMs: 10', 'deadManMs: 1250')
      .replace('lokc', 'lock');
    expect(problems(fixed)).toEqual(
      expect.arrayContaining([
        'controlPlane.url: must start with mqtt:// or mqtts://',
        'controlPlane.ca: only for an mqtts:// URL',
        expect.stringMatching(/^controlPlane\.ca: cannot read ca\.pem/),
        'devices[0].secret: a device secret is 43 characters of base64url (32 bytes), as provisioned',
        'devices[1].id: "lock-1" is used twice',
        'devices[1]: give the device key as secret or as secretFile (one of them)',
        expect.stringMatching(
          /^devices\[1\]\.driver: no driver "no-such-driver" in this build \(there is "memory"/,
        ),
        'devices[2].options.frameIntervalMs: must be >= 20',
        'devices[2].options.fps: unknown key',
        'doors[0].lock: "cam-1" is a camera, not a lock',
        'doors[0].camera: no device "nobody" in devices',
      ]),
    );
  });

  it('refuses YAML that does not parse, duplicate keys, and a heartbeat too slow for the dead-man', () => {
    expect(problems('controlPlane: [')[0]).toMatch(/^not valid YAML/);
    expect(problems(GOOD.replace('homeId: home-1', 'homeId: home-1\nhomeId: home-2'))[0]).toMatch(
      /^not valid YAML/,
    );
    writeFileSync(join(dir, 'cam.key'), Buffer.alloc(32, 9).toString('base64url'));
    expect(problems(`${GOOD}heartbeatIntervalMs: 1000\n`)).toEqual([
      'heartbeatIntervalMs: 1000 ms leaves no room in deadManMs 1250 ms (at most half of it)',
    ]);
  });

  it('reads the homeAssistant block as docs/devices.md shows it, and a door name', () => {
    writeFileSync(join(dir, 'cam.key'), Buffer.alloc(32, 9).toString('base64url'));
    const text = GOOD.replace('{ id: front,', '{ id: front, name: Front door,');
    // The block exactly as docs/devices.md ("Setting it up") shows it.
    const c = parseHubConfig(
      `${text}homeAssistant:
  broker: mqtt://homeassistant.local:1883 # mqtts://…:8883 for TLS
  username: threshold-hub
  password: "change me"
  # discoveryPrefix: homeassistant        # only if you changed it in Home Assistant
  # baseTopic: threshold-hub/home1        # where the hub publishes states
`,
      { baseDir: dir },
    );
    expect(c.doors[0]!.name).toBe('Front door');
    expect(c.homeAssistant).toEqual({
      broker: 'mqtt://homeassistant.local:1883',
      username: 'threshold-hub',
      password: 'change me',
      discoveryPrefix: 'homeassistant',
      baseTopic: null,
      lockCommands: false,
    });
    // The password from a file (its final newline is not part of it), and both topic roots.
    writeFileSync(join(dir, 'ha.pass'), 's3cret pass\n');
    const f = parseHubConfig(
      `${GOOD}homeAssistant:
  broker: mqtts://ha.example.com:8883
  username: hub
  passwordFile: ha.pass
  discoveryPrefix: ha-discovery
  baseTopic: homes/maple/hub
  lockCommands: true
`,
      { baseDir: dir },
    );
    expect(f.homeAssistant).toEqual({
      broker: 'mqtts://ha.example.com:8883',
      username: 'hub',
      password: 's3cret pass',
      discoveryPrefix: 'ha-discovery',
      baseTopic: 'homes/maple/hub',
      lockCommands: true,
    });
    // Anonymous access (a broker without accounts) is allowed.
    expect(
      parseHubConfig(`${GOOD}homeAssistant: { broker: mqtt://127.0.0.1:1883 }\n`, { baseDir: dir })
        .homeAssistant,
    ).toMatchObject({ username: null, password: null });
  });

  it('names every bad key of the homeAssistant block', () => {
    writeFileSync(join(dir, 'cam.key'), Buffer.alloc(32, 9).toString('base64url'));
    expect(
      problems(`${GOOD}homeAssistant: { broker: mqtt://h:1883, user: x, lockCommands: 'yes' }\n`),
    ).toEqual(['homeAssistant.user: unknown key', 'homeAssistant.lockCommands: must be boolean']);
    expect(problems(`${GOOD}homeAssistant: { username: x }\n`)).toEqual([
      'homeAssistant.broker: missing',
    ]);
    expect(problems(`${GOOD}homeAssistant: { broker: 1883 }\n`)).toEqual([
      expect.stringMatching(/^homeAssistant\.broker: /),
    ]);
    expect(
      problems(`${GOOD}homeAssistant:
  broker: http://h:8123/api
  password: x
  passwordFile: nope.pass
  discoveryPrefix: "homeassistant/#"
  baseTopic: /threshold/
`),
    ).toEqual([
      'homeAssistant.broker: must start with mqtt:// or mqtts://',
      'homeAssistant.broker: the broker address only, without a path',
      'homeAssistant: give the password as password or as passwordFile, not both',
      'homeAssistant.username: missing (MQTT sends a password only with a user name)',
      'homeAssistant.discoveryPrefix: must not contain +, # or NUL (it is a topic, not a filter)',
      'homeAssistant.baseTopic: must not start or end with /',
    ]);
    expect(
      problems(
        `${GOOD}homeAssistant: { broker: "mqtt://u:p@h:1883", username: u, passwordFile: nope.pass }\n`,
      ),
    ).toEqual([
      'homeAssistant.broker: give the account as username and password, not in the URL',
      expect.stringMatching(/^homeAssistant\.passwordFile: cannot read nope\.pass \(ENOENT\)/),
    ]);
    expect(problems(`${GOOD}homeAssistant: { broker: "not a url" }\n`)).toEqual([
      'homeAssistant.broker: not a URL (e.g. mqtt://homeassistant.local:1883)',
    ]);
  });

  it('reports a missing file as such', () => {
    expect(() => loadHubConfig(join(dir, 'nope.yaml'))).toThrow(/cannot read it \(ENOENT\)/);
  });
});
