/**
 * The running system's own PinSync is wired: three wrong codes on the lock's keypad lock it
 * out, the owner's page is told (a `notice` event) and the attempts are audited, by slot and
 * count only; a guest's code typed outside their hours is told and audited the same way.
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

it('tells the owner when a guest’s code is entered outside their hours, and audits it by slot', async () => {
  // A world of its own: the keypad of the first one may still be locked out.
  const fresh = await ScenarioWorld.create();
  try {
    await outsideHours(fresh);
  } finally {
    await fresh.close();
  }
}, 60_000);

/** Given a guest whose only visit is a week away and who has a code, when it is typed now… */
async function outsideHours(w: ScenarioWorld): Promise<void> {
  const { sys } = w;
  const lockId = w.creds.devices.lock.id;
  const owner = await sys.store.principals.getByUsername(w.creds.owner.username);
  const guest = {
    id: 'guest-nora',
    role: 'guest',
    displayName: 'Nora',
    homeId: w.creds.homeId,
    carrierId: null,
  } as const;
  await sys.store.principals.create(guest, { username: 'nora', passwordHash: 'unused' });
  // Her only access is a visit a week from now: the lock holds her code, never valid before.
  const inAWeek = sys.clock.now() + 7 * 24 * 3_600_000;
  const local = (ms: number) =>
    new Intl.DateTimeFormat('sv-SE', {
      timeZone: 'Europe/Berlin',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
    })
      .format(ms)
      .replace(' ', 'T');
  await sys.store.guestGrants.create({
    id: 'grant-nora',
    homeId: w.creds.homeId,
    doorId: w.creds.doorId,
    principalId: guest.id,
    grantedBy: owner!.principal.id,
    schedule: { kind: 'one-time', from: local(inAWeek), until: local(inAWeek + 3_600_000) },
    limits: { maxUses: null, maxMinutesPerEntry: null, requiresRecording: true },
    uses: 0,
    createdAt: sys.clock.now(),
    revokedAt: null,
    revokedBy: null,
    revokeReason: null,
  });
  const assigned = await sys.pins.assign(lockId, 7, '7315946028', {
    principalId: guest.id,
    name: 'Nora',
  });
  expect(assigned.ok).toBe(true);
  expect(await sys.pins.settled(lockId, 7)).toMatchObject({
    sync: 'confirmed',
    window: { fromMs: 0, untilMs: 0 },
  });
  const notices: string[] = [];
  const off = sys.events.subscribe((e) => {
    if (e.type === 'notice') notices.push(e.message);
  });
  expect(w.home.lock.enterCode('7315946028').result).toBe('wrong-code');
  await w.waitFor(() => notices.length > 0, 5_000, 'the owner is told');
  off();
  expect(notices).toContain("Nora's code was entered outside their hours on Front door lock.");
  const lockSubject = `device:${lockId}`;
  await w.waitFor(
    async () =>
      (await sys.store.audit.entriesForSubject(lockSubject)).some(
        (e) => e.kind === 'keypad.outside-window',
      ),
    5_000,
    'the attempt is audited',
  );
  const entries = await sys.store.audit.entriesForSubject(lockSubject);
  expect(entries.find((e) => e.kind === 'keypad.outside-window')?.data).toMatchObject({
    slot: 7,
    principalId: guest.id,
  });
  expect(JSON.stringify(entries)).not.toContain('7315946028');
}
