/** The owner's home: status at a glance, and remote lock / unlock. */
import type { FastifyPluginAsync } from 'fastify';
import {
  DeliverySettingsBody,
  DoorParams,
  HomeParams,
  RemoteLockRequest,
  type DeliverySettingsRequestBody,
} from '../../protocol/http.ts';
import type { DeliverySettingsView } from '../../protocol/views.ts';
import { WEEKDAYS, type Home, type Principal } from '../../core/model.ts';
import type { AppDeps } from '../app.ts';
import { homeStatus } from '../home-status.ts';
import { denyObject, errorResponses, fail, householdWith } from './route-helpers.ts';

/** Remote unlock keeps the door open at most this long before the lock relocks itself, ms. */
export const REMOTE_UNLOCK_RELOCK_MS = 5 * 60_000;

/** The home of a household principal, if `homeId` is theirs; otherwise 404 (no leak). */
export async function ownHome(deps: AppDeps, p: Principal, homeId: string) {
  if (p.homeId !== homeId || (p.role !== 'owner' && p.role !== 'member'))
    return denyObject(deps, p, 'home.not-found', `home:${homeId}`);
  const home = await deps.store.homes.getHome(homeId);
  if (!home) fail('home.not-found');
  return home;
}

/** The in-home delivery settings of a home, as the API shows them. */
export function settingsOf(home: Home): DeliverySettingsView {
  return {
    inHomeDelivery: home.inHomeDelivery,
    daysOff: [...home.delivery.daysOff],
    askFirst: home.delivery.askFirst,
    askTimeoutS: Math.round(home.delivery.askTimeoutMs / 1000),
  };
}

export const homeRoutes =
  (deps: AppDeps): FastifyPluginAsync =>
  async (app) => {
    app.get(
      '/api/homes',
      { schema: { tags: ['homes'], summary: 'The homes of the signed-in owner' } },
      async (req) => {
        const p = await householdWith(deps, req, 'view-live');
        const home = p.homeId ? await deps.store.homes.getHome(p.homeId) : null;
        return { homes: home ? [home] : [] };
      },
    );

    app.get(
      '/api/homes/:homeId',
      {
        schema: {
          tags: ['homes'],
          summary: 'Home at a glance: each door’s lock, door and camera; stale shown as unknown',
          params: HomeParams,
          response: errorResponses,
        },
      },
      async (req) => {
        const p = await householdWith(deps, req, 'view-live');
        const { homeId } = req.params as { homeId: string };
        const home = await ownHome(deps, p, homeId);
        const doors = await deps.store.homes.listDoors(home.id);
        return homeStatus(home, doors, deps.gateway, deps.clock.now());
      },
    );

    app.get(
      '/api/homes/:homeId/settings',
      {
        schema: {
          tags: ['homes'],
          summary: 'In-home delivery settings: on / off, days off, "ask me first"',
          params: HomeParams,
          response: errorResponses,
        },
      },
      async (req) => {
        const p = await householdWith(deps, req, 'manage-delivery-settings');
        const { homeId } = req.params as { homeId: string };
        return { settings: settingsOf(await ownHome(deps, p, homeId)) };
      },
    );

    app.put(
      '/api/homes/:homeId/settings',
      {
        schema: {
          tags: ['homes'],
          summary: 'Replace the in-home delivery settings (audited)',
          params: HomeParams,
          body: DeliverySettingsBody,
          response: errorResponses,
        },
      },
      async (req) => {
        const p = await householdWith(deps, req, 'manage-delivery-settings');
        const { homeId } = req.params as { homeId: string };
        const body = req.body as DeliverySettingsRequestBody;
        const before = settingsOf(await ownHome(deps, p, homeId));
        const daysOff = WEEKDAYS.filter((d) => body.daysOff.includes(d));
        await deps.store.homes.updateDeliverySettings(homeId, body.inHomeDelivery, {
          daysOff,
          askFirst: body.askFirst,
          askTimeoutMs: body.askTimeoutS * 1000,
        });
        const after = settingsOf(await ownHome(deps, p, homeId));
        await deps.audit.append({
          kind: 'home.delivery-settings',
          actor: { type: 'principal', id: p.id },
          subject: `home:${homeId}`,
          data: { before, after },
        });
        return { settings: after };
      },
    );

    app.post(
      '/api/homes/:homeId/doors/:doorId/command',
      {
        schema: {
          tags: ['homes'],
          summary: 'Remote lock or unlock (unlock needs "confirm": true)',
          params: DoorParams,
          body: RemoteLockRequest,
          response: errorResponses,
        },
      },
      async (req) => {
        const p = await householdWith(deps, req, 'unlock');
        const { homeId, doorId } = req.params as { homeId: string; doorId: string };
        const { action, confirm } = req.body as { action: 'lock' | 'unlock'; confirm?: boolean };
        const home = await ownHome(deps, p, homeId);
        const door = await deps.store.homes.getDoor(doorId);
        if (!door || door.homeId !== homeId) fail('door.not-found');
        if (action === 'unlock' && confirm !== true) {
          fail('request.invalid', 'Unlocking from afar needs "confirm": true.');
        }
        await deps.audit.append({
          kind: 'remote.command',
          actor: { type: 'principal', id: p.id },
          subject: `door:${door.id}`,
          data: { action },
        });
        // An unlock from afar is the household's own, and says so: a home hub checks visitors'
        // unlocks against its grant list, not the household's.
        const out = await deps.gateway.command(
          door.lockDeviceId,
          action,
          action === 'unlock'
            ? { relockAfterMs: REMOTE_UNLOCK_RELOCK_MS, accessKind: 'household' }
            : {},
        );
        await deps.audit.append({
          kind: 'command.outcome',
          actor:
            out.status === 'ok' || out.status === 'error'
              ? { type: 'device', id: door.lockDeviceId }
              : { type: 'system', id: 'gateway' },
          subject: `door:${door.id}`,
          data: { commandId: out.commandId, action, status: out.status },
          ...(out.status === 'ok' || out.status === 'error' ? { deviceMac: out.reply.mac } : {}),
        });
        if (out.status === 'timeout' || out.status === 'not-sent')
          fail('lock.offline', 'The lock did not answer.');
        if (out.status === 'error')
          fail(
            out.reply.status === 'error' && out.reply.error.code === 'lock.jammed'
              ? 'lock.jammed'
              : 'lock.unconfirmed',
          );
        // The lock took the unlock: the household sees who opened from afar.
        if (action === 'unlock') await deps.entries?.remote(p, door);
        // The reply says the command was taken; the state comes from the lock's own report.
        const doors = await deps.store.homes.listDoors(homeId);
        return {
          command: { id: out.commandId, status: out.status },
          status: homeStatus(home, doors, deps.gateway, deps.clock.now()),
        };
      },
    );
  };
