/** Sign-in, sign-out and "who am I". */
import type { FastifyPluginAsync } from 'fastify';
import { Type } from 'typebox';
import { PrincipalView, SignInRequest, SignInResponse } from '../../protocol/http.ts';
import type { AppDeps } from '../app.ts';
import { API_KEY_PREFIX } from '../auth.ts';
import {
  credentialOf,
  errorResponses,
  principalOf,
  SESSION_COOKIE,
  unwrap,
} from './route-helpers.ts';

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
        const r = await deps.auth.signIn(username, password);
        if (!r.ok) {
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
