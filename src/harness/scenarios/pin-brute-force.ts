/**
 * pin-brute-force — someone at the keypad guesses codes.
 *
 * Given a guest with a keypad code the owner gave them (written to the lock and confirmed by the
 * lock's keyed read-back),
 * when three wrong codes are typed in a row,
 * then the keypad takes no codes for at least 15 s — the right one included — the owner is told
 * (a `notice` event), the three attempts and the lockout are on record, and no code appears
 * anywhere in the audit log; once the lockout is over, the right code opens the door.
 *
 * The code is chosen by the owner here (10 digits) so that the leak check cannot match a
 * timestamp or a hash by chance, as a short generated code could.
 */
import { randomInt } from 'node:crypto';
import type { Scenario } from '../scenario.ts';
import { sleep } from '../scenario-world.ts';
import { call, inviteGuest, signInOwner } from './common-steps.ts';

/** A random 10-digit code that does not start with 0 (kept as typed). */
const tenDigits = (): string => String(randomInt(1_000_000_000, 10_000_000_000));

export const pinBruteForce: Scenario = {
  name: 'pin-brute-force',
  expected:
    '3 wrong codes → keypad locked out ≥ 15 s (right code ignored), owner notified, attempts audited without codes; then the right code opens',
  async story({ world, expect }) {
    const notices: { message: string; at: number }[] = [];
    const off = world.sys.events.subscribe((e) => {
      if (e.type === 'notice' && e.homeId === world.creds.homeId)
        notices.push({ message: e.message, at: e.at });
    });
    try {
      const { homeId } = world.creds;
      const lockId = world.creds.devices.lock.id;
      const owner = await signInOwner(world);
      const guest = await inviteGuest(world, owner, 'Cleaner', { kind: 'always' });

      // ---- The owner gives the guest a code; the lock confirms it holds it ----
      const code = tenDigits();
      const put = await call(world, 'PUT', `/api/homes/${homeId}/locks/${lockId}/pins/4`, owner, {
        principalId: guest.guestId,
        name: 'Cleaner',
        code,
      });
      expect.that(put.status === 200, `the owner gives the guest a code (HTTP ${put.status})`);
      expect.that(put.body.code === code, 'the answer gives the code once, as chosen');
      const slotSync = async () =>
        (
          (await call(world, 'GET', `/api/homes/${homeId}/locks/${lockId}/pins`, owner)).body
            .slots as { slot: number; sync: string }[] | undefined
        )?.find((s) => s.slot === 4)?.sync;
      await world.waitFor(
        async () => (await slotSync()) === 'confirmed',
        10_000,
        'slot 4 confirmed',
      );

      // ---- Three wrong codes ----
      // Near misses: the code with its last digit wrong.
      const wrong = [1, 2, 3].map(
        (i) => code.slice(0, -1) + String((Number(code.at(-1)) + i) % 10),
      );
      const outcomes = wrong.slice(0, 2).map((c) => world.home.lock.enterCode(c));
      // Read before the third code: the lockout runs from it, so its length is a lower bound.
      const lockoutAt = world.sys.clock.now();
      const last = world.home.lock.enterCode(wrong[2]!);
      outcomes.push(last);
      const lockedOutUntil = last.result === 'wrong-code' ? last.lockedOutUntil : null;
      const lockoutMs = lockedOutUntil === null ? null : lockedOutUntil - lockoutAt;
      expect.that(
        outcomes.every((o) => o.result === 'wrong-code'),
        `each wrong code is refused (${outcomes.map((o) => o.result).join(', ')})`,
      );
      expect.that(
        lockoutMs !== null && lockoutMs >= 15_000,
        `the third wrong code locks the keypad out for at least 15 s (${lockoutMs} ms)`,
      );

      // ---- The right code is ignored during the lockout ----
      const during = world.home.lock.enterCode(code);
      expect.that(during.result === 'ignored', `the right code is ignored (${during.result})`);
      await sleep(500);
      expect.that(world.home.lock.bolt() === 'locked', 'the door stays locked during the lockout');

      // ---- The owner is told; the attempts are on record ----
      await world
        .waitFor(() => notices.length > 0, 5_000, 'the owner is told')
        .catch(() => undefined);
      expect.that(
        notices.some((n) => n.message.includes('wrong codes')),
        `the owner gets a notice of the lockout (${notices.map((n) => n.message).join(' | ')})`,
      );
      const countKinds = async () => {
        const kinds = new Map<string, number>();
        for await (const e of world.sys.store.audit.iterate())
          kinds.set(e.kind, (kinds.get(e.kind) ?? 0) + 1);
        return kinds;
      };
      await world
        .waitFor(
          async () => ((await countKinds()).get('keypad.lockout') ?? 0) >= 1,
          5_000,
          'the lockout is audited',
        )
        .catch(() => undefined);
      const kinds = await countKinds();
      expect.that(
        kinds.get('keypad.wrong-code') === 3,
        `three keypad.wrong-code entries (${kinds.get('keypad.wrong-code') ?? 0})`,
      );
      expect.that(
        kinds.get('keypad.lockout') === 1,
        `one keypad.lockout entry (${kinds.get('keypad.lockout') ?? 0})`,
      );

      // ---- Just before the lockout ends, the right code is still ignored ----
      if (lockedOutUntil !== null)
        await sleep(Math.max(0, lockedOutUntil - world.sys.clock.now() - 500));
      const late = world.home.lock.enterCode(code);
      const lateAtMs = world.sys.clock.now() - lockoutAt;
      expect.that(
        late.result === 'ignored',
        `${lateAtMs} ms into the lockout the right code is still ignored (${late.result})`,
      );
      expect.that(world.home.lock.bolt() === 'locked', 'the door is still locked');

      // ---- Wait the lockout out; the right code opens ----
      await world.waitFor(
        () => world.home.lock.keypadLockedUntil() === null,
        (lockoutMs ?? 15_000) + 2_000,
        'the lockout ends',
      );
      const waitedMs = world.sys.clock.now() - lockoutAt;
      const after = world.home.lock.enterCode(code);
      expect.that(
        after.result === 'unlocked',
        `after the lockout the right code opens (${after.result})`,
      );
      await world
        .waitFor(() => world.home.lock.bolt() === 'unlocked', 5_000, 'the bolt is drawn')
        .catch(() => undefined);
      expect.that(world.home.lock.bolt() === 'unlocked', 'the door unlocks for the right code');
      await world
        .waitFor(
          async () =>
            (await world.sys.store.audit.entriesForSubject(`device:${lockId}`)).some(
              (e) => e.kind === 'keypad.unlocked',
            ),
          5_000,
          'the opening is audited',
        )
        .catch(() => undefined);
      let opened = null as Record<string, unknown> | null;
      for await (const e of world.sys.store.audit.iterate())
        if (e.kind === 'keypad.unlocked') opened = e.data;
      expect.that(
        opened?.slot === 4 && opened.principalId === guest.guestId,
        `the opening is on record with slot 4 and the guest (${JSON.stringify(opened)})`,
      );
      // Lock up again, as the guest would on leaving.
      await call(world, 'POST', `/api/homes/${homeId}/doors/${world.creds.doorId}/command`, owner, {
        action: 'lock',
      });
      await world
        .waitFor(() => world.home.lock.bolt() === 'locked', 5_000, 'locked again')
        .catch(() => undefined);
      expect.that(world.home.lock.bolt() === 'locked', 'the door is locked again');

      // ---- No code anywhere in the audit log ----
      const codes = [code, ...wrong];
      let entries = 0;
      const leaks: string[] = [];
      for await (const e of world.sys.store.audit.iterate()) {
        entries += 1;
        const text = JSON.stringify(e);
        for (const c of codes) if (text.includes(c)) leaks.push(`${e.kind}#${e.seq}`);
      }
      expect.that(
        leaks.length === 0,
        `no code appears in the audit log (found in: ${leaks.join(', ') || 'none'})`,
      );
      expect.that(
        notices.every((n) => codes.every((c) => !n.message.includes(c))),
        'no code appears in what the owner is told',
      );

      return {
        session: null,
        extra: {
          lockoutMs,
          waitedMs,
          ignoredDuringLockout: during.result === 'ignored',
          stillIgnoredAtMs: late.result === 'ignored' ? lateAtMs : null,
          notices: notices.map((n) => n.message),
          wrongCodeEntries: kinds.get('keypad.wrong-code') ?? 0,
          lockoutEntries: kinds.get('keypad.lockout') ?? 0,
          auditEntriesChecked: entries,
          codeLeaks: leaks.length,
        },
      };
    } finally {
      off();
    }
  },
};
