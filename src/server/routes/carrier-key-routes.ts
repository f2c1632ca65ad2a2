/**
 * A carrier's API keys, managed by the carrier itself (scope `keys:manage`): made with a name
 * and scopes, listed, rotated and revoked. A key's secret is shown once, when it is made or
 * rotated; the store keeps only its SHA-256, so nobody can show it again.
 *
 * Two rules keep a key from doing more than it holds, or locking its carrier out:
 * - a key grants only scopes it holds itself, when it makes a key or rotates one (a rotation
 *   answers a new secret with the rotated key's scopes);
 * - an API key may not revoke the carrier's last working key that may manage keys (rotate it
 *   instead). A signed-in carrier admin may, since an admin can always make a new one.
 */
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { problem, ThresholdError, type Problem } from '../../core/errors.ts';
import { EmptyBody, Id } from '../../protocol/http.ts';
import type { ApiKeyView } from '../../protocol/views.ts';
import type { ApiKey } from '../../store/index.ts';
import type { AppDeps } from '../app.ts';
import { mintApiKey, tokenHash } from '../auth.ts';
import {
  CARRIER_SCOPES,
  carrierOf,
  type CarrierCaller,
  type CarrierScope,
} from './carrier-auth.ts';
import { errorResponses, fail } from './route-helpers.ts';

/** Working (unrevoked) keys a carrier may hold at once. */
export const MAX_WORKING_KEYS = 50;

/** `POST /api/carrier/keys`: a name for people, and what the key may do. */
export const CreateApiKeyRequest = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 100 }),
    // An enum, so a wrong scope is answered with one issue naming the allowed values.
    scopes: Type.Array(Type.Enum([...CARRIER_SCOPES]), {
      minItems: 1,
      maxItems: CARRIER_SCOPES.length,
      uniqueItems: true,
    }),
  },
  { additionalProperties: false },
);

const KeyParams = Type.Object({ keyId: Id }, { additionalProperties: false });

/** {@link ApiKeyView} as a response schema (the OpenAPI description shows it). */
export const ApiKeySchema = Type.Object({
  id: Type.String(),
  name: Type.String(),
  prefix: Type.String({ description: 'The first 8 characters after thk_, to tell keys apart.' }),
  scopes: Type.Array(Type.String()),
  createdAt: Type.Integer({ description: 'ms since the Unix epoch' }),
  createdBy: Type.Union([Type.String(), Type.Null()]),
  lastUsedAt: Type.Union([Type.Integer(), Type.Null()]),
  revokedAt: Type.Union([Type.Integer(), Type.Null()]),
  replacedBy: Type.Union([Type.String(), Type.Null()]),
  status: Type.Union([Type.Literal('active'), Type.Literal('revoked')]),
});

/** A key just made, with its secret: shown in this answer only. */
const NewKeyResponse = Type.Object({
  key: ApiKeySchema,
  secret: Type.String({ description: 'The API key itself (thk_…); shown once, never again.' }),
});

/** The API's view of a key: never its secret or hash. */
export function apiKeyView(k: ApiKey): ApiKeyView {
  return {
    id: k.id,
    name: k.name,
    prefix: k.prefix,
    scopes: k.scopes,
    createdAt: k.createdAt,
    createdBy: k.createdBy,
    lastUsedAt: k.lastUsedAt,
    revokedAt: k.revokedAt,
    replacedBy: k.replacedBy,
    status: k.revokedAt === null ? 'active' : 'revoked',
  };
}

/**
 * Refuses a carrier an object that is not its own (another carrier's key, courier or
 * invitation), answering as for an unknown one, and audits the attempt under the key or admin
 * that made it: probing other carriers' ids leaves a trace.
 */
export async function denyCarrierObject(
  deps: AppDeps,
  caller: CarrierCaller,
  code: Problem['code'],
  object: string,
): Promise<never> {
  await deps.audit.append({
    kind: 'auth.object-denied',
    actor: caller.actor,
    subject: object,
    data: { role: 'carrier', carrierId: caller.carrierId, answered: code },
  });
  throw ThresholdError.from(problem(code));
}

/**
 * Refuses, with an `auth.denied` audit entry, scopes the caller would grant without holding
 * them itself.
 */
async function refuseScopesNotHeld(
  deps: AppDeps,
  req: FastifyRequest,
  caller: CarrierCaller,
  scopes: readonly string[],
): Promise<void> {
  const lacking = scopes.filter((s) => !caller.scopes.has(s as CarrierScope));
  if (lacking.length === 0) return;
  await deps.audit.append({
    kind: 'auth.denied',
    actor: caller.actor,
    subject: `route:${req.routeOptions.url ?? req.url}`,
    data: { method: req.method, role: 'carrier', carrierId: caller.carrierId, scopes: lacking },
  });
  throw new ThresholdError(
    'auth.forbidden',
    `This API key cannot grant ${lacking.map((s) => `"${s}"`).join(', ')}: it does not hold ${lacking.length === 1 ? 'that scope' : 'those scopes'} itself.`,
    { scopes: lacking },
  );
}

/** Scopes in the catalogue's order, so equal sets read the same everywhere. */
function ordered(scopes: readonly string[]): CarrierScope[] {
  return CARRIER_SCOPES.filter((s) => scopes.includes(s));
}

