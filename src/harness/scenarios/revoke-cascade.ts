/**
 * revoke-cascade — the owner takes back a guest's access, and with it everything that guest
 * passed on.
 *
 * Guests cannot share a grant through the API yet, so the chain is built the way the store
 * records sharing: guest A is invited by the owner through the API; guest B's grant is written
 * directly with `grantedBy` = A (`store.guestGrants.create`), and guest C's with `grantedBy` = B,
 * as the sharing route will write them. B's account is made in the store too (with a password,
 * so B signs in like anyone).
 *
 * Given A (invited by the owner), B (shared on by A) and C (shared on by B), all "any time",
 * and B's visit under way (door unlocked),
 * when the owner revokes A's grant through the API,
 * then the answer lists A's, B's and C's grants as revoked, B's running visit is ended and the
 * door locked (on the lock's word), and B's next request is refused with `grant.revoked`.
 */
import { randomBytes } from 'node:crypto';
import type { GuestGrant, Principal } from '../../core/model.ts';
import { hashPassword } from '../../server/auth.ts';
import type { Scenario } from '../scenario.ts';
import type { ScenarioWorld } from '../scenario-world.ts';
import type { SessionView } from '../../server/session-orchestrator.ts';
import { call, errorCode, inviteGuest, signIn, signInOwner } from './common-steps.ts';

/** A guest account and an "any time" grant shared on by `grantedBy`, written as the store keeps them. */
async function sharedGuest(
  world: ScenarioWorld,
  displayName: string,
  grantedBy: string,
): Promise<{ principal: Principal; grant: GuestGrant; username: string; password: string }> {
  const { homeId, doorId } = world.creds;
  const now = world.sys.clock.now();
  const principal: Principal = {
    id: `guest-${randomBytes(6).toString('hex')}`,
    role: 'guest',
    displayName,
    homeId,
    carrierId: null,
  };
  const username = `${displayName.toLowerCase()}-${randomBytes(3).toString('hex')}`;
  const password = 'a long enough password';
  await world.sys.store.principals.create(principal, {
    username,
    passwordHash: await hashPassword(password),
  });
  const grant: GuestGrant = {
    id: `grant-${randomBytes(8).toString('hex')}`,
    homeId,
    doorId,
    principalId: principal.id,
    grantedBy,
    schedule: { kind: 'always' },
    limits: { maxUses: null, maxMinutesPerEntry: null, requiresRecording: true },
    uses: 0,
    createdAt: now,
    revokedAt: null,
    revokedBy: null,
    revokeReason: null,
  };
  await world.sys.store.guestGrants.create(grant);
  return { principal, grant, username, password };
}

export const revokeCascade: Scenario = {
  name: 'revoke-cascade',
  expected:
    "revoking A's grant revokes what A shared on (B, and B's share to C); B's running visit ends, door locked; B refused grant.revoked",
  async story({ world, expect }) {
    const { homeId } = world.creds;
    const owner = await signInOwner(world);
    const a = await inviteGuest(world, owner, 'Anna', { kind: 'always' });
    const b = await sharedGuest(world, 'Ben', a.guestId);
    const c = await sharedGuest(world, 'Cleo', b.principal.id);
    const bToken = await signIn(world, b.username, b.password);

    // ---- B's visit is under way ----
    const open = await call(world, 'POST', `/api/guest/grants/${b.grant.id}/access`, bToken, {});
    const session = open.body.session as SessionView | undefined;
    expect.that(
      open.status === 200 && session?.state === 'open',
      `the door opens for B under the shared grant (HTTP ${open.status} ${errorCode(open) ?? session?.state})`,
    );
    expect.that(world.home.lock.bolt() === 'unlocked', 'the bolt is drawn for B');

    // ---- The owner revokes A ----
    const revokeStarted = Date.now();
    const revoke = await call(
      world,
      'POST',
      `/api/homes/${homeId}/grants/${a.grantId}/revoke`,
      owner,
      {},
    );
    const revoked = (revoke.body.revoked as string[] | undefined) ?? [];
    expect.that(revoke.status === 200, `the owner revokes A's grant (HTTP ${revoke.status})`);
    expect.that(revoked.includes(a.grantId), "the answer lists A's grant");
    expect.that(revoked.includes(b.grant.id), "the answer lists B's grant (shared on by A)");
    expect.that(revoked.includes(c.grant.id), "the answer lists C's grant (shared on by B)");
    for (const [who, id] of [
      ['A', a.grantId],
      ['B', b.grant.id],
      ['C', c.grant.id],
    ] as const) {
      const g = await world.sys.store.guestGrants.get(id);
      expect.that(g?.revokedAt != null, `${who}'s grant is revoked in the store`);
    }

    // ---- B's visit is ended and the door locked ----
    let relockMs: number | null = null;
    let done: SessionView | null = null;
    if (session) {
      await world
        .waitFor(() => world.home.lock.bolt() === 'locked', 5_000, 'the door is locked')
        .catch(() => undefined);
      relockMs = world.home.lock.bolt() === 'locked' ? Date.now() - revokeStarted : null;
      expect.that(
        world.home.lock.bolt() === 'locked',
        `the door is locked (${world.home.lock.bolt()})`,
      );
      done = await world.waitForState(session.id, ['completed', 'aborted', 'refused'], 10_000);
      expect.that(
        done.history.some((h) => h.reason?.includes('grant.revoked') ?? false),
        `B's visit is ended because the grant was revoked (${done.state})`,
      );
      expect.that(done.lockConfirmedAt !== null, 'the lock confirmed it locked (its own report)');
    }

    // ---- B comes back ----
    const again = await call(world, 'POST', `/api/guest/grants/${b.grant.id}/access`, bToken, {});
    expect.that(
      again.status === 403 && errorCode(again) === 'grant.revoked',
      `B's next request is refused (HTTP ${again.status} ${errorCode(again)})`,
    );
    expect.that(world.home.lock.bolt() === 'locked', 'the door stays locked');
    const audited = (await world.sys.store.audit.entriesForSubject(`home:${homeId}`)).filter(
      (e) => e.kind === 'grant.revoked',
    );
    expect.that(
      [a.grantId, b.grant.id, c.grant.id].every((id) => audited.some((e) => e.data.grantId === id)),
      `each revocation is audited (${audited.length} grant.revoked entries)`,
    );

    return {
      session: done,
      extra: {
        revoked,
        relockMs,
        refusedAfter: { status: again.status, code: errorCode(again) },
      },
    };
  },
};
