/**
 * Keypad PINs for the household: which slot holds whose code, when it opens (its window) and
 * whether the lock confirmed it; give a person a code (shown once); empty a slot. The work is
 * PinSync's (pin-sync.ts): written to the lock with its window, read back, retried with
 * backoff.
 */
import { randomInt } from 'node:crypto';
import type { FastifyPluginAsync } from 'fastify';
import type { Principal } from '../../core/model.ts';
import { AssignPinRequest, EmptyBody, LockParams, PinSlotParams } from '../../protocol/http.ts';
import type { PinSlotView } from '../../protocol/views.ts';
import type { PinSlot } from '../../store/index.ts';
import type { AppDeps } from '../app.ts';
import { ownHome } from './home-routes.ts';
import { denyObject, errorResponses, householdWith, unwrap } from './route-helpers.ts';

/** Digits of a code Threshold makes up. */
export const GENERATED_PIN_DIGITS = 6;

function slotView(s: PinSlot): PinSlotView {
  return {
    lockId: s.lockDeviceId,
    slot: s.slot,
    principalId: s.principalId,
    name: s.name,
    desired: s.desired,
    sync: s.sync,
    attempts: s.attempts,
    nextAttemptAt: s.nextAttemptAt,
    lastError: s.lastError,
    checkedAt: s.checkedAt,
    updatedAt: s.updatedAt,
    window: s.window,
    lockWindow: s.lockWindow,
  };
}

/** The lock if it is a lock of the principal's home; otherwise 404, audited. */
async function ownLock(deps: AppDeps, p: Principal, homeId: string, lockId: string) {
  await ownHome(deps, p, homeId);
  const device = await deps.store.homes.getDevice(lockId);
  if (!device || device.homeId !== homeId || device.kind !== 'lock')
    return denyObject(deps, p, 'device.not-found', `device:${lockId}`);
  return device;
}

export const pinRoutes =
  (deps: AppDeps): FastifyPluginAsync =>
  async (app) => {
    const pins = deps.pins;
    if (!pins) return;

    app.get(
      '/api/homes/:homeId/locks/:lockId/pins',
      {
        schema: {
          tags: ['pins'],
          summary: 'The keypad slots of a lock: whose, and whether the lock confirmed them',
          params: LockParams,
          response: errorResponses,
        },
      },
      async (req) => {
        const p = await householdWith(deps, req, 'manage-access');
        const { homeId, lockId } = req.params as { homeId: string; lockId: string };
        await ownLock(deps, p, homeId, lockId);
        return { slots: (await pins.slots(lockId)).map(slotView) };
      },
    );

    app.put(
      '/api/homes/:homeId/locks/:lockId/pins/:slot',
      {
        schema: {
          tags: ['pins'],
          summary:
            'Give a person of the home a keypad code in this slot; the code is answered once and written to the lock, then confirmed by read-back',
          params: PinSlotParams,
          body: AssignPinRequest,
          response: errorResponses,
        },
      },
      async (req) => {
        const p = await householdWith(deps, req, 'manage-access');
        const { homeId, lockId, slot } = req.params as {
          homeId: string;
          lockId: string;
          slot: string;
        };
        const body = req.body as { principalId: string; name?: string; code?: string };
        await ownLock(deps, p, homeId, lockId);
        const code =
          body.code ??
          String(randomInt(0, 10 ** GENERATED_PIN_DIGITS)).padStart(GENERATED_PIN_DIGITS, '0');
        const row = unwrap(
          await pins.assign(lockId, Number(slot), code, {
            principalId: body.principalId,
            ...(body.name === undefined ? {} : { name: body.name }),
            actor: { type: 'principal', id: p.id },
          }),
        );
        // The only time the code leaves the server in an answer.
        return { slot: slotView(row), code };
      },
    );

    app.post(
      '/api/homes/:homeId/locks/:lockId/pins/:slot/clear',
      {
        schema: {
          tags: ['pins'],
          summary: 'Empty a keypad slot (also how a code found on the lock is removed)',
          params: PinSlotParams,
          body: EmptyBody,
          response: errorResponses,
        },
      },
      async (req) => {
        const p = await householdWith(deps, req, 'manage-access');
        const { homeId, lockId, slot } = req.params as {
          homeId: string;
          lockId: string;
          slot: string;
        };
        await ownLock(deps, p, homeId, lockId);
        const row = unwrap(await pins.clear(lockId, Number(slot), { type: 'principal', id: p.id }));
        return { slot: slotView(row) };
      },
    );
  };
