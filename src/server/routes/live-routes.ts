/** The owner's live view of a camera: start or renew it, read it, fetch its newest frames. */
import type { FastifyPluginAsync } from 'fastify';
import { CameraParams, EmptyBody, LiveFrameParams } from '../../protocol/http.ts';
import type { Principal } from '../../core/model.ts';
import type { AppDeps } from '../app.ts';
import { errorResponses, fail, householdWith } from './route-helpers.ts';
import { ownHome } from './home-routes.ts';

/** The camera if it is a camera of the principal's home; otherwise 404 (no leak). */
async function ownCamera(deps: AppDeps, p: Principal, homeId: string, cameraId: string) {
  await ownHome(deps, p, homeId);
  const device = await deps.store.homes.getDevice(cameraId);
  if (!device || device.homeId !== homeId || device.kind !== 'camera') fail('device.not-found');
  return device;
}

export const liveRoutes =
  (deps: AppDeps): FastifyPluginAsync =>
  async (app) => {
    app.post(
      '/api/homes/:homeId/cameras/:cameraId/live',
      {
        schema: {
          tags: ['live view'],
          summary:
            'Start or keep watching a camera for 30 s (renew every 10 s while the view is on screen)',
          params: CameraParams,
          body: EmptyBody,
          response: errorResponses,
        },
      },
      async (req) => {
        const p = await householdWith(deps, req, 'view-live');
        const { homeId, cameraId } = req.params as { homeId: string; cameraId: string };
        await ownCamera(deps, p, homeId, cameraId);
        return { view: await deps.liveView.watch(p, homeId, cameraId) };
      },
    );

    app.get(
      '/api/homes/:homeId/cameras/:cameraId/live',
      {
        schema: {
          tags: ['live view'],
          summary: 'What the live view shows now: live, starting, offline since or frozen since',
          params: CameraParams,
          response: errorResponses,
        },
      },
      async (req) => {
        const p = await householdWith(deps, req, 'view-live');
        const { homeId, cameraId } = req.params as { homeId: string; cameraId: string };
        await ownCamera(deps, p, homeId, cameraId);
        return { view: deps.liveView.status(homeId, cameraId) };
      },
    );

    app.get(
      '/api/homes/:homeId/cameras/:cameraId/frames/:digest',
      {
        schema: {
          tags: ['live view'],
          summary: 'One of the newest fresh frames of the live view (image/jpeg)',
          params: LiveFrameParams,
        },
      },
      async (req, reply) => {
        const p = await householdWith(deps, req, 'view-live');
        const { homeId, cameraId, digest } = req.params as {
          homeId: string;
          cameraId: string;
          digest: string;
        };
        await ownCamera(deps, p, homeId, cameraId);
        const jpeg = deps.liveView.frame(cameraId, digest);
        if (!jpeg) fail('frame.not-found');
        return reply
          .header('content-type', 'image/jpeg')
          .header('cache-control', 'private, max-age=60, immutable')
          .send(jpeg);
      },
    );
  };
