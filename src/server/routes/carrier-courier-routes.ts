/**
 * A carrier's couriers (scope `couriers:manage`): invited by link, listed, and revoked at once.
 * The courier opens the link (no sign-in: its token is the credential), chooses a user name and
 * password, and is signed in on the courier page.
 *
 * Revoking a courier disables the account (every sign-in ends, no new one is accepted),
 * revokes the grants of their open deliveries, and ends a visit under way: the door is locked
 * as soon as it is closed, as for any cancelled session.
 */
import { randomBytes } from 'node:crypto';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import type { Principal } from '../../core/model.ts';
import { AcceptInviteRequest, EmptyBody, Id, InviteTokenParams } from '../../protocol/http.ts';
import type { CarrierCourierView, CourierInviteView } from '../../protocol/views.ts';
import { isUniqueViolation, PrincipalRepository } from '../../store/index.ts';
import type { CarrierCourier, CourierInvite } from '../../store/principal-repository.ts';
import type { AppDeps } from '../app.ts';
import { hashPassword, tokenHash } from '../auth.ts';
import { FixedWindowLimiter } from '../rate-limiter.ts';
import { sessionCookieOptions } from './auth-routes.ts';
import { carrierOf, type CarrierCaller } from './carrier-auth.ts';
import { denyCarrierObject } from './carrier-key-routes.ts';
import { INVITE_ATTEMPTS_PER_ADDRESS, INVITE_TTL_MS } from './guest-routes.ts';
import { errorResponses, fail, SESSION_COOKIE } from './route-helpers.ts';

/** Courier invitations one carrier may send in a day. */
export const COURIER_INVITES_PER_DAY = 200;

/** Delivery statuses whose grant may still open a door. */
const OPEN_STATUSES = new Set(['scheduled', 'in-progress']);

const CreateCourierInviteRequest = Type.Object(
  { displayName: Type.String({ minLength: 1, maxLength: 64 }) },
  { additionalProperties: false },
);
const CourierInviteParams = Type.Object({ inviteId: Id }, { additionalProperties: false });
const CourierParams = Type.Object({ courierId: Id }, { additionalProperties: false });

/** {@link CourierInviteView} as a response schema. */
const CourierInviteSchema = Type.Object({
  id: Type.String(),
  displayName: Type.String(),
  createdAt: Type.Integer(),
  expiresAt: Type.Integer(),
  createdBy: Type.String(),
  status: Type.Union(['pending', 'accepted', 'revoked', 'expired'].map((s) => Type.Literal(s))),
  acceptedBy: Type.Union([Type.String(), Type.Null()]),
});

function inviteStatus(i: CourierInvite, now: number): CourierInviteView['status'] {
  if (i.revokedAt !== null) return 'revoked';
  if (i.acceptedAt !== null) return 'accepted';
  return i.expiresAt <= now ? 'expired' : 'pending';
}

function inviteView(i: CourierInvite, now: number): CourierInviteView {
  return {
    id: i.id,
    displayName: i.displayName,
    createdAt: i.createdAt,
    expiresAt: i.expiresAt,
    createdBy: i.createdBy,
    status: inviteStatus(i, now),
    acceptedBy: i.acceptedBy,
  };
}

function courierView(c: CarrierCourier): CarrierCourierView {
  return {
    id: c.principal.id,
    displayName: c.principal.displayName,
    username: c.username,
    status: c.disabledAt === null ? 'active' : 'revoked',
    revokedAt: c.disabledAt,
  };
}

/**
 * Ends a courier's access to their open deliveries: the grants not yet revoked are revoked at
 * `now` (when `revoke`), and any access session running under one of them is ended by the
 * orchestrator (the door relocks once closed). Returns the grants revoked now.
 */
export async function endCourierAccess(
  deps: AppDeps,
  courierId: string,
  now: number,
  opts: { readonly homeId?: string; readonly revoke: boolean },
): Promise<string[]> {
  const revoked: string[] = [];
  for (const d of await deps.store.deliveries.listForCourier(courierId)) {
    if (!OPEN_STATUSES.has(d.status)) continue;
    if (opts.homeId !== undefined && d.homeId !== opts.homeId) continue;
    const grant = await deps.store.deliveries.getGrantForDelivery(d.id);
    if (!grant || grant.principalId !== courierId) continue;
    if (opts.revoke && grant.revokedAt === null) {
      if (await deps.store.deliveries.revokeGrant(grant.id, now)) revoked.push(grant.id);
    }
    await deps.orchestrator.grantRevoked(grant.id);
  }
  return revoked;
}

