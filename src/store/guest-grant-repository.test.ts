import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { GuestGrant, Principal } from '../core/model.ts';
import { DIALECTS } from './dialect.ts';
import { GuestGrantRepository, type Invite } from './guest-grant-repository.ts';
import {
  DOOR,
  HOME,
  OWNER,
  openTestStore,
  seedHome,
  seedMoreHomes,
  type TestStore,
} from './test-store.ts';

const person = (id: string, role: Principal['role']): Principal => ({
  id,
  role,
  displayName: id,
  homeId: HOME.id,
  carrierId: null,
});
const MEMBER = person('member-1', 'member');
const GUEST_A = person('guest-a', 'guest');
const GUEST_B = person('guest-b', 'guest');
const GUEST_C = person('guest-c', 'guest');

function grant(
  id: string,
  principalId: string,
  grantedBy: string,
  maxUses: number | null = null,
): GuestGrant {
  return {
    id,
    homeId: HOME.id,
    doorId: DOOR.id,
    principalId,
    grantedBy,
    schedule: { kind: 'weekly', slots: [{ days: ['sat'], start: '14:00', end: '18:00' }] },
    limits: { maxUses, maxMinutesPerEntry: 30, requiresRecording: true },
    uses: 0,
    createdAt: Number(id.replace(/\D/g, '') || 0),
    revokedAt: null,
    revokedBy: null,
    revokeReason: null,
  };
}

for (const dialect of DIALECTS) {
  describe(`GuestGrantRepository (${dialect})`, () => {
    let t: TestStore;
    let repo: GuestGrantRepository;
    beforeEach(async () => {
      t = await openTestStore(dialect);
      await seedHome(t.store);
      for (const p of [MEMBER, GUEST_A, GUEST_B, GUEST_C])
        await t.store.principals.create(p, { username: p.id, passwordHash: 'h' });
      repo = new GuestGrantRepository(t.store.db);
    });
    afterEach(async () => {
      await t.cleanup();
    });

    it('stores a grant with its schedule and limits, and reads it back', async () => {
      const g = grant('g1', GUEST_A.id, OWNER.id, 3);
      await repo.create(g);
      expect(await repo.get('g1')).toEqual(g);
      expect(await repo.listForHome(HOME.id)).toEqual([g]);
      expect(await repo.listForPrincipal(GUEST_A.id)).toEqual([g]);
      expect(await repo.get('nope')).toBeNull();
    });

    it('counts uses up to the limit, and none once revoked', async () => {
      await repo.create(grant('g1', GUEST_A.id, OWNER.id, 2));
      expect(await repo.use('g1')).toBe(true);
      expect(await repo.use('g1')).toBe(true);
      expect(await repo.use('g1')).toBe(false);
      expect((await repo.get('g1'))?.uses).toBe(2);
      await repo.create(grant('g2', GUEST_B.id, OWNER.id));
      expect(await repo.revoke('g2', OWNER.id, 5, 'owner revoked')).toBe(true);
      expect(await repo.revoke('g2', OWNER.id, 6, 'again')).toBe(false);
      expect(await repo.use('g2')).toBe(false);
      expect(await repo.get('g2')).toMatchObject({ revokedAt: 5, revokedBy: OWNER.id, uses: 0 });
    });

    it('revokes in cascade: the member’s own grant, what they shared, and what that guest shared on', async () => {
      await repo.create(grant('g1', MEMBER.id, OWNER.id));
      await repo.create(grant('g2', GUEST_A.id, MEMBER.id));
      await repo.create(grant('g3', GUEST_C.id, GUEST_A.id));
      await repo.create(grant('g4', GUEST_B.id, OWNER.id));
      const revoked = await repo.revokeCascading(MEMBER.id, OWNER.id, 100, 'member removed');
      expect(revoked.sort()).toEqual(['g1', 'g2', 'g3']);
      expect((await repo.get('g4'))?.revokedAt).toBeNull();
      for (const id of revoked)
        expect(await repo.get(id)).toMatchObject({
          revokedAt: 100,
          revokeReason: 'member removed',
        });
      expect(await repo.revokeCascading(MEMBER.id, OWNER.id, 200, 'again')).toEqual([]);
    });

    it('accepts an invite once, never after it expired or was revoked', async () => {
      const invite: Invite = {
        id: 'i1',
        tokenHash: 'hash-1',
        homeId: HOME.id,
        doorId: DOOR.id,
        createdBy: OWNER.id,
        displayName: 'Grandma',
        grant: {
          schedule: { kind: 'always' },
          maxUses: null,
          maxMinutesPerEntry: null,
          requiresRecording: true,
        },
        createdAt: 0,
        expiresAt: 1_000,
        acceptedAt: null,
        acceptedBy: null,
        revokedAt: null,
      };
      await repo.createInvite(invite);
      await repo.createInvite({ ...invite, id: 'i2', tokenHash: 'hash-2' });
      await repo.createInvite({ ...invite, id: 'i3', tokenHash: 'hash-3' });
      expect(await repo.findInviteByTokenHash('hash-1')).toEqual(invite);
      expect(await repo.acceptInvite('i1', GUEST_A.id, 10)).toBe(true);
      expect(await repo.acceptInvite('i1', GUEST_B.id, 11)).toBe(false);
      expect(await repo.acceptInvite('i2', GUEST_B.id, 1_000)).toBe(false);
      expect(await repo.revokeInvite('i3', 5)).toBe(true);
      expect(await repo.acceptInvite('i3', GUEST_B.id, 6)).toBe(false);
      expect((await repo.listInvitesForHome(HOME.id)).map((i) => i.id)).toEqual(['i1', 'i2', 'i3']);
    });

    it('lists the grants of many homes, each as for one home', async () => {
      const ids = [HOME.id, ...(await seedMoreHomes(t.store, 3)), 'no-such-home'];
      const byHome = await repo.listForHomes(ids);
      for (const id of ids) expect(byHome.get(id)).toEqual(await repo.listForHome(id));
      expect(byHome.get('home-b0')?.map((g) => g.id)).toEqual(['home-b0-gg2', 'home-b0-gg1']);
    });
  });
}
