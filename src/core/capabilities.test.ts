import { describe, expect, it } from 'vitest';
import { CAPABILITIES, can, isHousehold, ROLE_CAPABILITIES } from './capabilities.ts';
import type { Role } from './model.ts';

const ROLES: readonly Role[] = ['owner', 'member', 'guest', 'courier', 'carrier'];

describe('capabilities', () => {
  it('gives the owner everything and a member everything but managing devices and the household', () => {
    for (const c of CAPABILITIES) expect(can({ role: 'owner' }, c)).toBe(true);
    for (const c of CAPABILITIES)
      expect(can({ role: 'member' }, c)).toBe(c !== 'manage-devices' && c !== 'manage-household');
  });

  it('gives a guest only "unlock", and couriers and carriers nothing of the household’s', () => {
    expect(CAPABILITIES.filter((c) => can({ role: 'guest' }, c))).toEqual(['unlock']);
    for (const role of ['courier', 'carrier'] as const)
      expect(CAPABILITIES.filter((c) => can({ role }, c))).toEqual([]);
  });

  it('lists only known capabilities for every role', () => {
    for (const role of ROLES)
      for (const c of ROLE_CAPABILITIES[role]) expect(CAPABILITIES).toContain(c);
  });

  it('counts only owners and members of that very home as its household', () => {
    expect(isHousehold({ role: 'owner', homeId: 'h1' }, 'h1')).toBe(true);
    expect(isHousehold({ role: 'member', homeId: 'h1' }, 'h1')).toBe(true);
    expect(isHousehold({ role: 'owner', homeId: 'h2' }, 'h1')).toBe(false);
    expect(isHousehold({ role: 'guest', homeId: 'h1' }, 'h1')).toBe(false);
    expect(isHousehold({ role: 'courier', homeId: null }, 'h1')).toBe(false);
  });
});
