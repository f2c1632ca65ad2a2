import { describe, expect, it } from 'vitest';
import { FakeClock } from '../core/clock.ts';
import { verifyMac } from '../protocol/device-auth.ts';
import type { DoorPositionName } from '../protocol/device-messages.ts';
import { MemoryLink } from './memory-link.ts';
import { SimDoorSensor } from './sim-door-sensor.ts';

const KEY = new Uint8Array(32).fill(8);

function setup() {
  const clock = new FakeClock();
  const link = new MemoryLink({ homeId: 'home-1', deviceId: 'door-1', deviceKey: KEY, clock });
  const sensor = new SimDoorSensor(link, { clock });
  return { clock, link, sensor };
}

describe('SimDoorSensor', () => {
  it('reports on connect and on every change, with the time of the change', () => {
    const { clock, link, sensor } = setup();
    link.connect();
    const t0 = clock.now();
    clock.advance(1_000);
    sensor.open();
    sensor.open();
    clock.advance(2_000);
    sensor.close();
    const states = link.payloads('state');
    expect(states).toMatchObject([
      { kind: 'door-sensor', position: 'closed', changedAt: t0 },
      { kind: 'door-sensor', position: 'open', changedAt: t0 + 1_000 },
      { kind: 'door-sensor', position: 'closed', changedAt: t0 + 3_000 },
    ]);
    for (const state of states) expect(verifyMac(KEY, link.topic('state'), state)).toBe(true);
    expect(link.payloads('event').map((e) => e.name)).toEqual(['door.opened', 'door.closed']);
  });

  it('tells its listeners, until they stop listening', () => {
    const { sensor } = setup();
    const seen: DoorPositionName[] = [];
    const stop = sensor.onChange((p) => seen.push(p));
    sensor.open();
    sensor.close();
    stop();
    sensor.open();
    expect(seen).toEqual(['open', 'closed']);
    expect(sensor.position()).toBe('open');
  });

  it('answers report and refuses other actions', async () => {
    const { link, sensor } = setup();
    link.connect();
    sensor.open();
    expect(await link.deliver(link.command({ action: 'report' }))).toMatchObject({
      status: 'ok',
      data: { position: 'open' },
    });
    expect(await link.deliver(link.command({ action: 'unlock' }))).toMatchObject({
      status: 'error',
      error: { code: 'command.unsupported' },
    });
  });
});
