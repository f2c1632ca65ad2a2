/**
 * impersonation — a device publishes as another device: the door sensor's credentials (stolen,
 * or a compromised sensor) are used to say "locked" on the lock's topic while the door stands
 * unlocked, so the courier's visit would look finished.
 *
 * Given a delivery in progress with the door unlocked (the courier inside),
 * when someone connects with the door sensor's credentials and publishes a lock state "locked",
 * MAC'd with the only key it has, on the lock's state topic; tries to read the lock's commands;
 * and tries to connect under the lock's client id with the sensor's password,
 * then the broker closes the publishing connection, refuses the subscription and the
 * connection, and counts each refusal; the server's view of the lock never changes (its state
 * and sequence stay the lock's own, the bolt still unlocked) and the session stays open; the
 * courier then finishes normally, and the session completes on the lock's own report.
 */
import { sign, verifyMac } from '../../protocol/device-auth.ts';
import type { LockStateMessage } from '../../protocol/device-messages.ts';
import { deviceTopic } from '../../protocol/topics.ts';
import { embeddedBroker } from './common-steps.ts';
import type { Scenario } from '../scenario.ts';
import { sleep } from '../scenario-world.ts';
import {
  attackerConnect,
  passwordOfSecret,
  publishAndWatchClose,
  trySubscribe,
} from './steps-integrity.ts';

export const impersonation: Scenario = {
  name: 'impersonation',
  expected:
    'sensor credentials publishing on the lock’s topic: broker closes the connection, refusals counted, the lock’s state in the server never changes, the visit completes on the lock’s own word',
  async story({ world, expect }) {
    const { sys, creds } = world;
    const lock = creds.devices.lock;
    const sensor = creds.devices.doorSensor;
    const deliveryId = await world.newDelivery();
    const access = await world.requestAccess(deliveryId);
    const sessionId = (access.body.session as { id?: string } | undefined)?.id ?? null;
    expect.that(access.status === 200, `the door opens for the courier (HTTP ${access.status})`);
    if (access.status !== 200 || sessionId === null) return { session: null };
    world.home.doorSensor.open();
    world.home.camera.setPerson(true);

    const stats0 = embeddedBroker(sys).stats();
    const sensorPassword = passwordOfSecret(sensor.secret);

    // ---- "Locked", said on the lock's topic by the sensor's connection ----
    const asSensor = await attackerConnect(sys.brokerUrl, {
      username: sensor.id,
      password: sensorPassword,
      clientId: sensor.id,
    });
    expect.that(asSensor.accepted, 'the sensor’s credentials connect as the sensor');
    let subscribed = false;
    let published = { closed: false, closedAfterMs: null as number | null };
    if (asSensor.accepted) {
      // Reading the lock's commands is refused first (the connection stays up for it).
      subscribed = await trySubscribe(
        asSensor.client,
        deviceTopic(creds.homeId, lock.id, 'command'),
      );
      const topic = deviceTopic(creds.homeId, lock.id, 'state');
      const now = sys.clock.now();
      const claim = sign<LockStateMessage>(Buffer.from(sensor.secret, 'base64url'), topic, {
        kind: 'lock',
        seq: now,
        at: now,
        bolt: 'locked',
        changedAt: now,
        autoRelockAt: null,
      });
      published = await publishAndWatchClose(asSensor.client, topic, JSON.stringify(claim));
    }
    expect.that(!subscribed, 'the sensor cannot subscribe to the lock’s commands');
    expect.that(
      published.closed,
      `the broker closes the connection at the publish (${published.closedAfterMs} ms)`,
    );

    // ---- The lock's client id with the sensor's password ----
    const takeover = await attackerConnect(sys.brokerUrl, {
      username: lock.id,
      password: sensorPassword,
      clientId: lock.id,
    });
    expect.that(!takeover.accepted, 'the lock’s id with the sensor’s password is refused');
    if (takeover.accepted) takeover.client.end(true);
    const stats1 = embeddedBroker(sys).stats();
    const refusals = {
      publishes: stats1.publishesRefused - stats0.publishesRefused,
      subscriptions: stats1.subscriptionsRefused - stats0.subscriptionsRefused,
      connections: stats1.connectionsRefused - stats0.connectionsRefused,
    };
    expect.that(
      refusals.publishes === 1 && refusals.subscriptions === 1 && refusals.connections === 1,
      `the broker counted one refused publish, subscription and connection (${JSON.stringify(refusals)})`,
    );

    // ---- Nothing changed in the server ----
    await sleep(500);
    const lockAfter = sys.gateway.liveStatus(lock.id)?.state ?? null;
    // The lock also repeats its state every 15 s: what counts is whose report the server holds.
    const lockOwn =
      lockAfter !== null &&
      verifyMac(
        Buffer.from(lock.secret, 'base64url'),
        deviceTopic(creds.homeId, lock.id, 'state'),
        lockAfter,
      );
    expect.that(
      lockAfter?.kind === 'lock' && lockAfter.bolt === 'unlocked' && lockOwn,
      `the server’s view of the lock is the lock’s own report (${lockAfter?.kind === 'lock' ? lockAfter.bolt : 'none'}, ${lockOwn ? 'MAC’d with the lock’s key' : 'not the lock’s'})`,
    );
    const midway = await world.session(sessionId);
    expect.that(
      midway.state === 'open' && midway.lockConfirmedAt === null,
      `the session still says open, not locked (${midway.state})`,
    );
    const fromSensor = (await sys.store.audit.entriesForSubject(`session:${sessionId}`)).filter(
      (e) => e.kind === 'device.state' && e.actor.id === sensor.id && 'bolt' in e.data,
    );
    expect.that(fromSensor.length === 0, 'no lock state is on record from the sensor');

    // ---- The courier finishes; the lock's own report completes the visit ----
    world.home.camera.setPerson(false);
    world.home.doorSensor.close();
    await sleep(600);
    const relock = await world.requestRelock(sessionId);
    expect.that(relock.status === 200, `the courier asks to lock (HTTP ${relock.status})`);
    const done = await world.waitForState(sessionId, ['completed', 'aborted', 'refused'], 10_000);
    expect.that(done.state === 'completed', `the visit completes (was ${done.state})`);
    expect.that(world.home.lock.bolt() === 'locked', 'the door is locked');
    const lockedBy = (await sys.store.audit.entriesForSubject(`session:${sessionId}`)).filter(
      (e) => e.kind === 'device.state' && e.data.bolt === 'locked',
    );
    expect.that(
      lockedBy.length >= 1 && lockedBy.every((e) => e.actor.id === lock.id),
      `"locked" is on record from the lock alone (${[...new Set(lockedBy.map((e) => e.actor.id))].join(',')})`,
    );
    return {
      session: done,
      extra: {
        refusals,
        detectionMs: published.closedAfterMs,
        lockStateUnchanged: lockOwn && lockAfter?.kind === 'lock' && lockAfter.bolt === 'unlocked',
      },
    };
  },
};
