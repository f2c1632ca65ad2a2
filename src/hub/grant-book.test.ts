import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FakeClock } from '../core/clock.ts';
import type { DeviceLogger } from '../devices/device-connection.ts';
import type { GrantListMessage } from '../protocol/grant-list.ts';
import { payloadOf, testGrantSigner } from '../../test/grant-lists.ts';
import { GrantBook } from './grant-book.ts';

const HOME = 'home-1';
const LOCK = 'lock-1';
const MAX_AGE = 900_000;
const DELIVERY = {
  grantId: 'grant-d1',
  deliveryId: 'delivery-1',
  courierId: 'courier-1',
  fromMs: 0,
  untilMs: 1,
};

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'grant-book-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** A logger that keeps what was said at warn and error. */
function recordingLogger() {
  const said: { level: string; msg: string; obj: object }[] = [];
  const at =
    (level: string) =>
    (obj: object, msg: string): void => {
      said.push({ level, msg, obj });
    };
  const logger: DeviceLogger = {
    debug: () => {},
    info: () => {},
    warn: at('warn'),
    error: at('error'),
  };
  return { said, logger };
}

function setup(
  opts: { publicKey?: string | null; clock?: FakeClock; statePath?: string | null } = {},
) {
  const signer = testGrantSigner({ homeId: HOME, lockId: LOCK });
  const clock = opts.clock ?? new FakeClock();
  const { said, logger } = recordingLogger();
  const make = (publicKey: string | null = signer.publicKey) =>
    new GrantBook({
      homeId: HOME,
      lockId: LOCK,
      publicKey,
      maxAgeMs: MAX_AGE,
      clock,
      statePath: opts.statePath === undefined ? join(dir, `grants-${LOCK}.json`) : opts.statePath,
      logger,
    });
  const book = make(opts.publicKey === undefined ? signer.publicKey : opts.publicKey);
  const taken: number[] = [];
  book.onList((l) => taken.push(l.version));
  return { signer, clock, said, book, taken, make };
}

