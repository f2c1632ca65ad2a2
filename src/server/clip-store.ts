/**
 * Session clips on disk: each frame a camera vouched for (its digest named in an accepted
 * heartbeat) is written to `<data>/clips/<sessionId>/<seq, 6 digits>.jpg` and indexed in the store with
 * its digest. Clips older than the retention period are deleted; the audit log keeps their
 * digests (the orchestrator audits a session's frame list when it ends).
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import type { ClipFrame, ClipRepository } from '../store/index.ts';

export class ClipStore {
  constructor(
    private readonly dataDir: string,
    private readonly repo: ClipRepository,
  ) {}

  /** Writes one frame and indexes it. */
  async add(
    sessionId: string,
    seq: number,
    capturedAt: number,
    receivedAt: number,
    digest: string,
    jpeg: Buffer,
  ): Promise<ClipFrame> {
    const dir = join(this.dataDir, 'clips', sessionId);
    await mkdir(dir, { recursive: true });
    const file = join(dir, `${String(seq).padStart(6, '0')}.jpg`);
    await writeFile(file, jpeg);
    const frame: ClipFrame = {
      sessionId,
      seq,
      capturedAt,
      receivedAt,
      digest,
      path: relative(this.dataDir, file),
      bytes: jpeg.byteLength,
    };
    await this.repo.add(frame);
    return frame;
  }

  list(sessionId: string): Promise<ClipFrame[]> {
    return this.repo.list(sessionId);
  }

  /** Absolute path of a stored frame. */
  pathOf(frame: ClipFrame): string {
    return join(this.dataDir, frame.path);
  }

  /** Deletes clips whose newest frame is older than `cutoffMs`; returns the session ids. */
  async deleteOlderThan(cutoffMs: number): Promise<string[]> {
    const ids = await this.repo.listSessionsOlderThan(cutoffMs);
    for (const id of ids) {
      await rm(join(this.dataDir, 'clips', id), { recursive: true, force: true });
      await this.repo.deleteForSession(id);
    }
    return ids;
  }
}
