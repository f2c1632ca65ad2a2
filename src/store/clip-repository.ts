/** The frames of each access session's clip; the image files themselves live in the data dir. */
import type { Kysely } from 'kysely';
import type { Database } from './schema.ts';

/** One recorded frame of a session's clip. */
export interface ClipFrame {
  readonly sessionId: string;
  /** The camera's frame sequence number within the session. */
  readonly seq: number;
  /** ms since the epoch, by the camera's clock. */
  readonly capturedAt: number;
  /** ms since the epoch, by the server's clock. */
  readonly receivedAt: number;
  /** SHA-256 of the image bytes, lower-case hex. */
  readonly digest: string;
  /** Where the image is stored, relative to the data directory. */
  readonly path: string;
  /** Size of the image file in bytes. */
  readonly bytes: number;
}

/** Stores the frame index of session clips. */
export class ClipRepository {
  constructor(private readonly db: Kysely<Database>) {}

  /** Adds a frame; rejects a second frame with the same session and seq. */
  async add(frame: ClipFrame): Promise<void> {
    await this.db
      .insertInto('clip_frames')
      .values({
        session_id: frame.sessionId,
        seq: frame.seq,
        captured_at: frame.capturedAt,
        received_at: frame.receivedAt,
        digest: frame.digest,
        path: frame.path,
        bytes: frame.bytes,
      })
      .execute();
  }

  /** A session's frames in playback order: by capture time, then seq. */
  async list(sessionId: string): Promise<ClipFrame[]> {
    const rows = await this.db
      .selectFrom('clip_frames')
      .selectAll()
      .where('session_id', '=', sessionId)
      .orderBy('captured_at')
      .orderBy('seq')
      .execute();
    return rows.map((row) => ({
      sessionId: row.session_id,
      seq: row.seq,
      capturedAt: row.captured_at,
      receivedAt: row.received_at,
      digest: row.digest,
      path: row.path,
      bytes: row.bytes,
    }));
  }

  /**
   * The sessions whose newest frame was received before `cutoffMs` (ms since the epoch), i.e.
   * whose clips retention may delete. Uses the server's receive time, not the camera's capture
   * time, so a camera with a wrong clock cannot get evidence deleted early.
   */
  async listSessionsOlderThan(cutoffMs: number): Promise<string[]> {
    const rows = await this.db
      .selectFrom('clip_frames')
      .select('session_id')
      .groupBy('session_id')
      .having((eb) => eb.fn.max('received_at'), '<', cutoffMs)
      .orderBy('session_id')
      .execute();
    return rows.map((row) => row.session_id);
  }

  /** Deletes a session's frame rows (not the files) and returns how many. */
  async deleteForSession(sessionId: string): Promise<number> {
    const result = await this.db
      .deleteFrom('clip_frames')
      .where('session_id', '=', sessionId)
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  }
}
