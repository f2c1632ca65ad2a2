/**
 * Guests: the owner invites by link and revokes; the guest accepts the invite (choosing a user
 * name and password), sees plainly when they may come in, and asks to open the door.
 */
import { randomBytes } from 'node:crypto';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import {
  defaultRequiresRecording,
  describeSchedule,
  scheduleAllows,
  validateLimits,
  validateSchedule,
  type GrantLimits,
  type GrantSchedule,
} from '../../core/grant-schedule.ts';
import { isUsedUp } from '../../core/guest-access.ts';
import type { GuestGrant, Home, Principal } from '../../core/model.ts';
import {
  AcceptInviteRequest,
  CreateInviteRequest,
  EmptyBody,
  GrantParams,
  GuestGrantParams,
  HomeParams,
  InviteParams,
  InviteTokenParams,
  MemberParams,
  SessionParams,
} from '../../protocol/http.ts';
import type { GuestGrantView, InviteView } from '../../protocol/views.ts';
import { ThresholdError } from '../../core/errors.ts';
import {
  GuestGrantRepository,
  isUniqueViolation,
  PrincipalRepository,
  type Invite,
} from '../../store/index.ts';
import type { AppDeps } from '../app.ts';
import { hashPassword, tokenHash } from '../auth.ts';
import { FixedWindowLimiter } from '../rate-limiter.ts';
import { sessionCookieOptions } from './auth-routes.ts';
import { ownHome } from './home-routes.ts';
import {
  denyObject,
  errorResponses,
  fail,
  householdWith,
  principalOf,
  SESSION_COOKIE,
  unwrap,
} from './route-helpers.ts';

/** How long an invitation link stays valid, ms. */
export const INVITE_TTL_MS = 7 * 24 * 60 * 60_000;
/** Invitation look-ups and acceptances per client address in 15 minutes. */
export const INVITE_ATTEMPTS_PER_ADDRESS = 30;
/** Invitations one person may create in a day. */
export const INVITES_PER_DAY = 50;

type CreateInviteBody = {
  displayName: string;
  doorId: string;
  schedule: GrantSchedule;
  maxUses?: number | null;
  maxMinutesPerEntry?: number | null;
  requiresRecording?: boolean;
};

/** The schedule's and limits' problems, as one 422 answer with each problem listed. */
function checkGrant(schedule: GrantSchedule, limits: GrantLimits, home: Home, now: number) {
  const problems = [
    ...validateSchedule(schedule, home.timeZone, { nowMs: now }),
    ...validateLimits(limits, schedule),
  ];
  if (problems.length > 0) {
    throw new ThresholdError(
      'grant.schedule-invalid',
      problems.map((p) => `${p.path}: ${p.message}`).join(' '),
      { problems: problems.map((p) => ({ path: p.path, message: p.message })) },
    );
  }
}

function inviteStatus(i: Invite, now: number): InviteView['status'] {
  if (i.revokedAt !== null) return 'revoked';
  if (i.acceptedAt !== null) return 'accepted';
  return i.expiresAt <= now ? 'expired' : 'pending';
}

