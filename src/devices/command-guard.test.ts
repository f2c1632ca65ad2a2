import { describe, expect, it } from 'vitest';
import { FakeClock } from '../core/clock.ts';
import { sign } from '../protocol/device-auth.ts';
import type { CommandMessage } from '../protocol/device-messages.ts';
import { deviceTopic } from '../protocol/topics.ts';
import { CommandGuard, type CommandGuardOptions } from './command-guard.ts';

const KEY = new Uint8Array(32).fill(7);
const OTHER_KEY = new Uint8Array(32).fill(9);
const TOPIC = deviceTopic('home-1', 'lock-1', 'command');
const MIN = 60_000;

let counter = 0;
function command(
  clock: FakeClock,
  fields: Partial<Omit<CommandMessage, 'mac'>> = {},
  key: Uint8Array = KEY,
): Uint8Array {
  counter += 1;
  const now = clock.now();
  const body = {
    id: `cmd-${String(counter).padStart(6, '0')}`,
    nonce: `nonce-${String(counter).padStart(16, '0')}`,
    issuedAt: now,
    expiresAt: now + 30_000,
    action: 'lock' as const,
    ...fields,
  };
  return Buffer.from(JSON.stringify(sign<CommandMessage>(key, TOPIC, body)));
}

function guardWith(clock: FakeClock, extra: Partial<CommandGuardOptions> = {}): CommandGuard {
  return new CommandGuard({ deviceKey: KEY, clock, ...extra });
}

describe('CommandGuard', () => {
  it('accepts an authentic, fresh command once', () => {
    const clock = new FakeClock();
    const guard = guardWith(clock);
    const payload = command(clock, { action: 'unlock', relockAfterMs: 5_000 });
    const verdict = guard.check(TOPIC, payload);
    expect(verdict.ok).toBe(true);
    if (verdict.ok) expect(verdict.command.relockAfterMs).toBe(5_000);
    expect(guard.stats().accepted).toBe(1);
  });

  it('refuses a command signed with another key as bad-mac', () => {
    const clock = new FakeClock();
    const verdict = guardWith(clock).check(TOPIC, command(clock, { id: 'forged-01' }, OTHER_KEY));
    expect(verdict).toMatchObject({ ok: false, code: 'command.bad-mac', id: 'forged-01' });
  });

  it('refuses a command signed for another device (the MAC binds the topic)', () => {
    const clock = new FakeClock();
    const payload = command(clock);
    const verdict = guardWith(clock).check(deviceTopic('home-1', 'lock-2', 'command'), payload);
    expect(verdict).toMatchObject({ ok: false, code: 'command.bad-mac' });
  });

  it('refuses a tampered command as bad-mac', () => {
    const clock = new FakeClock();
    const original = JSON.parse(Buffer.from(command(clock)).toString()) as CommandMessage;
    const tampered = Buffer.from(JSON.stringify({ ...original, action: 'unlock' }));
    expect(guardWith(clock).check(TOPIC, tampered)).toMatchObject({ code: 'command.bad-mac' });
  });

  it('refuses a command whose expiry passed more than the skew ago, not one within it', () => {
    const clock = new FakeClock();
    const guard = guardWith(clock, { skewToleranceMs: 5 * MIN });
    const within = command(clock);
    const beyond = command(clock);
    clock.advance(30_000 + 5 * MIN);
    expect(guard.check(TOPIC, within).ok).toBe(true);
    clock.advance(1);
    expect(guard.check(TOPIC, beyond)).toMatchObject({ ok: false, code: 'command.expired' });
  });

  it('refuses a command issued in the future beyond the skew', () => {
    const clock = new FakeClock();
    const guard = guardWith(clock, { skewToleranceMs: 5 * MIN });
    const now = clock.now();
    const future = command(clock, { issuedAt: now + 5 * MIN + 1, expiresAt: now + 6 * MIN });
    const nearFuture = command(clock, { issuedAt: now + 5 * MIN, expiresAt: now + 6 * MIN });
    expect(guard.check(TOPIC, future)).toMatchObject({ ok: false, code: 'command.expired' });
    expect(guard.check(TOPIC, nearFuture).ok).toBe(true);
  });

  it('refuses a replayed nonce, even under a new id and a valid MAC', () => {
    const clock = new FakeClock();
    const guard = guardWith(clock);
    const first = command(clock, { nonce: 'the-same-nonce-0001' });
    const again = command(clock, { nonce: 'the-same-nonce-0001' });
    expect(guard.check(TOPIC, first).ok).toBe(true);
    expect(guard.check(TOPIC, first)).toMatchObject({ ok: false, code: 'command.replayed' });
    expect(guard.check(TOPIC, again)).toMatchObject({ ok: false, code: 'command.replayed' });
    expect(guard.stats().refused['command.replayed']).toBe(2);
  });

  it('forgets nonces once their command could no longer pass the freshness check', () => {
    const clock = new FakeClock();
    const guard = guardWith(clock, { skewToleranceMs: MIN });
    const payload = command(clock);
    expect(guard.check(TOPIC, payload).ok).toBe(true);
    expect(guard.rememberedNonces()).toBe(1);
    clock.advance(30_000 + MIN + 1);
    // The replay is still refused, now as expired, and the memory has been emptied.
    expect(guard.check(TOPIC, payload)).toMatchObject({ ok: false, code: 'command.expired' });
    guard.check(TOPIC, command(clock));
    expect(guard.rememberedNonces()).toBe(1);
  });

  it('stays bounded and fails closed for commands whose nonce it had to evict', () => {
    const clock = new FakeClock();
    const guard = guardWith(clock, { maxNonces: 3 });
    const oldest = command(clock, { expiresAt: clock.now() + 10_000 });
    expect(guard.check(TOPIC, oldest).ok).toBe(true);
    for (let i = 0; i < 3; i++) {
      expect(guard.check(TOPIC, command(clock, { expiresAt: clock.now() + 20_000 })).ok).toBe(true);
    }
    expect(guard.rememberedNonces()).toBe(3);
    // Its nonce was evicted, but it is still refused.
    expect(guard.check(TOPIC, oldest)).toMatchObject({ ok: false, code: 'command.replayed' });
  });

  it('answers a schema-invalid command that has an id with command.invalid', () => {
    const clock = new FakeClock();
    const payload = Buffer.from(JSON.stringify({ id: 'cmd-bad-001', action: 'open-sesame' }));
    const verdict = guardWith(clock).check(TOPIC, payload);
    expect(verdict).toMatchObject({ ok: false, code: 'command.invalid', id: 'cmd-bad-001' });
  });

  it('refuses a command that expires before it was issued', () => {
    const clock = new FakeClock();
    const now = clock.now();
    const payload = command(clock, { issuedAt: now, expiresAt: now - 1 });
    expect(guardWith(clock).check(TOPIC, payload)).toMatchObject({ code: 'command.invalid' });
  });

  it('counts garbage without an id as garbage', () => {
    const clock = new FakeClock();
    const guard = guardWith(clock);
    expect(guard.check(TOPIC, Buffer.from('\xff\xfe not json'))).toMatchObject({
      ok: false,
      id: null,
    });
    expect(guard.check(TOPIC, Buffer.from('[1,2,3]'))).toMatchObject({ ok: false, id: null });
    expect(guard.stats()).toMatchObject({ accepted: 0, garbage: 2 });
    expect(guard.stats().refused['command.invalid']).toBe(0);
  });
});
