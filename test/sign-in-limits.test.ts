/**
 * Password guessing is limited: after SIGN_IN_FAILURES_PER_USER failed sign-ins for one user
 * name, that name is refused (429, Retry-After) without checking the password, even the right
 * one, until the window ends; others are not affected; the limit is audited once per window.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ScenarioWorld } from '../src/harness/scenario-world.ts';
import { SIGN_IN_FAILURES_PER_USER } from '../src/server/routes/auth-routes.ts';

let world: ScenarioWorld;

beforeAll(async () => {
  world = await ScenarioWorld.create();
}, 60_000);
afterAll(async () => {
  await world?.close();
});

async function signIn(username: string, password: string) {
  const res = await fetch(`${world.sys.url}/api/auth/sign-in`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password }),
  });
  return {
    status: res.status,
    retryAfter: res.headers.get('retry-after'),
    body: (await res.json()) as { error?: { code: string; message: string } },
  };
}

describe('sign-in limits', () => {
  it('locks a guessed user name out (the right password included), audits it once, and leaves others alone', async () => {
    const { owner, courier } = world.creds;
    for (let i = 0; i < SIGN_IN_FAILURES_PER_USER; i++) {
      const r = await signIn(owner.username, `wrong-${i}`);
      expect(r.status).toBe(401);
    }
    for (const password of ['wrong-again', owner.password]) {
      const r = await signIn(owner.username, password);
      expect(r.status).toBe(429);
      expect(r.body.error?.code).toBe('request.rate-limited');
      expect(r.body.error?.message).toMatch(/passkey/);
      expect(Number(r.retryAfter)).toBeGreaterThan(0);
      expect(Number(r.retryAfter)).toBeLessThanOrEqual(15 * 60);
    }
    // The same name in capitals is the same name.
    expect((await signIn(owner.username.toUpperCase(), owner.password)).status).toBe(429);
    // Another user is not affected.
    expect((await signIn(courier.username, courier.password)).status).toBe(200);

    const entries = [];
    for await (const e of world.sys.store.audit.iterate()) entries.push(e);
    const limited = entries.filter((e) => e.kind === 'auth.sign-in-limited');
    expect(limited).toHaveLength(1);
    expect(limited[0]?.data).toMatchObject({ limitedBy: 'user' });
    expect(entries.filter((e) => e.kind === 'auth.sign-in-failed')).toHaveLength(
      SIGN_IN_FAILURES_PER_USER,
    );
    // No password ever reaches the log.
    expect(JSON.stringify(entries)).not.toContain(owner.password);
  });
});
