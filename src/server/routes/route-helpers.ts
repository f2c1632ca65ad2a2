/** What every route file shares: who is asking, and turning refusals into HTTP answers. */
import type { FastifyRequest } from 'fastify';
import { problem, ThresholdError, type Problem, type Result } from '../../core/errors.ts';
import { can, type Capability } from '../../core/capabilities.ts';
import type { Principal, Role } from '../../core/model.ts';
import { API_KEY_PREFIX } from '../auth.ts';
import type { AppDeps } from '../app.ts';

/** Name of the sign-in cookie. */
export const SESSION_COOKIE = 'threshold_session';

/** The bearer token or sign-in cookie of a request, if any. */
export function credentialOf(req: FastifyRequest): string | null {
  const h = req.headers.authorization;
  if (typeof h === 'string' && h.startsWith('Bearer ')) return h.slice(7).trim() || null;
  const c = req.cookies[SESSION_COOKIE];
  return typeof c === 'string' && c.length > 0 ? c : null;
}

/** The principal making the request; throws `auth.required` (401) when there is none. */
export async function principalOf(
  deps: AppDeps,
  req: FastifyRequest,
  roles?: readonly Role[],
): Promise<Principal> {
  const token = credentialOf(req);
  if (token === null) throw new ThresholdError('auth.required');
  const r = token.startsWith(API_KEY_PREFIX)
    ? await deps.auth.principalForApiKey(token)
    : await deps.auth.principalForToken(token);
  if (!r.ok) throw ThresholdError.from(r.problem);
  if (roles && !roles.includes(r.value.role)) {
    await deps.audit.append({
      kind: 'auth.denied',
      actor: { type: 'principal', id: r.value.id },
      subject: `route:${req.routeOptions.url ?? req.url}`,
      data: { method: req.method, role: r.value.role },
    });
    throw new ThresholdError('auth.forbidden');
  }
  return r.value;
}

/**
 * A member of a household (owner or member) whose role grants `capability`; otherwise 401 /
 * 403, and a denial for a signed-in principal is audited. The route must still check that the
 * object it touches belongs to this principal's home.
 */
export async function householdWith(
  deps: AppDeps,
  req: FastifyRequest,
  capability: Capability,
): Promise<Principal> {
  const p = await principalOf(deps, req, ['owner', 'member']);
  if (!can(p, capability)) {
    await deps.audit.append({
      kind: 'auth.denied',
      actor: { type: 'principal', id: p.id },
      subject: `route:${req.routeOptions.url ?? req.url}`,
      data: { method: req.method, role: p.role, capability },
    });
    throw new ThresholdError('auth.forbidden');
  }
  return p;
}

/**
 * Refuses a signed-in principal an object that is not theirs (another home's, another
 * person's), answering as if it did not exist, and audits the attempt: someone probing other
 * tenants' ids leaves a trace.
 */
export async function denyObject(
  deps: AppDeps,
  p: Principal,
  code: Problem['code'],
  object: string,
): Promise<never> {
  await deps.audit.append({
    kind: 'auth.object-denied',
    actor: { type: 'principal', id: p.id },
    subject: object,
    data: { role: p.role, answered: code },
  });
  throw ThresholdError.from(problem(code));
}

/** The value of a result, or the refusal thrown as a {@link ThresholdError}. */
export function unwrap<T>(r: Result<T>): T {
  if (!r.ok) throw ThresholdError.from(r.problem);
  return r.value;
}

/** Throws a refusal. */
export function fail(code: Problem['code'], message?: string): never {
  throw ThresholdError.from(problem(code, message));
}

/** Standard error responses for the OpenAPI description. */
export const errorResponses = {
  400: { $ref: 'ErrorResponse#' },
  401: { $ref: 'ErrorResponse#' },
  403: { $ref: 'ErrorResponse#' },
  404: { $ref: 'ErrorResponse#' },
  409: { $ref: 'ErrorResponse#' },
} as const;