export const guestRoutes =
  (deps: AppDeps): FastifyPluginAsync =>
  async (app) => {
    const inviteAttempts = new FixedWindowLimiter(
      deps.clock,
      INVITE_ATTEMPTS_PER_ADDRESS,
      15 * 60_000,
    );
    const invitesCreated = new FixedWindowLimiter(deps.clock, INVITES_PER_DAY, 24 * 60 * 60_000);
    const limitInviteAttempts = async (req: FastifyRequest, reply: FastifyReply) => {
      if (!inviteAttempts.allow(req.ip)) {
        void reply.header(
          'retry-after',
          String(Math.ceil(inviteAttempts.retryAfterMs(req.ip) / 1000)),
        );
        fail('request.rate-limited');
      }
    };

    const names = new Map<string, string>();
    const nameOf = async (id: string): Promise<string> => {
      if (!names.has(id)) names.set(id, (await deps.store.principals.get(id))?.displayName ?? id);
      return names.get(id) ?? id;
    };

    const grantView = async (g: GuestGrant, home: Home): Promise<GuestGrantView> => {
      const now = deps.clock.now();
      const door = await deps.store.homes.getDoor(g.doorId);
      const verdict = scheduleAllows(g.schedule, home.timeZone, now);
      return {
        id: g.id,
        homeId: g.homeId,
        doorId: g.doorId,
        doorName: door?.name ?? g.doorId,
        guest: { id: g.principalId, displayName: await nameOf(g.principalId) },
        grantedBy: { id: g.grantedBy, displayName: await nameOf(g.grantedBy) },
        schedule: g.schedule,
        description: describeSchedule(g.schedule, home.timeZone, { nowMs: now }),
        limits: g.limits,
        uses: g.uses,
        createdAt: g.createdAt,
        revokedAt: g.revokedAt,
        revokeReason: g.revokeReason,
        now:
          g.revokedAt !== null
            ? { allowed: false, nextStartsAt: null, reason: 'revoked' }
            : isUsedUp(g)
              ? { allowed: false, nextStartsAt: null, reason: 'used' }
              : verdict.allowed
                ? { allowed: true, until: verdict.windowEndsAt }
                : { allowed: false, nextStartsAt: verdict.nextStartsAt, reason: verdict.reason },
      };
    };

    const inviteView = (i: Invite, home: Home): InviteView => ({
      id: i.id,
      homeId: i.homeId,
      doorId: i.doorId,
      displayName: i.displayName,
      description: describeSchedule(i.grant.schedule, home.timeZone, {
        nowMs: deps.clock.now(),
      }),
      requiresRecording: i.grant.requiresRecording,
      createdAt: i.createdAt,
      expiresAt: i.expiresAt,
      status: inviteStatus(i, deps.clock.now()),
      acceptedBy: i.acceptedBy,
    });

    // ---- The owner's side ----

    app.post(
      '/api/homes/:homeId/invites',
      {
        schema: {
          tags: ['guests'],
          summary:
            'Invite a guest by link: when they may come in (in the home’s time zone) and the limits. The link is shown once.',
          params: HomeParams,
          body: CreateInviteRequest,
          response: errorResponses,
        },
      },
      async (req) => {
        const p = await householdWith(deps, req, 'manage-access');
        const { homeId } = req.params as { homeId: string };
        const body = req.body as CreateInviteBody;
        const home = await ownHome(deps, p, homeId);
        const door = await deps.store.homes.getDoor(body.doorId);
        if (!door || door.homeId !== homeId) fail('door.not-found');
        const now = deps.clock.now();
        const limits: GrantLimits = {
          maxUses: body.maxUses ?? null,
          maxMinutesPerEntry: body.maxMinutesPerEntry ?? null,
          // Recorded unless the household says otherwise: a guest is not of the household
          // (defaultRequiresRecording), so only an explicit `false` turns the camera off.
          requiresRecording: body.requiresRecording ?? defaultRequiresRecording('guest'),
        };
        checkGrant(body.schedule, limits, home, now);
        if (!invitesCreated.allow(p.id)) fail('request.rate-limited');
        const token = randomBytes(32).toString('base64url');
        const invite: Invite = {
          id: `invite-${randomBytes(8).toString('hex')}`,
          tokenHash: tokenHash(token),
          homeId,
          doorId: door.id,
          createdBy: p.id,
          displayName: body.displayName.trim(),
          grant: { schedule: body.schedule, ...limits },
          createdAt: now,
          expiresAt: now + INVITE_TTL_MS,
          acceptedAt: null,
          acceptedBy: null,
          revokedAt: null,
        };
        await deps.store.guestGrants.createInvite(invite);
        await deps.audit.append({
          kind: 'invite.created',
          actor: { type: 'principal', id: p.id },
          subject: `home:${homeId}`,
          data: {
            inviteId: invite.id,
            doorId: door.id,
            displayName: invite.displayName,
            requiresRecording: limits.requiresRecording,
          },
        });
        return {
          invite: inviteView(invite, home),
          token,
          /** The path of the invitation page, to put after the site's address. */
          path: `/invite/${token}`,
        };
      },
    );

    app.get(
      '/api/homes/:homeId/guests',
      {
        schema: {
          tags: ['guests'],
          summary: 'The home’s guest grants (revoked ones too) and invitations',
          params: HomeParams,
          response: errorResponses,
        },
      },
      async (req) => {
        const p = await householdWith(deps, req, 'manage-access');
        const { homeId } = req.params as { homeId: string };
        const home = await ownHome(deps, p, homeId);
        const grants = await deps.store.guestGrants.listForHome(homeId);
        const invites = await deps.store.guestGrants.listInvitesForHome(homeId);
        return {
          grants: await Promise.all(grants.map((g) => grantView(g, home))),
          invites: invites.map((i) => inviteView(i, home)),
        };
      },
    );

    app.post(
      '/api/homes/:homeId/grants/:grantId/revoke',
      {
        schema: {
          tags: ['guests'],
          summary:
            'Revoke a guest grant at once, and what its guest shared on (a running entry is ended and the door locked)',
          params: GrantParams,
          body: EmptyBody,
          response: errorResponses,
        },
      },
      async (req) => {
        const p = await householdWith(deps, req, 'manage-access');
        const { homeId, grantId } = req.params as { homeId: string; grantId: string };
        const home = await ownHome(deps, p, homeId);
        const grant = await deps.store.guestGrants.get(grantId);
        if (!grant || grant.homeId !== homeId) fail('grant.unknown');
        const now = deps.clock.now();
        const revoked = (await deps.store.guestGrants.revoke(grantId, p.id, now, 'revoked'))
          ? [grantId]
          : [];
        // Once the guest has no access left here, what they shared on stops working too. Their
        // other grants stay: revoking one grant is not revoking the person.
        const stillHeld = (await deps.store.guestGrants.listForPrincipal(grant.principalId)).some(
          (g) => g.revokedAt === null && g.homeId === homeId,
        );
        if (!stillHeld) {
          revoked.push(
            ...(await deps.store.guestGrants.revokeCascading(
              grant.principalId,
              p.id,
              now,
              `cascade from ${grantId}`,
            )),
          );
        }
        for (const id of revoked) {
          await afterRevoke(p, homeId, id, id === grantId ? null : grantId);
        }
        const after = await deps.store.guestGrants.get(grantId);
        return { grant: await grantView(after ?? grant, home), revoked };
      },
    );

    app.post(
      '/api/homes/:homeId/members/:principalId/remove',
      {
        schema: {
          tags: ['guests'],
          summary:
            'Remove a household member (owner only): they can no longer sign in, and every grant they shared is revoked, in cascade',
          params: MemberParams,
          body: EmptyBody,
          response: errorResponses,
        },
      },
      async (req) => {
        const p = await householdWith(deps, req, 'manage-household');
        const { homeId, principalId } = req.params as { homeId: string; principalId: string };
        await ownHome(deps, p, homeId);
        const member = await deps.store.principals.get(principalId);
        if (!member || member.homeId !== homeId || member.role !== 'member')
          return denyObject(deps, p, 'principal.not-found', `principal:${principalId}`);
        const now = deps.clock.now();
        const disabled = await deps.store.principals.disable(member.id, now);
        const revoked = await deps.store.guestGrants.revokeCascading(
          member.id,
          p.id,
          now,
          `member ${member.id} removed`,
        );
        await deps.audit.append({
          kind: 'member.removed',
          actor: { type: 'principal', id: p.id },
          subject: `home:${homeId}`,
          data: { principalId: member.id, alreadyRemoved: !disabled, revokedGrants: revoked },
        });
        for (const id of revoked) await afterRevoke(p, homeId, id, `member:${member.id}`);
        // The member's own keypad codes go too.
        if (deps.pins) {
          for (const slot of await deps.store.pinSlots.listByPrincipal(member.id)) {
            if (slot.desired === 'set')
              await deps.pins.clear(slot.lockDeviceId, slot.slot, { type: 'principal', id: p.id });
          }
          await deps.pins.refreshWindows(homeId);
        }
        return { removed: member.id, revoked };
      },
    );

    /** What follows each revoked grant: on record, its running visit ended, its codes emptied. */
    const afterRevoke = async (
      p: Principal,
      homeId: string,
      id: string,
      cascadeFrom: string | null,
    ): Promise<void> => {
      await deps.audit.append({
        kind: 'grant.revoked',
        actor: { type: 'principal', id: p.id },
        subject: `home:${homeId}`,
        data: { grantId: id, cascadeFrom },
      });
      await deps.orchestrator.grantRevoked(id);
      // A keypad code of someone whose access is gone is emptied on the lock too.
      const holder = (await deps.store.guestGrants.get(id))?.principalId;
      if (holder && deps.pins) {
        const stillAllowed = (await deps.store.guestGrants.listForPrincipal(holder)).some(
          (g) => g.revokedAt === null,
        );
        if (!stillAllowed) {
          for (const slot of await deps.store.pinSlots.listByPrincipal(holder)) {
            if (slot.desired === 'set')
              await deps.pins.clear(slot.lockDeviceId, slot.slot, {
                type: 'principal',
                id: p.id,
              });
          }
        }
      }
      // A guest who keeps other grants keeps their code, but only for those grants' hours: the
      // code's window on the lock narrows now (and within the lease if the lock is offline).
      await deps.pins?.refreshWindows(homeId);
    };

    app.post(
      '/api/homes/:homeId/invites/:inviteId/revoke',
      {
        schema: {
          tags: ['guests'],
          summary: 'Withdraw an invitation that has not been accepted',
          params: InviteParams,
          body: EmptyBody,
          response: errorResponses,
        },
      },
      async (req) => {
        const p = await householdWith(deps, req, 'manage-access');
        const { homeId, inviteId } = req.params as { homeId: string; inviteId: string };
        const home = await ownHome(deps, p, homeId);
        const invite = (await deps.store.guestGrants.listInvitesForHome(homeId)).find(
          (i) => i.id === inviteId,
        );
        if (!invite) fail('invite.not-found');
        if (!(await deps.store.guestGrants.revokeInvite(inviteId, deps.clock.now())))
          fail('invite.used');
        await deps.audit.append({
          kind: 'invite.revoked',
          actor: { type: 'principal', id: p.id },
          subject: `home:${homeId}`,
          data: { inviteId },
        });
        return {
          invite: inviteView({ ...invite, revokedAt: deps.clock.now() }, home),
        };
      },
    );

    // ---- The invitation link (no sign-in: the token is the credential) ----

    const liveInvite = async (token: string): Promise<{ invite: Invite; home: Home }> => {
      const invite = await deps.store.guestGrants.findInviteByTokenHash(tokenHash(token));
      if (!invite) fail('invite.not-found');
      if (inviteStatus(invite, deps.clock.now()) !== 'pending') fail('invite.used');
      const home = await deps.store.homes.getHome(invite.homeId);
      if (!home) fail('invite.not-found');
      return { invite, home };
    };

    app.get(
      '/api/invites/:token',
      {
        onRequest: limitInviteAttempts,
        schema: {
          tags: ['guests'],
          summary: 'What an invitation offers: who invites, which door, when',
          params: InviteTokenParams,
          response: errorResponses,
        },
      },
      async (req) => {
        const { token } = req.params as { token: string };
        const { invite, home } = await liveInvite(token);
        const door = await deps.store.homes.getDoor(invite.doorId);
        return {
          invite: inviteView(invite, home),
          home: { name: home.name, timeZone: home.timeZone },
          doorName: door?.name ?? invite.doorId,
          invitedBy: await nameOf(invite.createdBy),
        };
      },
    );

    app.post(
      '/api/invites/:token/accept',
      {
        onRequest: limitInviteAttempts,
        schema: {
          tags: ['guests'],
          summary:
            'Accept an invitation: choose a user name and password; you are signed in as the guest',
          params: InviteTokenParams,
          body: AcceptInviteRequest,
          response: errorResponses,
        },
      },
      async (req, reply) => {
        const { token } = req.params as { token: string };
        const { username, password } = req.body as { username: string; password: string };
        const { invite } = await liveInvite(token);
        const now = deps.clock.now();
        const guest: Principal = {
          id: `guest-${randomBytes(6).toString('hex')}`,
          role: 'guest',
          displayName: invite.displayName,
          homeId: invite.homeId,
          carrierId: null,
        };
        const grant: GuestGrant = {
          id: `grant-${randomBytes(8).toString('hex')}`,
          homeId: invite.homeId,
          doorId: invite.doorId,
          principalId: guest.id,
          grantedBy: invite.createdBy,
          schedule: invite.grant.schedule,
          limits: {
            maxUses: invite.grant.maxUses,
            maxMinutesPerEntry: invite.grant.maxMinutesPerEntry,
            requiresRecording: invite.grant.requiresRecording,
          },
          uses: 0,
          createdAt: now,
          revokedAt: null,
          revokedBy: null,
          revokeReason: null,
        };
        // "Owner" and "owner" are one name: nobody may look like someone else.
        if (await deps.store.principals.usernameTaken(username)) fail('auth.username-taken');
        const passwordHash = await hashPassword(password);
        // Account, claim of the link and grant in one transaction: two acceptances of one link
        // at the same moment leave one guest, never a stray account without a grant.
        await deps.store.db.transaction().execute(async (trx) => {
          try {
            await new PrincipalRepository(trx).create(guest, { username, passwordHash });
          } catch (err) {
            if (isUniqueViolation(err)) fail('auth.username-taken');
            throw err;
          }
          const grants = new GuestGrantRepository(trx);
          if (!(await grants.acceptInvite(invite.id, guest.id, now))) fail('invite.used');
          await grants.create(grant);
        });
        await deps.pins?.refreshWindows(invite.homeId);
        await deps.audit.append({
          kind: 'invite.accepted',
          actor: { type: 'principal', id: guest.id },
          subject: `home:${invite.homeId}`,
          data: { inviteId: invite.id, grantId: grant.id, grantedBy: invite.createdBy },
        });
        const session = await deps.auth.openSession(guest);
        void reply.setCookie(SESSION_COOKIE, session.token, {
          ...sessionCookieOptions(deps),
          expires: new Date(session.expiresAt),
        });
        return session;
      },
    );

    // ---- The guest's side ----

    app.get(
      '/api/guest/grants',
      {
        schema: {
          tags: ['guests'],
          summary: 'My grants: when I may come in, in plain words',
          response: errorResponses,
        },
      },
      async (req) => {
        const p = await principalOf(deps, req, ['guest']);
        const grants = await deps.store.guestGrants.listForPrincipal(p.id);
        const views: GuestGrantView[] = [];
        for (const g of grants) {
          const home = await deps.store.homes.getHome(g.homeId);
          if (home) views.push(await grantView(g, home));
        }
        return { grants: views };
      },
    );

    app.post(
      '/api/guest/grants/:grantId/access',
      {
        schema: {
          tags: ['guests'],
          summary:
            'Open the door under my grant. Waits until the door is open or the request is refused.',
          params: GuestGrantParams,
          body: EmptyBody,
          response: errorResponses,
        },
      },
      async (req) => {
        const p = await principalOf(deps, req, ['guest']);
        const { grantId } = req.params as { grantId: string };
        const started = unwrap(await deps.orchestrator.requestGuestEntry(p, grantId));
        const v = await deps.orchestrator.waitWhile(
          started.id,
          ['requested', 'arming', 'unlocking'],
          12_000,
        );
        const session = v ?? started;
        // Refused, or given up on before the door ever unlocked (the lock never said it
        // opened): no entry, and the person is told why.
        const noEntry =
          session.state === 'refused' ||
          (session.state === 'relocking' && session.unlockedAt === null);
        if (noEntry && session.outcome) fail(session.outcome.code, session.outcome.message);
        return { session };
      },
    );

    app.post(
      '/api/guest/sessions/:sessionId/relock',
      {
        schema: {
          tags: ['guests'],
          summary: 'The door is closed — lock. Waits for the lock’s own confirmation.',
          params: SessionParams,
          body: EmptyBody,
          response: errorResponses,
        },
      },
      async (req) => {
        const p = await principalOf(deps, req, ['guest']);
        const { sessionId } = req.params as { sessionId: string };
        unwrap(await deps.orchestrator.requestRelock(p, sessionId));
        const v = await deps.orchestrator.waitWhile(sessionId, ['relocking'], 8_000);
        if (!v) fail('session.not-found');
        return { session: v, confirmed: v.lockConfirmedAt !== null };
      },
    );

    app.get(
      '/api/guest/sessions/:sessionId',
      {
        schema: {
          tags: ['guests'],
          summary: 'My visit: follow it until the door is open, locked and confirmed',
          params: SessionParams,
          response: errorResponses,
        },
      },
      async (req) => {
        const p = await principalOf(deps, req, ['guest']);
        const { sessionId } = req.params as { sessionId: string };
        const v = await deps.orchestrator.view(sessionId);
        if (!v || v.principalId !== p.id)
          return denyObject(deps, p, 'session.not-found', `session:${sessionId}`);
        return { session: v };
      },
    );
  };
