/**
 * hub-dead-man — the jammer takes the home's Wi-Fi: the camera goes silent and the control
 * plane is unreachable, so only the hub can notice.
 *
 * Given the demo door bridged by a home hub and a courier inside with the door open,
 * when the hub's uplink is cut and the camera drops off the network at the same time,
 * then the hub's dead-man's switch trips within 2.5 s of the camera's last frame (it watches the
 * frames it receives itself), the bolt stays drawn while the door is open and is thrown as soon
 * as the door closes, the hub refuses any further unlock of that session, and when the link
 * returns the alarm reaches the control plane's audit log, where the owner reads it in the
 * home's audit export.
 */
import type { Scenario } from '../scenario.ts';
import { sleep } from '../scenario-world.ts';
import { call } from './common-steps.ts';
import { auditedHubEvents, eventually, withHubHome } from './hub-home.ts';

export const hubDeadMan: Scenario = {
  name: 'hub-dead-man',
  expected:
    "camera silent and control plane unreachable: the hub's dead-man's switch locks once the door closes; the alarm reaches the owner when the link returns",
  world: { maxOpenMs: 120_000 },
  story: ({ world, expect }) =>
    withHubHome(world, { cutOffMs: 60_000 }, async (home) => {
      const deliveryId = await world.newDelivery();
      const access = await world.requestAccess(deliveryId);
      expect.that(access.status === 200, `the door opens through the hub (HTTP ${access.status})`);
      const sessionId = (access.body.session as { id?: string } | undefined)?.id ?? null;
      if (access.status !== 200 || sessionId === null) return { session: null };
      home.door.open();
      await sleep(500);

      // The jammer: the hub's uplink and the camera go at once.
      home.hub.cutUplink();
      const lastFrameAt = home.camera.latest()?.receivedAt ?? Date.now();
      home.camera.setAvailable(false);
      const tripped = await eventually(
        () => home.hub.log.unsent().some((f) => f.name === 'hub.dead-man'),
        6_000,
      );
      const alarm = home.hub.log.unsent().find((f) => f.name === 'hub.dead-man');
      const detectionMs = alarm === undefined ? null : alarm.at - lastFrameAt;
      expect.that(tripped, "the hub's dead-man's switch trips");
      expect.that(
        detectionMs !== null && detectionMs <= 2_500,
        `within 2.5 s of the camera's last frame (took ${detectionMs} ms)`,
      );
      await sleep(1_000);
      expect.that(
        home.lock.actualBolt() === 'unlocked',
        `no bolt is thrown into the open door (${home.lock.actualBolt()})`,
      );

      home.door.close();
      const closedAt = Date.now();
      const locked = await eventually(() => home.lock.actualBolt() === 'locked', 3_000);
      const relockMs = Date.now() - closedAt;
      expect.that(locked, `the hub locks once the door closes (${home.lock.actualBolt()})`);
      const refusal = home.hub.guard(world.creds.doorId).unlockRefusal(sessionId);
      expect.that(refusal !== null, 'the hub refuses any further unlock of the session');

      // The link and the camera come back.
      home.camera.setAvailable(true);
      home.hub.restoreUplink();
      const arrived = await eventually(
        async () => (await auditedHubEvents(world.sys)).some((e) => e.name === 'hub.dead-man'),
        10_000,
      );
      expect.that(arrived, "the hub's alarm reaches the audit log when the link returns");

      // The owner reads it in the home's audit export.
      const signIn = await call(world, 'POST', '/api/auth/sign-in', null, {
        username: world.creds.owner.username,
        password: world.creds.owner.password,
      });
      const token = String(signIn.body.token);
      const exported = await call(world, 'GET', `/api/homes/${world.creds.homeId}/audit`, token);
      const entries = (exported.body.entries ?? []) as {
        kind?: string;
        data?: { name?: string };
      }[];
      expect.that(
        entries.some((e) => e.kind === 'device.event' && e.data?.name === 'hub.dead-man'),
        `the owner's audit export holds the alarm (HTTP ${exported.status})`,
      );
      await sleep(500);
      return {
        session: await world.session(sessionId),
        extra: {
          detectionMs,
          relockAfterDoorClosedMs: relockMs,
          hubEvents: (await auditedHubEvents(world.sys)).map((e) => e.name),
        },
      };
    }),
};
