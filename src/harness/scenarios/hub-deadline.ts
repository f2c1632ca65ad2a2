/**
 * hub-deadline — the control plane goes away mid-session and the door must still relock on
 * time (principle 2: the deadline is enforced by the part closest to the door).
 *
 * Given the demo door bridged by a home hub (its lock, sensor and camera are the hub's devices)
 * and a courier inside with the door unlocked until a 4 s deadline,
 * when the hub loses the control plane (its uplink is cut: from the hub's side the same as a
 * stopped control plane; test/hub.test.ts also stops the control plane for real) and the
 * courier keeps the door open past the deadline, then closes it,
 * then the hub does not throw the bolt into the open door, throws it as soon as the door is
 * closed, records the relock in its hash-chained log, and when the link returns the relock
 * reaches the control plane's audit log with the hub's own time of it.
 */
import type { Scenario } from '../scenario.ts';
import { sleep } from '../scenario-world.ts';
import { auditedHubEvents, eventually, withHubHome } from './hub-home.ts';

const MAX_OPEN_MS = 4_000;

export const hubDeadline: Scenario = {
  name: 'hub-deadline',
  expected:
    'control plane unreachable: the hub relocks at the deadline once the door is closed; the relock reaches the audit log when the link returns',
  world: { maxOpenMs: MAX_OPEN_MS },
  story: ({ world, expect }) =>
    withHubHome(world, { cutOffMs: 60_000 }, async (home) => {
      const deliveryId = await world.newDelivery();
      const access = await world.requestAccess(deliveryId);
      expect.that(access.status === 200, `the door opens through the hub (HTTP ${access.status})`);
      const sessionId = (access.body.session as { id?: string } | undefined)?.id ?? null;
      if (access.status !== 200 || sessionId === null) return { session: null };
      const deadline = home.hub.guard(world.creds.doorId).relockAt();
      expect.that(deadline !== null, 'the hub holds the session’s deadline');
      if (deadline === null) return { session: await world.session(sessionId) };

      // The courier walks in; the home loses the control plane.
      home.door.open();
      home.hub.cutUplink();
      await eventually(() => Date.now() >= deadline + 1_000, MAX_OPEN_MS + 2_000);
      const boltWhileOpen = home.lock.actualBolt();
      expect.that(
        boltWhileOpen === 'unlocked',
        `no bolt is thrown into the open door (${boltWhileOpen})`,
      );

      home.door.close();
      const closedAt = Date.now();
      const relocked = await eventually(() => home.lock.actualBolt() === 'locked', 3_000);
      const relockMs = Date.now() - closedAt;
      expect.that(relocked, `the hub relocks once the door is closed (${home.lock.actualBolt()})`);
      expect.that(relockMs < 1_500, `within 1.5 s of the door closing (took ${relockMs} ms)`);
      expect.that(!home.hub.isConnected(), 'all of it while cut off from the control plane');
      const fact = home.hub.log.unsent().find((f) => f.name === 'hub.relocked');
      expect.that(fact?.why === 'deadline', `the hub's log holds the relock (${fact?.why})`);

      // The link returns.
      home.hub.restoreUplink();
      const arrived = await eventually(
        async () => (await auditedHubEvents(world.sys)).some((e) => e.name === 'hub.relocked'),
        10_000,
      );
      expect.that(arrived, 'the relock reaches the audit log when the link returns');
      const audited = (await auditedHubEvents(world.sys)).find((e) => e.name === 'hub.relocked');
      expect.that(
        audited !== undefined && fact !== undefined && audited.detail.hubAt === fact.at,
        'with the hub’s own time of the relock',
      );
      await eventually(() => home.hub.log.unsent().length === 0, 5_000);
      expect.that(home.hub.log.unsent().length === 0, 'the hub marks its log sent');
      // Give the control plane a moment to settle the session with the lock's report.
      await sleep(500);
      return {
        session: await world.session(sessionId),
        extra: {
          relockAfterDoorClosedMs: relockMs,
          hubEvents: (await auditedHubEvents(world.sys)).map((e) => e.name),
        },
      };
    }),
};