export const carrierCourierRoutes =
  (deps: AppDeps): FastifyPluginAsync =>
  async (app) => {
    const inviteAttempts = new FixedWindowLimiter(
      deps.clock,
      INVITE_ATTEMPTS_PER_ADDRESS,
      15 * 60_000,
    );
    const invitesSent = new FixedWindowLimiter(
      deps.clock,
      COURIER_INVITES_PER_DAY,
      24 * 60 * 60_000,
    );
    const limitInviteAttempts = async (req: FastifyRequest, reply: FastifyReply) => {
      if (!inviteAttempts.allow(req.ip)) {
        void reply.header(
          'retry-after',
          String(Math.ceil(inviteAttempts.retryAfterMs(req.ip) / 1000)),
        );
        fail('request.rate-limited');
      }
    };

    /** The caller's own invitation with this id, or 404 (audited when it is another's). */
    const ownInvite = async (caller: CarrierCaller, inviteId: string): Promise<CourierInvite> => {
      const i = await deps.store.principals.getCourierInvite(inviteId);
      if (!i) fail('invite.not-found');
      if (i.carrierId !== caller.carrierId)
        return denyCarrierObject(deps, caller, 'invite.not-found', `courier-invite:${inviteId}`);
      return i;
    };

    // ---- The carrier's side ----

    app.post(
      '/api/carrier/couriers/invites',
      {
        schema: {
          tags: ['carrier'],
          summary:
            'Invite a courier by link (couriers:manage). The link’s token is in this answer only; it works once, for 7 days.',
          body: CreateCourierInviteRequest,
          response: {
            201: Type.Object({
              invite: CourierInviteSchema,
              token: Type.String({ description: 'The link’s token; shown once, never again.' }),
              path: Type.String({ description: 'The invitation page: /courier-invite/<token>' }),
            }),
            ...errorResponses,
          },
        },
      },
      async (req, reply) => {
        const caller = await carrierOf(deps, req, 'couriers:manage');
        const displayName = (req.body as { displayName: string }).displayName.trim();
        if (displayName.length === 0)
          fail('request.invalid', 'body/displayName must not be blank.');
        if (!invitesSent.allow(caller.carrierId)) fail('request.rate-limited');
        const now = deps.clock.now();
        const token = randomBytes(32).toString('base64url');
        const invite: CourierInvite = {
          id: `cinv-${randomBytes(8).toString('hex')}`,
          carrierId: caller.carrierId,
          tokenHash: tokenHash(token),
          displayName,
          createdBy: caller.actor.id,
          createdAt: now,
          expiresAt: now + INVITE_TTL_MS,
          acceptedBy: null,
          acceptedAt: null,
          revokedAt: null,
        };
        await deps.store.principals.createCourierInvite(invite);
        await deps.audit.append({
          kind: 'courier.invited',
          actor: caller.actor,
          subject: `carrier:${caller.carrierId}`,
          data: { inviteId: invite.id, displayName },
        });
        void reply.code(201);
        return {
          invite: inviteView(invite, now),
          token,
          /** The path of the invitation page, to put after the site's address. */
          path: `/courier-invite/${token}`,
        };
      },
    );

    app.get(
      '/api/carrier/couriers',
      {
        schema: {
          tags: ['carrier'],
          summary: 'My couriers (revoked ones too) and my invitations (couriers:manage)',
          response: errorResponses,
        },
      },
      async (req) => {
        const caller = await carrierOf(deps, req, 'couriers:manage');
        const now = deps.clock.now();
        const [couriers, invites] = await Promise.all([
          deps.store.principals.listCouriers(caller.carrierId),
          deps.store.principals.listCourierInvites(caller.carrierId),
        ]);
        return {
          couriers: couriers.map(courierView),
          invites: invites.map((i) => inviteView(i, now)),
        };
      },
    );

    app.post(
      '/api/carrier/couriers/invites/:inviteId/revoke',
      {
        schema: {
          tags: ['carrier'],
          summary: 'Withdraw an invitation that has not been accepted (couriers:manage)',
          params: CourierInviteParams,
          body: EmptyBody,
          response: errorResponses,
        },
      },
      async (req) => {
        const caller = await carrierOf(deps, req, 'couriers:manage');
        const { inviteId } = req.params as { inviteId: string };
        const invite = await ownInvite(caller, inviteId);
        const now = deps.clock.now();
        if (!(await deps.store.principals.revokeCourierInvite(invite.id, now))) fail('invite.used');
        await deps.audit.append({
          kind: 'courier.invite-revoked',
          actor: caller.actor,
          subject: `carrier:${caller.carrierId}`,
          data: { inviteId: invite.id },
        });
        return { invite: inviteView({ ...invite, revokedAt: now }, now) };
      },
    );

    app.post(
      '/api/carrier/couriers/:courierId/revoke',
      {
        schema: {
          tags: ['carrier'],
          summary:
            'Revoke a courier at once (couriers:manage): no more sign-in, their open deliveries’ grants revoked, a visit under way ended and the door relocked',
          params: CourierParams,
          body: EmptyBody,
          response: errorResponses,
        },
      },
      async (req) => {
        const caller = await carrierOf(deps, req, 'couriers:manage');
        const { courierId } = req.params as { courierId: string };
        const p = await deps.store.principals.get(courierId);
        if (!p) fail('courier.not-found');
        if (p.role !== 'courier' || p.carrierId !== caller.carrierId)
          return denyCarrierObject(deps, caller, 'courier.not-found', `principal:${courierId}`);
        const now = deps.clock.now();
        // Disabled first: from this instant no request of theirs is accepted, so no new visit
        // can start while the grants are being revoked.
        const disabled = await deps.store.principals.disable(p.id, now);
        const revokedGrants = await endCourierAccess(deps, p.id, now, { revoke: true });
        await deps.audit.append({
          kind: 'courier.revoked',
          actor: caller.actor,
          subject: `carrier:${caller.carrierId}`,
          data: { courierId: p.id, alreadyRevoked: !disabled, revokedGrants },
        });
        const after = (await deps.store.principals.listCouriers(caller.carrierId)).find(
          (c) => c.principal.id === p.id,
        );
        return {
          courier: after ? courierView(after) : null,
          revokedGrants,
        };
      },
    );

    // ---- The invitation link (no sign-in: the token is the credential) ----

    const liveInvite = async (token: string): Promise<CourierInvite> => {
      const invite = await deps.store.principals.findCourierInviteByTokenHash(tokenHash(token));
      if (!invite) fail('invite.not-found');
      if (inviteStatus(invite, deps.clock.now()) !== 'pending') fail('invite.used');
      return invite;
    };

    app.get(
      '/api/courier-invites/:token',
      {
        onRequest: limitInviteAttempts,
        schema: {
          tags: ['courier'],
          summary: 'What a courier invitation offers: which carrier, under which name',
          params: InviteTokenParams,
          response: errorResponses,
        },
      },
      async (req) => {
        const { token } = req.params as { token: string };
        const invite = await liveInvite(token);
        const carrier = await deps.store.principals.getCarrier(invite.carrierId);
        if (!carrier) fail('invite.not-found');
        return {
          invite: { displayName: invite.displayName, expiresAt: invite.expiresAt },
          carrier: { name: carrier.name },
        };
      },
    );

    app.post(
      '/api/courier-invites/:token/accept',
      {
        onRequest: limitInviteAttempts,
        schema: {
          tags: ['courier'],
          summary:
            'Accept a courier invitation: choose a user name and password; you are signed in as the courier',
          params: InviteTokenParams,
          body: AcceptInviteRequest,
          response: errorResponses,
        },
      },
      async (req, reply) => {
        const { token } = req.params as { token: string };
        const { username, password } = req.body as { username: string; password: string };
        const invite = await liveInvite(token);
        const now = deps.clock.now();
        const courier: Principal = {
          id: `courier-${randomBytes(6).toString('hex')}`,
          role: 'courier',
          displayName: invite.displayName,
          homeId: null,
          carrierId: invite.carrierId,
        };
        // "Sam" and "sam" are one name: nobody may look like someone else.
        if (await deps.store.principals.usernameTaken(username)) fail('auth.username-taken');
        const passwordHash = await hashPassword(password);
        // Account and claim of the link in one transaction: two acceptances of one link at the
        // same moment leave one courier, never a stray account.
        await deps.store.db.transaction().execute(async (trx) => {
          const principals = new PrincipalRepository(trx);
          try {
            await principals.create(courier, { username, passwordHash });
          } catch (err) {
            if (isUniqueViolation(err)) fail('auth.username-taken');
            throw err;
          }
          if (!(await principals.acceptCourierInvite(invite.id, courier.id, now)))
            fail('invite.used');
        });
        await deps.audit.append({
          kind: 'courier.invite-accepted',
          actor: { type: 'principal', id: courier.id },
          subject: `carrier:${invite.carrierId}`,
          data: { inviteId: invite.id, invitedBy: invite.createdBy },
        });
        const session = await deps.auth.openSession(courier);
        void reply.setCookie(SESSION_COOKIE, session.token, {
          ...sessionCookieOptions(deps),
          expires: new Date(session.expiresAt),
        });
        return session;
      },
    );
  };
