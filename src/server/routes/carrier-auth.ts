/**
 * Who is calling a carrier route, and may they do this? A carrier acts through an **API key**
 * (its back office: scoped, rate-limited per key) or through a **carrier admin**, a person of
 * role `carrier` who signs in with a password and holds every scope. Either way the answer
 * names the carrier, so every route can check the object against it.
 */
import type { FastifyRequest } from 'fastify';
import type { AuditActor } from '../../core/audit-chain.ts';
import { ThresholdError } from '../../core/errors.ts';
import type { Principal } from '../../core/model.ts';
import type { AppDeps } from '../app.ts';
import { API_KEY_PREFIX } from '../auth.ts';
import { credentialOf } from './route-helpers.ts';

/** What a carrier's credential may do. */
export const CARRIER_SCOPES = [
  /** Read its deliveries, their events and proofs. */
  'deliveries:read',
  /** Create, assign, reassign and cancel deliveries. */
  'deliveries:write',
  /** Invite couriers, list them, revoke them. */
  'couriers:manage',
  /** Register, list and remove webhooks; read their delivery log; resend. */
  'webhooks:manage',
  /** Create, list, rotate and revoke API keys. */
  'keys:manage',
] as const;

/** One of {@link CARRIER_SCOPES}. */
export type CarrierScope = (typeof CARRIER_SCOPES)[number];

/** A carrier's caller, as a route sees it. */
export interface CarrierCaller {
  readonly carrierId: string;
  /** The carrier as a principal (role `carrier`); for an admin, the admin person. */
  readonly principal: Principal;
  /** The API key used, or null for a signed-in admin. */
  readonly keyId: string | null;
  readonly scopes: ReadonlySet<CarrierScope>;
  /** Who the audit log names: the key (`apikey:<id>` as a principal id) or the admin. */
  readonly actor: AuditActor;
}

/** Requests per minute one API key (or one admin) may make; beyond, 429 with Retry-After. */
export const CARRIER_REQUESTS_PER_MINUTE = 600;

function isScope(s: string): s is CarrierScope {
  return (CARRIER_SCOPES as readonly string[]).includes(s);
}

/**
 * The carrier caller of the request, holding `scope`: 401 without a valid credential, 403 (and
 * an `auth.denied` audit entry) for anyone else or a key without the scope, 429 beyond
 * {@link CARRIER_REQUESTS_PER_MINUTE} for the key.
 */
export async function carrierOf(
  deps: AppDeps,
  req: FastifyRequest,
  scope: CarrierScope,
): Promise<CarrierCaller> {
  const token = credentialOf(req);
  if (token === null) throw new ThresholdError('auth.required');
  let caller: CarrierCaller;
  if (token.startsWith(API_KEY_PREFIX)) {
    const r = await deps.auth.apiKeyCaller(token);
    if (!r.ok) throw ThresholdError.from(r.problem);
    const { principal, keyId, scopes } = r.value;
    caller = {
      carrierId: principal.carrierId ?? principal.id,
      principal,
      keyId,
      scopes: new Set(scopes.filter(isScope)),
      actor: { type: 'principal', id: `apikey:${keyId}` },
    };
  } else {
    const r = await deps.auth.principalForToken(token);
    if (!r.ok) throw ThresholdError.from(r.problem);
    const p = r.value;
    if (p.role !== 'carrier' || p.carrierId === null) {
      await deps.audit.append({
        kind: 'auth.denied',
        actor: { type: 'principal', id: p.id },
        subject: `route:${req.routeOptions.url ?? req.url}`,
        data: { method: req.method, role: p.role },
      });
      throw new ThresholdError('auth.forbidden');
    }
    caller = {
      carrierId: p.carrierId,
      principal: p,
      keyId: null,
      scopes: new Set(CARRIER_SCOPES),
      actor: { type: 'principal', id: p.id },
    };
  }
  if (deps.carrierLimiter && !deps.carrierLimiter.allow(caller.keyId ?? caller.principal.id)) {
    throw new ThresholdError(
      'request.rate-limited',
      `At most ${CARRIER_REQUESTS_PER_MINUTE} requests a minute per API key.`,
      { retryAfterS: 60 },
    );
  }
  if (!caller.scopes.has(scope)) {
    await deps.audit.append({
      kind: 'auth.denied',
      actor: caller.actor,
      subject: `route:${req.routeOptions.url ?? req.url}`,
      data: { method: req.method, role: 'carrier', carrierId: caller.carrierId, scope },
    });
    throw new ThresholdError('auth.forbidden', `This API key lacks the scope "${scope}".`);
  }
  return caller;
}
