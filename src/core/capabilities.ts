/**
 * What each role may do (least privilege). A route asks for a capability, never only a role;
 * and it still checks the object (the home, the session, the delivery) against the principal.
 *
 * - owner: everything;
 * - member of the household: everything but managing devices and the household itself (by
 *   default);
 * - guest: only to unlock, and only within a grant (checked by the access decision);
 * - courier: nothing here; only its own current delivery, through the courier routes;
 * - carrier: nothing here; only its own deliveries, through the carrier API.
 */
import type { Principal, Role } from './model.ts';

export const CAPABILITIES = [
  'unlock',
  'view-live',
  'view-history',
  'manage-access',
  'manage-devices',
  'manage-delivery-settings',
  'manage-household',
] as const;

export type Capability = (typeof CAPABILITIES)[number];

/** The capabilities of each role, by default. */
export const ROLE_CAPABILITIES: Readonly<Record<Role, readonly Capability[]>> = {
  owner: CAPABILITIES,
  member: CAPABILITIES.filter((c) => c !== 'manage-devices' && c !== 'manage-household'),
  guest: ['unlock'],
  courier: [],
  carrier: [],
};

/** Whether the principal's role grants the capability. */
export function can(principal: Pick<Principal, 'role'>, capability: Capability): boolean {
  return ROLE_CAPABILITIES[principal.role].includes(capability);
}

/** Whether the principal belongs to the household of this home (owner or member). */
export function isHousehold(
  principal: Pick<Principal, 'role' | 'homeId'>,
  homeId: string,
): boolean {
  return (principal.role === 'owner' || principal.role === 'member') && principal.homeId === homeId;
}
