/**
 * Passkeys: a signed-in principal lists, registers and removes its passkeys; anyone may sign in
 * with one. The browser's WebAuthn answers are checked by {@link Passkeys}; this file validates
 * their shape, sets the sign-in cookie and writes the audit log.
 */
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { AuthenticationResponseJSON, RegistrationResponseJSON } from '@simplewebauthn/server';
import { Type } from 'typebox';
import type { Role } from '../../core/model.ts';
import { EmptyBody, SignInResponse } from '../../protocol/http.ts';
import type { AppDeps } from '../app.ts';
import { passkeyView, refusalOf, type Passkeys } from '../passkeys.ts';
import { errorResponses, fail, principalOf, SESSION_COOKIE, unwrap } from './route-helpers.ts';
import { sessionCookieOptions } from './auth-routes.ts';
import { FixedWindowLimiter } from '../rate-limiter.ts';

const strict = { additionalProperties: false } as const;
// WebAuthn answers grow new fields (extensions, hints) faster than this server; unknown fields
// inside them are ignored by the verifier, so they are let through rather than refused.
const open = { additionalProperties: true } as const;

/** Unpadded base64url, as browsers and @simplewebauthn/browser encode binary fields. */
const Base64Url = (maxLength: number) =>
  Type.String({ minLength: 1, maxLength, pattern: '^[A-Za-z0-9_-]+$' });

/** A credential id: at most 1023 bytes by the spec, so 1364 base64url characters. */
const CredentialId = Base64Url(1364);

/** `RegistrationResponseJSON` from `navigator.credentials.create()` / `startRegistration()`. */
export const RegistrationResponseBody = Type.Object(
  {
    id: CredentialId,
    rawId: CredentialId,
    type: Type.Literal('public-key'),
    response: Type.Object(
      {
        clientDataJSON: Base64Url(4096),
        attestationObject: Base64Url(12_000),
        transports: Type.Optional(Type.Array(Type.String({ maxLength: 32 }), { maxItems: 10 })),
      },
      open,
    ),
    clientExtensionResults: Type.Optional(Type.Object({}, open)),
    authenticatorAttachment: Type.Optional(Type.String({ maxLength: 32 })),
  },
  open,
);

/** `AuthenticationResponseJSON` from `navigator.credentials.get()` / `startAuthentication()`. */
export const AuthenticationResponseBody = Type.Object(
  {
    id: CredentialId,
    rawId: CredentialId,
    type: Type.Literal('public-key'),
    response: Type.Object(
      {
        clientDataJSON: Base64Url(4096),
        authenticatorData: Base64Url(4096),
        signature: Base64Url(1400),
        // 64 bytes at most; some browsers send null when the authenticator gave none.
        userHandle: Type.Optional(Type.Union([Base64Url(86), Type.Null()])),
      },
      open,
    ),
    clientExtensionResults: Type.Optional(Type.Object({}, open)),
    authenticatorAttachment: Type.Optional(Type.String({ maxLength: 32 })),
  },
  open,
);

/** `POST /api/auth/passkeys/registration`. */
export const PasskeyRegistrationRequest = Type.Object(
  {
    // No control characters: the name is shown in lists and written to the audit log.
    name: Type.String({ minLength: 1, maxLength: 64, pattern: '^[^\\u0000-\\u001f\\u007f]+$' }),
    response: RegistrationResponseBody,
  },
  strict,
);

/** `POST /api/auth/passkeys/authentication`. */
export const PasskeyAuthenticationRequest = Type.Object(
  { challengeId: Base64Url(64), response: AuthenticationResponseBody },
  strict,
);

/** `DELETE /api/auth/passkeys/:passkeyId`. */
export const PasskeyParams = Type.Object({ passkeyId: CredentialId }, strict);

/** A passkey as `GET /api/auth/passkeys` lists it (`PasskeyView`). */
export const PasskeyViewSchema = Type.Object({
  id: Type.String(),
  name: Type.String(),
  createdAt: Type.Integer(),
  lastUsedAt: Type.Union([Type.Integer(), Type.Null()]),
  backedUp: Type.Boolean(),
});

/** Everyone who signs in with a password may add passkeys; carriers use API keys instead. */
const PASSWORD_ROLES: readonly Role[] = ['owner', 'member', 'guest', 'courier'];

/** Sign-in attempts per client address and minute, for options and for answers, each. */
export const PASSKEY_SIGN_IN_LIMIT_PER_MINUTE = 30;