export const carrierKeyRoutes =
  (deps: AppDeps): FastifyPluginAsync =>
  async (app) => {
    /** The caller's own key with this id, or 404 (audited when it is another carrier's). */
    const ownKey = async (caller: CarrierCaller, keyId: string): Promise<ApiKey> => {
      const k = await deps.store.principals.getApiKey(keyId);
      if (!k) fail('key.not-found');
      if (k.carrierId !== caller.carrierId)
        return denyCarrierObject(deps, caller, 'key.not-found', `apikey:${keyId}`);
      return k;
    };

    app.post(
      '/api/carrier/keys',
      {
        schema: {
          tags: ['carrier'],
          summary:
            'Make an API key with a name and scopes (keys:manage). The secret is in this answer only.',
          body: CreateApiKeyRequest,
          response: { 201: NewKeyResponse, ...errorResponses },
        },
      },
      async (req, reply) => {
        const caller = await carrierOf(deps, req, 'keys:manage');
        const body = req.body as { name: string; scopes: CarrierScope[] };
        const name = body.name.trim();
        if (name.length === 0) fail('request.invalid', 'body/name must not be blank.');
        await refuseScopesNotHeld(deps, req, caller, body.scopes);
        const scopes = ordered(body.scopes);
        const made = mintApiKey();
        // Counted and inserted in one step (a lock per carrier): keys asked for at once, of one
        // server or several, cannot pass the limit together.
        const added = await deps.store.principals.createApiKeyWithin(
          {
            id: made.id,
            carrierId: caller.carrierId,
            keyHash: tokenHash(made.key),
            createdAt: deps.clock.now(),
            prefix: made.prefix,
            name,
            scopes,
            createdBy: caller.actor.id,
          },
          MAX_WORKING_KEYS,
        );
        if (!added) fail('key.limit-reached');
        await deps.audit.append({
          kind: 'apikey.created',
          actor: caller.actor,
          subject: `carrier:${caller.carrierId}`,
          data: { keyId: made.id, name, scopes },
        });
        const stored = await deps.store.principals.getApiKey(made.id);
        if (!stored) fail('key.not-found');
        void reply.code(201);
        return { key: apiKeyView(stored), secret: made.key };
      },
    );

    app.get(
      '/api/carrier/keys',
      {
        schema: {
          tags: ['carrier'],
          summary: 'My API keys, revoked ones too (keys:manage); never a secret',
          response: errorResponses,
        },
      },
      async (req) => {
        const caller = await carrierOf(deps, req, 'keys:manage');
        const keys = await deps.store.principals.listApiKeys(caller.carrierId);
        return { keys: keys.map(apiKeyView) };
      },
    );

    app.post(
      '/api/carrier/keys/:keyId/rotate',
      {
        schema: {
          tags: ['carrier'],
          summary:
            'Rotate a key (keys:manage): a new key with the same name and scopes; the old one stops working at once. The new secret is in this answer only.',
          params: KeyParams,
          body: EmptyBody,
          response: {
            201: Type.Object({ ...NewKeyResponse.properties, replaced: ApiKeySchema }),
            ...errorResponses,
          },
        },
      },
      async (req, reply) => {
        const caller = await carrierOf(deps, req, 'keys:manage');
        const { keyId } = req.params as { keyId: string };
        const old = await ownKey(caller, keyId);
        if (old.revokedAt !== null) fail('key.revoked');
        // The new secret carries the old key's scopes: only a caller holding them all may ask.
        await refuseScopesNotHeld(deps, req, caller, old.scopes);
        const made = await deps.auth.rotateApiKey(old.id, caller.actor.id);
        if (!made) fail('key.revoked');
        await deps.audit.append({
          kind: 'apikey.rotated',
          actor: caller.actor,
          subject: `carrier:${caller.carrierId}`,
          data: { keyId: old.id, replacedBy: made.id },
        });
        const [fresh, replaced] = await Promise.all([
          deps.store.principals.getApiKey(made.id),
          deps.store.principals.getApiKey(old.id),
        ]);
        if (!fresh || !replaced) fail('key.not-found');
        void reply.code(201);
        return { key: apiKeyView(fresh), secret: made.key, replaced: apiKeyView(replaced) };
      },
    );

    app.post(
      '/api/carrier/keys/:keyId/revoke',
      {
        schema: {
          tags: ['carrier'],
          summary:
            'Revoke a key at once (keys:manage). An API key may not revoke the last working key that may manage keys.',
          params: KeyParams,
          body: EmptyBody,
          response: errorResponses,
        },
      },
      async (req) => {
        const caller = await carrierOf(deps, req, 'keys:manage');
        const { keyId } = req.params as { keyId: string };
        const k = await ownKey(caller, keyId);
        if (k.revokedAt !== null) fail('key.revoked');
        // An API key may not revoke the carrier's last key that manages keys (an admin signed
        // in may: it can make another). Checked and revoked in one step (a lock per carrier),
        // so two such keys revoking each other at once cannot both go.
        const outcome = await deps.store.principals.revokeApiKeyKeeping(
          k.id,
          deps.clock.now(),
          caller.keyId !== null ? 'keys:manage' : null,
        );
        if (outcome === 'not-found') fail('key.not-found');
        if (outcome === 'already-revoked') fail('key.revoked');
        if (outcome === 'last-with-scope') fail('key.last-manager');
        await deps.audit.append({
          kind: 'apikey.revoked',
          actor: caller.actor,
          subject: `carrier:${caller.carrierId}`,
          data: { keyId: k.id, name: k.name },
        });
        const after = await deps.store.principals.getApiKey(k.id);
        return { key: apiKeyView(after ?? k) };
      },
    );
  };
