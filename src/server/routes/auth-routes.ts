/** Sign-in, sign-out and "who am I". */
import type { FastifyPluginAsync } from 'fastify';
import { Type } from 'typebox';
import { PrincipalView, SignInRequest, SignInResponse } from '../../protocol/http.ts';
import type { AppDeps } from '../app.ts';
import { API_KEY_PREFIX } from '../auth.ts';
import { FixedWindowLimiter } from '../rate-limiter.ts';
import {
  credentialOf,
  errorResponses,
  principalOf,
  SESSION_COOKIE,
  fail,
  unwrap,
} from './route-helpers.ts';

/**
 * Failed password sign-ins allowed per user name in {@link SIGN_IN_WINDOW_MS}. Beyond it the
 * name is refused without checking the password until the window ends; passkey sign-in is not
 * affected, so someone who locks an owner's password out does not lock the owner out.
 */
export const SIGN_IN_FAILURES_PER_USER = 10;
/** Failed password sign-ins allowed per client address in {@link SIGN_IN_WINDOW_MS}. */
export const SIGN_IN_FAILURES_PER_ADDRESS = 30;
/** The window of both limits, ms. */
export const SIGN_IN_WINDOW_MS = 15 * 60_000;

/** The sign-in cookie's attributes, the same when it is set and when it is cleared. */
export function sessionCookieOptions(deps: AppDeps) {
  return {
    httpOnly: true,
    sameSite: 'strict',
    path: '/',
    secure: deps.secureCookies ?? false,
  } as const;
}

export const authRoutes =
  (deps: AppDeps): FastifyPluginAsync =>
  async (app) => {
    const failuresByUser = new FixedWindowLimiter(
      deps.clock,
      SIGN_IN_FAILURES_PER_USER,
      SIGN_IN_WINDOW_MS,
    );
    const failuresByAddress = new FixedWindowLimiter(
      deps.clock,
      SIGN_IN_FAILURES_PER_ADDRESS,
      SIGN_IN_WINDOW_MS,
    );
    /** Keys already audited as limited in their current window (one entry per window). */
    const auditedLimits = new Map<string, number>();

    app.post(
      '/api/auth/sign-in',
      {
        schema: {
          tags: ['auth'],
          summary: 'Sign in with a user name and password',
          body: SignInRequest,
          response: { 200: SignInResponse, ...errorResponses },
        },
      },
      async (req, reply) => {
        const { username, password } = req.body as { username: string; password: string };
        const userKey = username.toLowerCase();
        const limitedBy = failuresByUser.isBlocked(userKey)
          ? { key: `user:${userKey}`, limiter: failuresByUser, of: userKey }
          : failuresByAddress.isBlocked(req.ip)
            ? { key: `ip:${req.ip}`, limiter: failuresByAddress, of: req.ip }
            : null;
        if (limitedBy) {
          const retryAfterS = Math.ceil(limitedBy.limiter.retryAfterMs(limitedBy.of) / 1000);
          const until = deps.clock.now() + retryAfterS * 1000;
          // One audit entry per limited key and window, so a flood does not flood the log.
          if ((auditedLimits.get(limitedBy.key) ?? 0) < deps.clock.now()) {
            if (auditedLimits.size > 10_000) auditedLimits.clear();
            auditedLimits.set(limitedBy.key, until);
            await deps.audit.append({
              kind: 'auth.sign-in-limited',
              actor: { type: 'system', id: 'auth' },
              subject: `user:${username.slice(0, 64)}`,
              data: { ip: req.ip, limitedBy: limitedBy.key.split(':')[0], retryAfterS },
            });
          }
          void reply.header('retry-after', String(retryAfterS));
          fail(
            'request.rate-limited',
            `Too many failed sign-ins; try again in ${retryAfterS} s (or sign in with a passkey).`,
          );
        }
        const r = await deps.auth.signIn(username, password);
        if (!r.ok) {
          failuresByUser.hit(userKey);
          failuresByAddress.hit(req.ip);
          await deps.audit.append({
            kind: 'auth.sign-in-failed',
            actor: { type: 'system', id: 'auth' },
            subject: `user:${username.slice(0, 64)}`,
            data: { ip: req.ip },
          });
        }
        const v = unwrap(r);
        void reply.setCookie(SESSION_COOKIE, v.token, {
          ...sessionCookieOptions(deps),
          expires: new Date(v.expiresAt),
        });
        return { principal: v.principal, token: v.token, expiresAt: v.expiresAt };
      },
    );

    app.post(
      '/api/auth/sign-out',
      { schema: { tags: ['auth'], summary: 'Sign out (ends this sign-in session)' } },
      async (req, reply) => {
        const token = credentialOf(req);
        if (token) await deps.auth.signOut(token);
        void reply.clearCookie(SESSION_COOKIE, sessionCookieOptions(deps));
        return { ok: true };
      },
    );

    app.get(
      '/api/auth/session',
      {
        schema: {
          tags: ['auth'],
          summary:
            'Who is signed in on this browser, or null: never 401, so a page can ask on load without an error',
          response: {
            200: Type.Object({ principal: Type.Union([PrincipalView, Type.Null()]) }),
          },
        },
      },
      async (req, reply) => {
        const token = credentialOf(req);
        if (token === null || token.startsWith(API_KEY_PREFIX)) return { principal: null };
        const r = await deps.auth.principalForToken(token);
        if (!r.ok) {
          // An expired or unknown cookie is of no further use: drop it.
          void reply.clearCookie(SESSION_COOKIE, sessionCookieOptions(deps));
          return { principal: null };
        }
        return { principal: r.value };
      },
    );

    app.get(
      '/api/me',
      {
        schema: {
          tags: ['auth'],
          summary: 'The signed-in principal',
          response: { 200: Type.Object({ principal: PrincipalView }), ...errorResponses },
        },
      },
      async (req) => ({ principal: await principalOf(deps, req) }),
    );
  };
