/**
 * The owner's side of the API after a real delivery: the timeline, one session with its
 * coverage, the clip (each frame's bytes match the digest a heartbeat vouched for), the audit
 * export, remote lock and unlock (unlock needs confirmation), live events, and /docs.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ReadableStream } from 'node:stream/web';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ScenarioWorld } from '../src/harness/scenario-world.ts';

let world: ScenarioWorld;

const BIN = join(import.meta.dirname, '..', 'bin', 'threshold.js');
function threshold(...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
let owner = '';
let sessionId = '';

async function asOwner(method: 'GET' | 'POST', path: string, body?: unknown) {
  const res = await fetch(`${world.sys.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${owner}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return res;
}

beforeAll(async () => {
  world = await ScenarioWorld.create();
  const signIn = await world.http('POST', '/api/auth/sign-in', world.creds.owner, false);
  owner = String(signIn.body.token);
  const deliveryId = await world.newDelivery();
  const access = await world.requestAccess(deliveryId);
  sessionId = (access.body.session as { id: string }).id;
  await world.dropParcel();
  await world.requestRelock(sessionId);
  await world.waitForState(sessionId, ['completed'], 10_000);
  // The session's closing entries (coverage, clip, end) follow its last state change.
  await world.waitFor(
    async () =>
      (await world.sys.store.audit.entriesForSubject(`session:${sessionId}`)).some(
        (e) => e.kind === 'session.ended',
      ),
    5_000,
    'the session is closed in the audit log',
  );
}, 60_000);

afterAll(async () => {
  await world?.close();
});

describe('owner API', () => {
  it('lists the session in the timeline with its outcome and full coverage', async () => {
    const res = await asOwner('GET', `/api/homes/${world.creds.homeId}/sessions`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      sessions: { id: string; state: string; coverage: { ratio: number } }[];
    };
    const s = body.sessions.find((x) => x.id === sessionId);
    expect(s).toMatchObject({ state: 'completed', coverage: { ratio: 1 } });
  });

  it('serves the clip: frames in order, each JPEG matching its digest', async () => {
    const res = await asOwner('GET', `/api/sessions/${sessionId}/clip`);
    const { frames } = (await res.json()) as {
      frames: { seq: number; capturedAt: number; digest: string; url: string }[];
    };
    expect(frames.length).toBeGreaterThanOrEqual(3);
    const times = frames.map((f) => f.capturedAt);
    expect([...times].sort((a, b) => a - b)).toEqual(times);
    for (const f of frames.slice(0, 3)) {
      const img = await asOwner('GET', f.url);
      expect(img.status).toBe(200);
      expect(img.headers.get('content-type')).toBe('image/jpeg');
      const bytes = Buffer.from(await img.arrayBuffer());
      expect(bytes.subarray(0, 2)).toEqual(Buffer.from([0xff, 0xd8]));
      expect(createHash('sha256').update(bytes).digest('hex')).toBe(f.digest);
    }
    const audit = await world.sys.store.audit.entriesForSubject(`session:${sessionId}`);
    const clip = audit.find((e) => e.kind === 'session.clip');
    const digests = (clip?.data.frames as { digest: string }[]).map((f) => f.digest);
    expect(digests).toEqual(frames.map((f) => f.digest));
  });

  it('does not serve the clip to the courier', async () => {
    const r = await world.http('GET', `/api/sessions/${sessionId}/clip`);
    expect(r.status).toBe(403);
  });

  it('exports the session as a signed piece of the chain that `threshold audit verify --file` accepts, and catches an edit', async () => {
    const res = await asOwner(
      'GET',
      `/api/homes/${world.creds.homeId}/audit?sessionId=${sessionId}`,
    );
    expect(res.status).toBe(200);
    const doc = (await res.json()) as {
      serverVerification: { ok: boolean };
      entries: {
        seq: number;
        subject?: string;
        kind?: string;
        redacted?: true;
        data?: Record<string, unknown>;
      }[];
      checkpoints: unknown[];
      publicKey: string;
    };
    expect(doc.serverVerification.ok).toBe(true);
    const visible = doc.entries.filter((e) => !e.redacted);
    expect(
      visible.every((e) => e.subject === `session:${sessionId}` || e.subject === 'audit'),
    ).toBe(true);
    expect(visible.map((e) => e.kind)).toEqual(
      expect.arrayContaining([
        'session.requested',
        'session.state',
        'session.ended',
        'audit.checkpoint',
      ]),
    );
    expect(doc.entries.at(-1)?.kind).toBe('audit.checkpoint');
    expect(doc.publicKey).toBe(world.sys.audit.publicKey);

    const dir = mkdtempSync(join(tmpdir(), 'threshold-export-'));
    try {
      const file = join(dir, 'export.json');
      writeFileSync(file, JSON.stringify(doc));
      const ok = threshold(
        'audit',
        'verify',
        '--file',
        file,
        '--public-key',
        world.sys.audit.publicKey,
      );
      expect(ok.code, ok.stderr).toBe(0);
      expect(ok.stdout).toMatch(/^audit log intact: \d+ entries/);

      const target = doc.entries.find((e) => e.kind === 'session.ended')!;
      target.data = { ...target.data, state: 'completed-with-nothing-to-see' };
      writeFileSync(file, JSON.stringify(doc));
      const bad = threshold(
        'audit',
        'verify',
        '--file',
        file,
        '--public-key',
        world.sys.audit.publicKey,
      );
      expect(bad.code).toBe(1);
      expect(bad.stderr).toContain(`BROKEN at entry ${target.seq}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('needs "confirm": true to unlock from afar; locks and unlocks on the lock’s word; streams it live', async () => {
    const events: string[] = [];
    const controller = new AbortController();
    const stream = await asOwner('GET', '/api/events').then((r) => {
      expect(r.headers.get('content-type')).toContain('text/event-stream');
      return (r.body as unknown as ReadableStream<Uint8Array>).getReader();
    });
    const reading = (async () => {
      const dec = new TextDecoder();
      for (;;) {
        const chunk = await stream.read();
        if (chunk.done || controller.signal.aborted) return;
        events.push(dec.decode(chunk.value));
      }
    })();

    const door = `/api/homes/${world.creds.homeId}/doors/${world.creds.doorId}/command`;
    const refused = await asOwner('POST', door, { action: 'unlock' });
    expect(refused.status).toBe(400);
    expect(world.home.lock.bolt()).toBe('locked');

    const unlocked = await asOwner('POST', door, { action: 'unlock', confirm: true });
    expect(unlocked.status).toBe(200);
    await world.waitFor(() => world.home.lock.bolt() === 'unlocked', 5_000, 'unlocked');
    const locked = await asOwner('POST', door, { action: 'lock' });
    expect(locked.status).toBe(200);
    await world.waitFor(() => world.home.lock.bolt() === 'locked', 5_000, 'locked');
    await world.waitFor(
      () => events.join('').includes('"bolt":"unlocked"'),
      5_000,
      'a live device event',
    );
    controller.abort();
    await stream.cancel();
    await reading.catch(() => undefined);
    const audit = await world.sys.store.audit.entriesForSubject(`door:${world.creds.doorId}`);
    expect(audit.filter((e) => e.kind === 'remote.command').map((e) => e.data.action)).toEqual([
      'unlock',
      'lock',
    ]);
  });

  it('describes the API at /docs', async () => {
    const res = await fetch(`${world.sys.url}/docs/json`);
    const doc = (await res.json()) as { paths: Record<string, unknown> };
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        '/api/auth/sign-in',
        '/api/courier/deliveries/{deliveryId}/access',
        '/api/carrier/deliveries',
      ]),
    );
  });
});