describe('GrantBook', () => {
  it('takes a signed list for its lock, and only a strictly newer one after it', () => {
    const { signer, clock, book, taken } = setup();
    const now = clock.now();
    expect(book.current()).toBeNull();
    expect(book.take(payloadOf(signer.list({ version: 5, issuedAtMs: now })))).toEqual({
      taken: true,
      version: 5,
    });
    expect(book.current()?.version).toBe(5);
    // The retained list again (a reconnection), then an old one replayed: nothing changes.
    expect(book.take(payloadOf(signer.list({ version: 5, issuedAtMs: now }))).taken).toBe(false);
    const replayed = signer.list({ version: 4, issuedAtMs: now, deliveries: [DELIVERY] });
    expect(book.take(payloadOf(replayed))).toEqual({
      taken: false,
      reason: 'version 4 is not newer than 5',
    });
    expect(book.delivery(DELIVERY.grantId)).toBeNull();
    // Parsed JSON works as bytes do.
    expect(book.take(signer.list({ version: 7, issuedAtMs: now, deliveries: [DELIVERY] }))).toEqual(
      { taken: true, version: 7 },
    );
    expect(book.delivery(DELIVERY.grantId)).toEqual(DELIVERY);
    expect(taken).toEqual([5, 7]);
  });

  it('refuses a list signed with another key, for another lock or home, tampered or garbled, and keeps the one it had', () => {
    const { signer, clock, said, book, taken } = setup();
    const now = clock.now();
    book.take(payloadOf(signer.list({ version: 1, issuedAtMs: now })));
    const stranger = testGrantSigner({ homeId: HOME, lockId: LOCK });
    const tampered = signer.list({ version: 3, issuedAtMs: now });
    const tamperedList: GrantListMessage = { ...tampered.list, deliveries: [DELIVERY] };
    const cases: [string, unknown][] = [
      ['bad signature', payloadOf(stranger.list({ version: 2, issuedAtMs: now }))],
      [
        'for home-1/lock-2, not this lock',
        payloadOf(signer.list({ version: 2, issuedAtMs: now, lockId: 'lock-2' })),
      ],
      [
        'for home-2/lock-1, not this lock',
        payloadOf(signer.list({ version: 2, issuedAtMs: now, homeId: 'home-2' })),
      ],
      ['bad signature', payloadOf({ ...tampered, list: tamperedList })],
      ['not JSON', Buffer.from('{"list":')],
      ['too large (65537 bytes)', Buffer.alloc(64 * 1024 + 1, 0x20)],
    ];
    for (const [reason, payload] of cases) {
      expect(book.take(payload)).toEqual({ taken: false, reason });
    }
    expect(
      book.take({ list: signer.list({ version: 2 }).list, sig: 'x' }).taken,
      'a schema error',
    ).toBe(false);
    expect(book.current()?.version).toBe(1);
    expect(book.delivery(DELIVERY.grantId)).toBeNull();
    expect(taken).toEqual([1]);
    // Each refusal is logged with its reason.
    const reasons = said
      .filter((s) => s.msg.startsWith('grant list refused'))
      .map((s) => (s.obj as { reason: string }).reason);
    expect(reasons).toEqual([
      ...cases.map(([reason]) => reason),
      expect.stringMatching(/^does not match the schema/),
    ]);
    // The file still holds version 1.
    const kept = JSON.parse(readFileSync(join(dir, `grants-${LOCK}.json`), 'utf8')) as {
      list: GrantListMessage;
    };
    expect(kept.list.version).toBe(1);
  });

  it('without a key takes nothing and lets no courier in', () => {
    const { signer, clock, book } = setup({ publicKey: null });
    expect(book.hasKey()).toBe(false);
    expect(book.take(payloadOf(signer.list({ version: 1, deliveries: [DELIVERY] }))).taken).toBe(
      false,
    );
    expect(book.courierCheck(DELIVERY.grantId, clock.now())).toEqual({
      ok: false,
      code: 'grants.none',
      message: 'the hub has no grant key configured, so it lets no courier in',
    });
  });

  it('keeps the last list on disk (0600), and after a restart verifies it again', () => {
    const { signer, clock, book, make, said } = setup();
    const path = join(dir, `grants-${LOCK}.json`);
    book.take(
      payloadOf(signer.list({ version: 9, issuedAtMs: clock.now(), deliveries: [DELIVERY] })),
    );
    expect(statSync(path).mode & 0o777).toBe(0o600);

    const again = make();
    expect(again.current()?.version).toBe(9);
    expect(again.delivery(DELIVERY.grantId)).toEqual(DELIVERY);
    // An older list is still an older list after the restart.
    expect(again.take(payloadOf(signer.list({ version: 8 }))).taken).toBe(false);
    // Another control plane's key: the file does not verify, and is ignored.
    expect(make(testGrantSigner({ homeId: HOME, lockId: LOCK }).publicKey).current()).toBeNull();

    // Someone edits the file to add a delivery: refused, logged, ignored.
    const kept = JSON.parse(readFileSync(path, 'utf8')) as { list: GrantListMessage; sig: string };
    kept.list.deliveries.push({ ...DELIVERY, grantId: 'grant-forged' });
    writeFileSync(path, JSON.stringify(kept));
    said.length = 0;
    const edited = make();
    expect(edited.current()).toBeNull();
    expect(edited.delivery('grant-forged')).toBeNull();
    expect(said).toEqual([
      expect.objectContaining({
        level: 'error',
        msg: expect.stringMatching(/^kept grant list refused/) as unknown,
        obj: expect.objectContaining({ reason: 'bad signature' }) as unknown,
      }),
    ]);
    // A garbled file likewise; the next good list replaces it.
    writeFileSync(path, '{"list":');
    const garbled = make();
    expect(garbled.current()).toBeNull();
    expect(garbled.take(payloadOf(signer.list({ version: 1 }))).taken).toBe(true);
    expect(make().current()?.version).toBe(1);
  });

  it('is fresh up to its bound and stale just past it; its age is never negative', () => {
    const { signer, clock, book } = setup();
    const issued = clock.now();
    expect(book.ageMs(issued)).toBeNull();
    expect(book.isFresh(issued)).toBe(false);
    book.take(payloadOf(signer.list({ version: 1, issuedAtMs: issued, deliveries: [DELIVERY] })));
    expect(book.ageMs(issued - 5_000)).toBe(0);
    expect(book.ageMs(issued + 1_234)).toBe(1_234);
    expect(book.isFresh(issued + MAX_AGE)).toBe(true);
    expect(book.isFresh(issued + MAX_AGE + 1)).toBe(false);
    expect(book.courierCheck(DELIVERY.grantId, issued + MAX_AGE)).toEqual({
      ok: true,
      delivery: DELIVERY,
    });
    expect(book.courierCheck(DELIVERY.grantId, issued + MAX_AGE + 1)).toEqual({
      ok: false,
      code: 'grants.stale',
      message: 'grant list 901 s old (bound 900 s)',
    });
    expect(book.courierCheck('grant-other', issued)).toEqual({
      ok: false,
      code: 'grants.not-listed',
      message: 'grant grant-other is not in the grant list (version 1)',
    });
    expect(book.courierCheck(null, issued)).toMatchObject({ code: 'grants.not-listed' });
  });

  it('says when no list came yet', () => {
    const { clock, book } = setup({ statePath: null });
    expect(book.courierCheck(DELIVERY.grantId, clock.now())).toEqual({
      ok: false,
      code: 'grants.none',
      message: 'the hub has received no grant list from the control plane',
    });
  });

  it('waits for a list naming a grant: at once when held, when it arrives, or gives up', async () => {
    const { signer, clock, book } = setup();
    const results: boolean[] = [];
    const waiting = book.waitForGrant(DELIVERY.grantId, 3_000).then((r) => results.push(r));
    // A list that does not name it does not end the wait.
    book.take(payloadOf(signer.list({ version: 1 })));
    clock.advance(1_000);
    await Promise.resolve();
    expect(results).toEqual([]);
    book.take(payloadOf(signer.list({ version: 2, deliveries: [DELIVERY] })));
    await waiting;
    expect(results).toEqual([true]);
    expect(await book.waitForGrant(DELIVERY.grantId, 3_000)).toBe(true);

    const late = book.waitForGrant('grant-late', 3_000);
    clock.advance(2_999);
    clock.advance(1);
    expect(await late).toBe(false);
    expect(clock.pending()).toBe(0);

    const stopped = book.waitForGrant('grant-late', 3_000);
    book.stop();
    expect(await stopped).toBe(false);
    expect(clock.pending()).toBe(0);
  });
});
