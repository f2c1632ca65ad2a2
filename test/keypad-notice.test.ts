/**
 * The running system's own PinSync is wired: three wrong codes on the lock's keypad lock it
 * out, the owner's page is told (a `notice` event) and the attempts are audited, by slot and
 * count only.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ScenarioWorld } from '../src/harness/scenario-world.ts';

let world: ScenarioWorld;
beforeAll(async () => {
  world = await ScenarioWorld.create();
}, 60_000);
afterAll(async () => {
  await world?.close();
});

it('tells the owner of a keypad lockout and audits the wrong codes', async () => {
  const notices: { homeId: string; message: string }[] = [];
  const off = world.sys.events.subscribe((e) => {
    if (e.type === 'notice') notices.push({ homeId: e.homeId, message: e.message });
  });
  for (const code of ['111111', '222222', '333333']) world.home.lock.enterCode(code);
  await world.waitFor(() => notices.length > 0, 5_000, 'the owner is told');
  off();
  expect(notices[0]?.homeId).toBe(world.creds.homeId);
  expect(notices[0]?.message).toMatch(/keypad/i);
  const lockSubject = `device:${world.creds.devices.lock.id}`;
  await world.waitFor(
    async () =>
      (await world.sys.store.audit.entriesForSubject(lockSubject)).some(
        (e) => e.kind === 'keypad.lockout',
      ),
    5_000,
    'the lockout is audited',
  );
  const entries = await world.sys.store.audit.entriesForSubject(lockSubject);
  expect(entries.filter((e) => e.kind === 'keypad.wrong-code').length).toBeGreaterThanOrEqual(3);
  expect(JSON.stringify(entries)).not.toMatch(/111111|222222|333333/);
});