/** The passkey routes; `passkeys` holds the outstanding challenges, so make one per server. */
export const passkeyRoutes =
  (deps: AppDeps, passkeys: Passkeys): FastifyPluginAsync =>
  async (app) => {
    const optionLimiter = new FixedWindowLimiter(
      deps.clock,
      PASSKEY_SIGN_IN_LIMIT_PER_MINUTE,
      60_000,
    );
    const answerLimiter = new FixedWindowLimiter(
      deps.clock,
      PASSKEY_SIGN_IN_LIMIT_PER_MINUTE,
      60_000,
    );
    // Counted before the body is parsed, so malformed attempts count too.
    const limitBy =
      (limiter: FixedWindowLimiter) =>
      async (req: FastifyRequest): Promise<void> => {
        if (!limiter.allow(req.ip)) fail('request.rate-limited');
      };

    app.get(
      '/api/auth/passkeys',
      {
        schema: {
          tags: ['auth'],
          summary: 'The signed-in principal’s passkeys',
          response: {
            200: Type.Object({ passkeys: Type.Array(PasskeyViewSchema) }),
            ...errorResponses,
          },
        },
      },
      async (req) => {
        const p = await principalOf(deps, req, PASSWORD_ROLES);
        return { passkeys: await passkeys.list(p) };
      },
    );

    app.post(
      '/api/auth/passkeys/registration/options',
      {
        schema: {
          tags: ['auth'],
          summary: 'Start adding a passkey: options for navigator.credentials.create()',
          body: EmptyBody,
          response: { 200: Type.Object({ options: Type.Unknown() }), ...errorResponses },
        },
      },
      async (req) => {
        const p = await principalOf(deps, req, PASSWORD_ROLES);
        return { options: await passkeys.registrationOptions(p) };
      },
    );

    app.post(
      '/api/auth/passkeys/registration',
      {
        schema: {
          tags: ['auth'],
          summary: 'Finish adding a passkey with the browser’s answer',
          body: PasskeyRegistrationRequest,
          response: { 200: Type.Object({ passkey: PasskeyViewSchema }), ...errorResponses },
        },
      },
      async (req) => {
        const p = await principalOf(deps, req, PASSWORD_ROLES);
        const { name, response } = req.body as { name: string; response: unknown };
        const passkey = unwrap(
          await passkeys.verifyRegistration(p, name, response as RegistrationResponseJSON),
        );
        await deps.audit.append({
          kind: 'auth.passkey-registered',
          actor: { type: 'principal', id: p.id },
          subject: `passkey:${passkey.id}`,
          data: { name: passkey.name, deviceType: passkey.deviceType, backedUp: passkey.backedUp },
        });
        return { passkey: passkeyView(passkey) };
      },
    );

    app.delete(
      '/api/auth/passkeys/:passkeyId',
      {
        schema: {
          tags: ['auth'],
          summary: 'Remove one of the signed-in principal’s passkeys',
          params: PasskeyParams,
          response: { 200: Type.Object({ ok: Type.Literal(true) }), ...errorResponses },
        },
      },
      async (req) => {
        const p = await principalOf(deps, req, PASSWORD_ROLES);
        const { passkeyId } = req.params as { passkeyId: string };
        unwrap(await passkeys.remove(p, passkeyId));
        await deps.audit.append({
          kind: 'auth.passkey-removed',
          actor: { type: 'principal', id: p.id },
          subject: `passkey:${passkeyId}`,
          data: {},
        });
        return { ok: true as const };
      },
    );

    app.post(
      '/api/auth/passkeys/authentication/options',
      {
        onRequest: limitBy(optionLimiter),
        schema: {
          tags: ['auth'],
          summary: 'Start signing in with a passkey: options for navigator.credentials.get()',
          body: EmptyBody,
          response: {
            200: Type.Object({ options: Type.Unknown(), challengeId: Type.String() }),
            ...errorResponses,
          },
        },
      },
      async () => passkeys.authenticationOptions(),
    );

    app.post(
      '/api/auth/passkeys/authentication',
      {
        onRequest: limitBy(answerLimiter),
        schema: {
          tags: ['auth'],
          summary: 'Sign in with a passkey (sets the sign-in cookie, like POST /api/auth/sign-in)',
          body: PasskeyAuthenticationRequest,
          response: { 200: SignInResponse, ...errorResponses },
        },
      },
      async (req, reply) => {
        const { challengeId, response } = req.body as {
          challengeId: string;
          response: AuthenticationResponseJSON & { response: { userHandle?: string | null } };
        };
        // JSON from some browsers has `userHandle: null` where the type has it absent.
        const { userHandle, ...assertion } = response.response;
        const answer: AuthenticationResponseJSON = {
          ...response,
          response: typeof userHandle === 'string' ? { ...assertion, userHandle } : assertion,
        };
        const r = await passkeys.verifyAuthentication(challengeId, answer);
        if (!r.ok) {
          await deps.audit.append({
            kind: 'auth.passkey-sign-in-failed',
            actor: { type: 'system', id: 'auth' },
            subject: `passkey:${response.id}`,
            data: { ip: req.ip, reason: refusalOf(r.problem) ?? r.problem.code },
          });
        }
        const { principal, passkey } = unwrap(r);
        const session = await deps.auth.openSession(principal);
        await deps.audit.append({
          kind: 'auth.passkey-sign-in',
          actor: { type: 'principal', id: principal.id },
          subject: `passkey:${passkey.id}`,
          data: { ip: req.ip },
        });
        void reply.setCookie(SESSION_COOKIE, session.token, {
          ...sessionCookieOptions(deps),
          expires: new Date(session.expiresAt),
        });
        return session;
      },
    );
  };
