import { describe, expect, it } from 'vitest';
import { deviceTopic } from '../protocol/topics.ts';
import { MAX_MESSAGE_BYTES } from '../protocol/device-messages.ts';
import {
  checkForward,
  checkOrphanPublish,
  checkPublish,
  checkSubscribe,
  checkWill,
  type BrokerIdentity,
} from './broker-acl.ts';

const LOCK: BrokerIdentity = { kind: 'device', deviceId: 'lock-1', homeId: 'home-a' };
const SERVER: BrokerIdentity = { kind: 'server', clientId: 'threshold-server' };
const own = (channel: Parameters<typeof deviceTopic>[2]) =>
  deviceTopic('home-a', 'lock-1', channel);

describe('checkPublish', () => {
  it('lets a device publish on every up channel of its own prefix', () => {
    for (const channel of [
      'availability',
      'state',
      'event',
      'heartbeat',
      'frame',
      'reply',
    ] as const) {
      expect(checkPublish(LOCK, own(channel), false)).toBeNull();
    }
  });

  it('allows retained messages only on availability and state', () => {
    expect(checkPublish(LOCK, own('availability'), true)).toBeNull();
    expect(checkPublish(LOCK, own('state'), true)).toBeNull();
    for (const channel of ['event', 'heartbeat', 'frame', 'reply'] as const) {
      expect(checkPublish(LOCK, own(channel), true)).toBe('retain-not-allowed');
    }
  });

  it('refuses a device anything outside its own up channels', () => {
    expect(checkPublish(LOCK, deviceTopic('home-a', 'cam-1', 'state'), false)).toBe('other-device');
    expect(checkPublish(LOCK, deviceTopic('home-b', 'lock-1', 'state'), false)).toBe(
      'other-device',
    );
    expect(checkPublish(LOCK, own('command'), false)).toBe('not-an-up-channel');
    expect(checkPublish(LOCK, `${own('state')}/x`, false)).toBe('not-a-device-topic');
    expect(checkPublish(LOCK, 'threshold/v1/home-a/lock-1/State', false)).toBe(
      'not-a-device-topic',
    );
    expect(checkPublish(LOCK, 'threshold/v1/HOME-A/lock-1/state', false)).toBe(
      'not-a-device-topic',
    );
    expect(checkPublish(LOCK, '$SYS/x', false)).toBe('not-a-device-topic');
    expect(checkPublish(LOCK, '', false)).toBe('not-a-device-topic');
  });

  it('lets the server publish only non-retained commands', () => {
    expect(checkPublish(SERVER, deviceTopic('home-b', 'lock-2', 'command'), false)).toBeNull();
    expect(checkPublish(SERVER, deviceTopic('home-b', 'lock-2', 'command'), true)).toBe(
      'retain-not-allowed',
    );
    expect(checkPublish(SERVER, own('state'), false)).toBe('not-a-command-topic');
    expect(checkPublish(SERVER, 'threshold/v1/+/+/command', false)).toBe('not-a-device-topic');
  });
});

describe('checkSubscribe and checkForward', () => {
  it('gives a device exactly its own command topic', () => {
    expect(checkSubscribe(LOCK, own('command'))).toBeNull();
    for (const filter of [
      'threshold/v1/home-a/lock-1/+',
      'threshold/v1/home-a/+/command',
      'threshold/v1/#',
      '#',
      own('state'),
      deviceTopic('home-a', 'cam-1', 'command'),
    ]) {
      expect(checkSubscribe(LOCK, filter)).toBe('not-own-command-topic');
    }
    expect(checkForward(LOCK, own('command'))).toBeNull();
    expect(checkForward(LOCK, deviceTopic('home-a', 'cam-1', 'command'))).toBe(
      'not-own-command-topic',
    );
    expect(checkForward(LOCK, own('state'))).toBe('not-own-command-topic');
  });

  it('gives the server anything under threshold/v1/', () => {
    expect(checkSubscribe(SERVER, 'threshold/v1/+/+/+')).toBeNull();
    expect(checkSubscribe(SERVER, 'threshold/v1/#')).toBeNull();
    expect(checkSubscribe(SERVER, '#')).toBe('outside-threshold-root');
    expect(checkSubscribe(SERVER, '$SYS/#')).toBe('outside-threshold-root');
    expect(checkSubscribe(SERVER, 'threshold/v10/#')).toBe('outside-threshold-root');
    expect(checkForward(SERVER, own('state'))).toBeNull();
    expect(checkForward(SERVER, '$SYS/x/heartbeat')).toBe('outside-threshold-root');
  });
});

describe('checkWill and checkOrphanPublish', () => {
  const offline = '{"online":false}';

  it('lets a device leave a will only on its own availability topic, within its size limit', () => {
    expect(
      checkWill(LOCK, { topic: own('availability'), payload: offline, retain: true }),
    ).toBeNull();
    expect(
      checkWill(LOCK, {
        topic: deviceTopic('home-a', 'cam-1', 'availability'),
        payload: offline,
        retain: true,
      }),
    ).toBe('will-not-own-availability');
    expect(checkWill(LOCK, { topic: own('state'), payload: offline, retain: false })).toBe(
      'will-not-own-availability',
    );
    expect(
      checkWill(LOCK, {
        topic: own('availability'),
        payload: new Uint8Array(MAX_MESSAGE_BYTES + 1),
        retain: true,
      }),
    ).toBe('will-too-large');
  });

  it('holds the server will to its publish rules', () => {
    expect(checkWill(SERVER, { topic: own('availability'), payload: offline, retain: true })).toBe(
      'not-a-command-topic',
    );
  });

  it('lets an orphaned will out only on an availability topic', () => {
    expect(checkOrphanPublish(own('availability'))).toBeNull();
    expect(checkOrphanPublish(own('command'))).toBe('will-not-own-availability');
    expect(checkOrphanPublish('foo')).toBe('not-a-device-topic');
  });
});
