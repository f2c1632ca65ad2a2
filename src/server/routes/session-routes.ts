/** Access sessions for the owner: the timeline, one session with its coverage, its clip, and the audit export. */
import { createReadStream } from 'node:fs';
import type { FastifyPluginAsync } from 'fastify';
import type { AuditEntry } from '../../core/audit-chain.ts';
import { AuditQuery, FrameParams, HomeParams, SessionParams } from '../../protocol/http.ts';
import type { AppDeps } from '../app.ts';
import { verifyEd25519 } from '../keys.ts';
import type { SessionView } from '../session-orchestrator.ts';
import { errorResponses, fail, principalOf } from './route-helpers.ts';
import { ownHome } from './home-routes.ts';
import type { Principal } from '../../core/model.ts';

/** The session if the principal may see it: the household of its home, or its own courier. */
async function visibleSession(
  deps: AppDeps,
  p: Principal,
  sessionId: string,
): Promise<SessionView> {
  const v = await deps.orchestrator.view(sessionId);
  if (!v) fail('session.not-found');
  const household = (p.role === 'owner' || p.role === 'member') && p.homeId === v.homeId;
  const ownCourier = p.role === 'courier' && v.principalId === p.id;
  if (!household && !ownCourier) fail('session.not-found');
  return v;
}

export const sessionRoutes =
  (deps: AppDeps): FastifyPluginAsync =>
  async (app) => {
    app.get(
      '/api/homes/:homeId/sessions',
      {
        schema: {
          tags: ['sessions'],
          summary: 'Timeline of access sessions, newest first',
          params: HomeParams,
          response: errorResponses,
        },
      },
      async (req) => {
        const p = await principalOf(deps, req, ['owner', 'member']);
        const { homeId } = req.params as { homeId: string };
        await ownHome(deps, p, homeId);
        const rows = await deps.store.sessions.listForHome(homeId, { limit: 100 });
        const sessions = await Promise.all(rows.map((r) => deps.orchestrator.view(r.id)));
        return { sessions: sessions.filter((s) => s !== null) };
      },
    );

    app.get(
      '/api/sessions/:sessionId',
      {
        schema: {
          tags: ['sessions'],
          summary: 'One access session with its coverage and alarms',
          params: SessionParams,
          response: errorResponses,
        },
      },
      async (req) => {
        const p = await principalOf(deps, req, ['owner', 'member', 'courier']);
        const { sessionId } = req.params as { sessionId: string };
        return { session: await visibleSession(deps, p, sessionId) };
      },
    );

    app.get(
      '/api/sessions/:sessionId/clip',
      {
        schema: {
          tags: ['sessions'],
          summary: 'The frames recorded in a session, in order, with their digests',
          params: SessionParams,
          response: errorResponses,
        },
      },
      async (req) => {
        const p = await principalOf(deps, req, ['owner', 'member']);
        const { sessionId } = req.params as { sessionId: string };
        await visibleSession(deps, p, sessionId);
        const frames = await deps.clips.list(sessionId);
        return {
          frames: frames.map((f) => ({
            seq: f.seq,
            capturedAt: f.capturedAt,
            receivedAt: f.receivedAt,
            digest: f.digest,
            bytes: f.bytes,
            url: `/api/sessions/${sessionId}/clip/${f.seq}`,
          })),
        };
      },
    );

    app.get(
      '/api/sessions/:sessionId/clip/:seq',
      {
        schema: {
          tags: ['sessions'],
          summary: 'One frame of a session clip (image/jpeg)',
          params: FrameParams,
        },
      },
      async (req, reply) => {
        const p = await principalOf(deps, req, ['owner', 'member']);
        const { sessionId, seq } = req.params as { sessionId: string; seq: string };
        await visibleSession(deps, p, sessionId);
        const frame = (await deps.clips.list(sessionId)).find((f) => f.seq === Number(seq));
        if (!frame) fail('session.not-found', 'No such frame (it may have passed its retention).');
        void reply
          .header('content-type', 'image/jpeg')
          .header('x-frame-digest', frame.digest)
          .header('cache-control', 'private, max-age=86400');
        return reply.send(createReadStream(deps.clips.pathOf(frame)));
      },
    );

    app.get(
      '/api/homes/:homeId/audit',
      {
        schema: {
          tags: ['audit'],
          summary:
            'Export the audit log (entries of this home, with every checkpoint) for offline verification',
          params: HomeParams,
          querystring: AuditQuery,
          response: errorResponses,
        },
      },
      async (req) => {
        const p = await principalOf(deps, req, ['owner', 'member']);
        const { homeId } = req.params as { homeId: string };
        const q = req.query as { sessionId?: string; from?: string; to?: string };
        await ownHome(deps, p, homeId);
        const sessionIds = new Set(
          (await deps.store.sessions.listForHome(homeId, { limit: 10_000 })).map((s) => s.id),
        );
        if (q.sessionId && !sessionIds.has(q.sessionId)) fail('session.not-found');
        const from = q.from ? Number(q.from) : 0;
        const to = q.to ? Number(q.to) : Number.MAX_SAFE_INTEGER;
        await deps.audit.checkpoint();
        // The chain is verified whole (a partial chain cannot be), then filtered for the export.
        const verification = await deps.audit.verify(verifyEd25519);
        const entries: AuditEntry[] = [];
        for await (const e of deps.store.audit.iterate()) {
          const sid = e.subject.startsWith('session:') ? e.subject.slice(8) : null;
          const mine =
            sid !== null
              ? sessionIds.has(sid) && (!q.sessionId || sid === q.sessionId)
              : !q.sessionId && e.subject === `home:${homeId}`;
          if (mine && e.at >= from && e.at <= to) entries.push(e);
        }
        return {
          format: 'threshold-audit-export/v1',
          publicKey: deps.audit.publicKey,
          verification: {
            ok: verification.ok,
            entries: verification.entries,
            lastSeq: verification.lastSeq,
            firstBreak: verification.firstBreak,
          },
          entries,
          checkpoints: await deps.store.audit.listCheckpoints(),
        };
      },
    );

    app.get(
      '/api/stats',
      { schema: { tags: ['system'], summary: 'Counters: dropped device messages, live sessions' } },
      async (req) => {
        await principalOf(deps, req, ['owner']);
        return {
          gateway: { drops: deps.gateway.drops() },
          orchestrator: deps.orchestrator.stats(),
          ...(deps.extraStats?.() ?? {}),
        };
      },
    );
  };
