/**
 * "Who unlocked": the household reads the home's entries, and each owner or member chooses
 * whose entries are pushed to them. The recording is EntryRecorder's (entries.ts).
 */
import type { FastifyPluginAsync } from 'fastify';
import { EntriesQuery, EntryAlertsRequest, HomeParams } from '../../protocol/http.ts';
import type { EntryAlertsView } from '../../protocol/views.ts';
import type { EntryAlertMode } from '../../store/index.ts';
import type { AppDeps } from '../app.ts';
import { defaultAlertMode } from '../entries.ts';
import { ownHome } from './home-routes.ts';
import { errorResponses, fail, householdWith } from './route-helpers.ts';

/** Entries one page shows when the client does not say. */
const DEFAULT_ENTRY_PAGE = 50;

export const entryRoutes =
  (deps: AppDeps): FastifyPluginAsync =>
  async (app) => {
    const entries = deps.entries;
    if (!entries) return;

    app.get(
      '/api/homes/:homeId/entries',
      {
        schema: {
          tags: ['entries'],
          summary: 'Who unlocked: every unlock of the home’s doors, by whom and how, newest first',
          params: HomeParams,
          querystring: EntriesQuery,
          response: errorResponses,
        },
      },
      async (req) => {
        const p = await householdWith(deps, req, 'view-history');
        const { homeId } = req.params as { homeId: string };
        await ownHome(deps, p, homeId);
        const q = req.query as { before?: string; limit?: string };
        const limit = q.limit === undefined ? DEFAULT_ENTRY_PAGE : Number(q.limit);
        if (!(limit >= 1 && limit <= 200)) fail('request.invalid', 'limit is 1 to 200.');
        const before = q.before === undefined ? null : Number(q.before);
        return { entries: await entries.list(homeId, before, limit) };
      },
    );

    /** The signed-in person's choice, with the people they may choose from. */
    const alertsView = async (principalId: string, homeId: string): Promise<EntryAlertsView> => {
      const me = await deps.store.principals.get(principalId);
      if (!me) fail('auth.required');
      const setting = await deps.store.entries.alertSetting(me.id, defaultAlertMode(me.role));
      const candidates = (await deps.store.principals.listForHome(homeId))
        .filter((c) => c.id !== me.id)
        .map((c) => ({
          id: c.id,
          name: c.displayName,
          role: c.role as 'owner' | 'member' | 'guest',
        }));
      const present = new Set(candidates.map((c) => c.id));
      return {
        mode: setting.mode,
        // People since removed from the household are no longer offered, nor shown as chosen.
        people: setting.people.filter((id) => present.has(id)),
        candidates,
        chosen: setting.chosen,
      };
    };

    app.get(
      '/api/homes/:homeId/entry-alerts',
      {
        schema: {
          tags: ['entries'],
          summary: 'Whose entries are pushed to me (every entry shows in the page either way)',
          params: HomeParams,
          response: errorResponses,
        },
      },
      async (req) => {
        const p = await householdWith(deps, req, 'view-history');
        const { homeId } = req.params as { homeId: string };
        await ownHome(deps, p, homeId);
        return { alerts: await alertsView(p.id, homeId) };
      },
    );

    app.put(
      '/api/homes/:homeId/entry-alerts',
      {
        schema: {
          tags: ['entries'],
          summary: 'Choose whose entries are pushed to me: everyone’s, chosen people’s, or none',
          params: HomeParams,
          body: EntryAlertsRequest,
          response: errorResponses,
        },
      },
      async (req) => {
        const p = await householdWith(deps, req, 'view-history');
        const { homeId } = req.params as { homeId: string };
        await ownHome(deps, p, homeId);
        const body = req.body as { mode: EntryAlertMode; people: string[] };
        const household = new Set(
          (await deps.store.principals.listForHome(homeId))
            .filter((c) => c.id !== p.id)
            .map((c) => c.id),
        );
        const strangers = body.people.filter((id) => !household.has(id));
        // Someone outside the home is refused like an unknown id: choosing cannot probe ids.
        if (strangers.length > 0)
          fail('request.invalid', 'people: everyone chosen must be someone of this home.');
        await deps.store.entries.setAlertSetting(p.id, body.mode, body.people, deps.clock.now());
        return { alerts: await alertsView(p.id, homeId) };
      },
    );
  };
