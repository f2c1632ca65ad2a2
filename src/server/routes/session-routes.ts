/** Access sessions for the owner: the timeline, one session with its coverage, its clip, and the audit export. */
import { createReadStream } from 'node:fs';
import type { FastifyPluginAsync } from 'fastify';
import {
  CHECKPOINT_ENTRY_KIND,
  isRedacted,
  redact,
  type ExportedAuditEntry,
} from '../../core/audit-chain.ts';
import {
  AlarmParams,
  AuditQuery,
  EmptyBody,
  FrameParams,
  HomeParams,
  OwnerDecisionRequest,
  SessionParams,
} from '../../protocol/http.ts';
import type { AppDeps } from '../app.ts';
import { verifyEd25519 } from '../keys.ts';
import type { SessionView } from '../session-orchestrator.ts';
import {
  denyObject,
  errorResponses,
  fail,
  principalOf,
  unwrap,
  householdWith,
} from './route-helpers.ts';
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
  if (!household && !ownCourier)
    return denyObject(deps, p, 'session.not-found', `session:${sessionId}`);
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
        const p = await householdWith(deps, req, 'view-history');
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
        const p = await householdWith(deps, req, 'view-history');
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
        const p = await householdWith(deps, req, 'view-history');
        const { sessionId, seq } = req.params as { sessionId: string; seq: string };
        await visibleSession(deps, p, sessionId);
        const frame = (await deps.clips.list(sessionId)).find((f) => f.seq === Number(seq));
        if (!frame) fail('frame.not-found', 'No such frame (it may have passed its retention).');
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
            'Export the audit log of this home (a session or a time range) as a signed, self-verifying piece of the chain: `threshold audit verify --file` checks it',
          params: HomeParams,
          querystring: AuditQuery,
          response: errorResponses,
        },
      },
      async (req) => {
        const p = await householdWith(deps, req, 'view-history');
        const { homeId } = req.params as { homeId: string };
        const q = req.query as { sessionId?: string; from?: string; to?: string };
        await ownHome(deps, p, homeId);
        const sessionIds = new Set(
          (await deps.store.sessions.listForHome(homeId, { limit: 10_000 })).map((s) => s.id),
        );
        if (q.sessionId && !sessionIds.has(q.sessionId)) fail('session.not-found');
        const homeSubjects = new Set([
          `home:${homeId}`,
          ...(await deps.store.homes.listDoors(homeId)).map((d) => `door:${d.id}`),
          ...(await deps.store.homes.listDevices(homeId)).map((d) => `device:${d.id}`),
        ]);
        const from = q.from ? Number(q.from) : 0;
        const to = q.to ? Number(q.to) : Number.MAX_SAFE_INTEGER;
        if (from > to) fail('request.invalid', '"from" is after "to".');
        const ofThisHome = (subject: string): boolean => {
          if (subject.startsWith('session:')) {
            const sid = subject.slice('session:'.length);
            return sessionIds.has(sid) && (!q.sessionId || sid === q.sessionId);
          }
          return !q.sessionId && homeSubjects.has(subject);
        };
        // Sign what is there, so the export can end on a signature.
        await deps.audit.checkpoint();
        const verification = await deps.audit.verify(verifyEd25519);
        // The export is a contiguous piece of the chain: from the first entry asked for to the
        // first checkpoint recorded after the last one. Other homes' entries in between are
        // redacted to the hashes that link the chain; checkpoint records stay whole.
        const entries: ExportedAuditEntry[] = [];
        let lastMatch = -1;
        for await (const e of deps.store.audit.iterate()) {
          const match = ofThisHome(e.subject) && e.at >= from && e.at <= to;
          if (entries.length === 0 && !match) continue;
          if (match) lastMatch = entries.length;
          entries.push(match || e.subject === 'audit' ? e : redact(e));
        }
        const endIndex = entries.findIndex(
          (e, i) => i > lastMatch && !isRedacted(e) && e.kind === CHECKPOINT_ENTRY_KIND,
        );
        const piece = endIndex >= 0 ? entries.slice(0, endIndex + 1) : entries;
        const fromSeq = piece[0]?.seq ?? null;
        const toSeq = piece.at(-1)?.seq ?? null;
        const checkpoints =
          fromSeq === null || toSeq === null
            ? []
            : (await deps.store.audit.listCheckpoints()).filter(
                (c) => c.seq >= fromSeq && c.seq <= toSeq,
              );
        return {
          format: 'threshold-audit-export/v1',
          homeId,
          ...(q.sessionId ? { sessionId: q.sessionId } : {}),
          publicKey: deps.audit.publicKey,
          fromSeq,
          toSeq,
          serverVerification: {
            ok: verification.ok,
            entries: verification.entries,
            lastSeq: verification.lastSeq,
            firstBreak: verification.firstBreak,
          },
          entries: piece,
          checkpoints,
        };
      },
    );

    app.post(
      '/api/sessions/:sessionId/decision',
      {
        schema: {
          tags: ['sessions'],
          summary:
            '"Ask me first": the owner lets the waiting courier in, or has the parcel left at the door',
          params: SessionParams,
          body: OwnerDecisionRequest,
          response: errorResponses,
        },
      },
      async (req) => {
        const p = await householdWith(deps, req, 'unlock');
        const { sessionId } = req.params as { sessionId: string };
        const { decision } = req.body as { decision: 'let-in' | 'leave-at-door' };
        return { session: unwrap(await deps.orchestrator.decide(p, sessionId, decision)) };
      },
    );

    app.get(
      '/api/homes/:homeId/alarms',
      {
        schema: {
          tags: ['alarms'],
          summary: 'Alarms of the home’s recent sessions, newest first, with acknowledgements',
          params: HomeParams,
          response: errorResponses,
        },
      },
      async (req) => {
        const p = await householdWith(deps, req, 'view-history');
        const { homeId } = req.params as { homeId: string };
        await ownHome(deps, p, homeId);
        return { alarms: await deps.orchestrator.listAlarms(homeId) };
      },
    );

    app.post(
      '/api/sessions/:sessionId/alarms/:alarmType/ack',
      {
        schema: {
          tags: ['alarms'],
          summary: 'Acknowledge an alarm (audited; the first acknowledgement is kept)',
          params: AlarmParams,
          body: EmptyBody,
          response: errorResponses,
        },
      },
      async (req) => {
        const p = await householdWith(deps, req, 'view-live');
        const { sessionId, alarmType } = req.params as { sessionId: string; alarmType: string };
        return { alarm: unwrap(await deps.orchestrator.acknowledgeAlarm(p, sessionId, alarmType)) };
      },
    );

    app.get(
      '/api/stats',
      { schema: { tags: ['system'], summary: 'Counters: dropped device messages, live sessions' } },
      async (req) => {
        await householdWith(deps, req, 'manage-devices');
        return {
          gateway: { drops: deps.gateway.drops() },
          orchestrator: deps.orchestrator.stats(),
          ...(deps.extraStats?.() ?? {}),
        };
      },
    );
  };
