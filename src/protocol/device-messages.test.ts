import { describe, expect, it } from 'vitest';
import {
  decodePayload,
  decodePinList,
  PIN_LIST_PAGE_SIZE,
  pinWindowFields,
  readPinWindow,
  type ChannelPayloads,
} from './device-messages.ts';
import { pinDigest, pinDigestKey } from './pin-digest.ts';

const MAC = 'A'.repeat(43);
const DIGEST = 'B'.repeat(43);
const KEY = new Uint8Array(32).fill(7);

function decode<C extends 'event' | 'command'>(channel: C, value: object) {
  return decodePayload(channel, Buffer.from(JSON.stringify(value)));
}

describe('keypad additions to the device protocol', () => {
  const event = { seq: 1, at: 1_768_478_400_000, mac: MAC };
  const command = {
    id: 'cmd-00000001',
    nonce: 'n'.repeat(24),
    issuedAt: 1_768_478_400_000,
    expiresAt: 1_768_478_410_000,
    mac: MAC,
  };

  it('keeps every earlier message valid', () => {
    expect(decode('event', { ...event, name: 'lock.manual', detail: 'locked' }).ok).toBe(true);
    expect(decode('command', { ...command, action: 'unlock', relockAfterMs: 5_000 }).ok).toBe(true);
  });

  it('takes keypad events with their typed fields, and refuses bad ones', () => {
    const ok: Partial<ChannelPayloads['event']>[] = [
      { name: 'keypad.unlocked', slot: 3 },
      { name: 'keypad.wrong-code', attempt: 2 },
      // A right code outside its window: the event names the slot.
      { name: 'keypad.wrong-code', attempt: 2, slot: 4 },
      { name: 'keypad.lockout', untilMs: 1_768_478_415_000 },
    ];
    for (const fields of ok) expect(decode('event', { ...event, ...fields }).ok).toBe(true);
    for (const fields of [
      { name: 'keypad.unlocked', slot: 0 },
      { name: 'keypad.unlocked', slot: 65_536 },
      { name: 'keypad.unlocked', slot: '3' },
      { name: 'keypad.wrong-code', attempt: 0 },
      { name: 'keypad.lockout', untilMs: 12 },
      { name: 'keypad.unlocked', slot: 3, code: '1234' },
      { name: 'keypad.opened' },
    ]) {
      expect(decode('event', { ...event, ...fields })).toMatchObject({
        ok: false,
        reason: 'schema',
      });
    }
  });

  it('takes pin commands, with codes of 4 to 10 digits only', () => {
    for (const fields of [
      { action: 'pin.set', slot: 1, code: '0000' },
      { action: 'pin.set', slot: 65_535, code: '0123456789', name: 'Cleaner' },
      { action: 'pin.clear', slot: 2 },
      { action: 'pin.list' },
      { action: 'pin.list', slot: 41 },
      { action: 'pin.set', slot: 1, code: '0000', fromMs: 0, untilMs: 0 },
      {
        action: 'pin.set',
        slot: 1,
        code: '0000',
        fromMs: 1_768_478_400_000,
        untilMs: 1_768_482_000_000,
      },
      { action: 'pin.window', slot: 3, fromMs: 0, untilMs: 1_768_482_000_000 },
      { action: 'pin.window', slot: 3 },
    ]) {
      expect(decode('command', { ...command, ...fields }).ok).toBe(true);
    }
    for (const fields of [
      { action: 'pin.set', slot: 1, code: '123' },
      { action: 'pin.set', slot: 1, code: '12345678901' },
      { action: 'pin.set', slot: 1, code: 1234 },
      { action: 'pin.set', slot: 1, code: '12 34' },
      { action: 'pin.set', slot: 1, code: '1234', name: '' },
      { action: 'pin.set', slot: 1, code: '1234', name: 'x'.repeat(33) },
      { action: 'pin.clear', slot: 0 },
      { action: 'pin.forget', slot: 1 },
      { action: 'pin.window', slot: 3, fromMs: -1, untilMs: 5 },
      { action: 'pin.window', slot: 3, fromMs: 0.5, untilMs: 5 },
      { action: 'pin.window', slot: 3, fromMs: '0', untilMs: 5 },
      { action: 'pin.window', slot: 3, fromMs: 0, untilMs: 7_258_118_400_001 },
    ]) {
      const r = decode('command', { ...command, ...fields });
      expect(r).toMatchObject({ ok: false, reason: 'schema' });
      // The refusal says what is wrong, never what the code was.
      if (!r.ok && 'code' in fields) expect(r.detail).not.toContain(String(fields.code));
    }
  });

  it('reads pin.list data only when it is well formed and ascending', () => {
    const entry = (slot: number) => ({ slot, set: true, digest: DIGEST });
    expect(decodePinList({ capacity: 30, slots: [entry(1), entry(7)], next: null })).not.toBeNull();
    expect(decodePinList({ capacity: 30, slots: [], next: 41 })).not.toBeNull();
    const full = Array.from({ length: PIN_LIST_PAGE_SIZE }, (_, i) => entry(i + 1));
    expect(decodePinList({ capacity: 30, slots: full, next: null })).not.toBeNull();
    const windowed = { ...entry(2), fromMs: 0, untilMs: 1_768_482_000_000 };
    expect(decodePinList({ capacity: 30, slots: [windowed], next: null })?.slots).toEqual([
      windowed,
    ]);
    for (const bad of [
      { capacity: 30, slots: [entry(7), entry(1)], next: null },
      { capacity: 30, slots: [entry(7), entry(7)], next: null },
      { capacity: 30, slots: [{ slot: 1, set: false, digest: DIGEST }], next: null },
      { capacity: 30, slots: [{ slot: 1, set: true, digest: 'short' }], next: null },
      { capacity: 30, slots: [{ ...entry(1), code: '1234' }], next: null },
      // Half a window, or one that ends before it starts, is not believed.
      { capacity: 30, slots: [{ ...entry(1), fromMs: 5 }], next: null },
      { capacity: 30, slots: [{ ...entry(1), untilMs: 5 }], next: null },
      { capacity: 30, slots: [{ ...entry(1), fromMs: 6, untilMs: 5 }], next: null },
      { capacity: 0, slots: [], next: null },
      {
        capacity: 30,
        slots: Array.from({ length: PIN_LIST_PAGE_SIZE + 1 }, (_, i) => entry(i + 1)),
        next: null,
      },
      { capacity: 30, slots: [] },
      null,
      'slots',
    ]) {
      expect(decodePinList(bad)).toBeNull();
    }
  });

  it('reads a window as both bounds or neither, never ending before it starts', () => {
    expect(readPinWindow({})).toEqual({ ok: true, window: null });
    expect(readPinWindow({ fromMs: 3, untilMs: 3 })).toEqual({
      ok: true,
      window: { fromMs: 3, untilMs: 3 },
    });
    expect(readPinWindow({ fromMs: 3 })).toMatchObject({ ok: false });
    expect(readPinWindow({ untilMs: 3 })).toMatchObject({ ok: false });
    expect(readPinWindow({ fromMs: 4, untilMs: 3 })).toMatchObject({ ok: false });
    expect(pinWindowFields(null)).toEqual({});
    expect(pinWindowFields({ fromMs: 1, untilMs: 2 })).toEqual({ fromMs: 1, untilMs: 2 });
  });

  it('makes PIN digests with their own key, bound to slot and code', () => {
    const d = pinDigest(KEY, 3, '482915');
    expect(d).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(pinDigest(KEY, 3, '482915')).toBe(d);
    expect(pinDigest(KEY, 4, '482915')).not.toBe(d);
    expect(pinDigest(KEY, 3, '482916')).not.toBe(d);
    expect(pinDigest(new Uint8Array(32).fill(8), 3, '482915')).not.toBe(d);
    // The separator keeps slot 31 with code 2345 apart from slot 3 with code 12345.
    expect(pinDigest(KEY, 31, '2345')).not.toBe(pinDigest(KEY, 3, '12345'));
    expect(pinDigestKey(KEY)).not.toEqual(Buffer.from(KEY));
  });
});

describe('hub additions to the device protocol', () => {
  const event = { seq: 1, at: 1_768_478_400_000, mac: MAC };

  it('takes the hub events, with their detail, and nothing else under hub.', () => {
    for (const name of [
      'hub.relocked',
      'hub.relock-failed',
      'hub.dead-man',
      'hub.cut-off',
      'hub.observed',
    ]) {
      const detail = JSON.stringify({ hubAt: 1_768_478_300_000, hubSeq: 4, why: 'deadline' });
      expect(decode('event', { ...event, name, detail }).ok).toBe(true);
    }
    expect(decode('event', { ...event, name: 'hub.unlocked' })).toMatchObject({
      ok: false,
      reason: 'schema',
    });
    expect(
      decode('event', { ...event, name: 'hub.dead-man', detail: 'x'.repeat(257) }),
    ).toMatchObject({ ok: false, reason: 'schema' });
  });
});
