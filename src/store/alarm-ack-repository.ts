/** Who acknowledged which alarm of an access session, and when. */
import type { Kysely } from 'kysely';
import type { Database } from './schema.ts';

/** An acknowledgement of one alarm (a session raises each alarm type at most once). */
export interface AlarmAck {
  readonly sessionId: string;
  readonly alarmType: string;
  readonly principalId: string;
  /** ms since the epoch. */
  readonly acknowledgedAt: number;
}

/** Stores alarm acknowledgements; the first acknowledgement of an alarm is the one kept. */
export class AlarmAckRepository {
  constructor(private readonly db: Kysely<Database>) {}

  /**
   * Records the acknowledgement unless the alarm already has one; returns the one on record
   * and whether it is the one just given.
   */
  async acknowledge(ack: AlarmAck): Promise<{ ack: AlarmAck; created: boolean }> {
    const r = await this.db
      .insertInto('alarm_acks')
      .values({
        session_id: ack.sessionId,
        alarm_type: ack.alarmType,
        principal_id: ack.principalId,
        acknowledged_at: ack.acknowledgedAt,
      })
      .onConflict((oc) => oc.columns(['session_id', 'alarm_type']).doNothing())
      .executeTakeFirst();
    if ((r.numInsertedOrUpdatedRows ?? 0n) > 0n) return { ack, created: true };
    const existing = (await this.listForSession(ack.sessionId)).find(
      (a) => a.alarmType === ack.alarmType,
    );
    if (!existing) throw new Error('alarm acknowledgement vanished');
    return { ack: existing, created: false };
  }

  /** The acknowledgements of a session's alarms. */
  async listForSession(sessionId: string): Promise<AlarmAck[]> {
    return this.listForSessions([sessionId]);
  }

  /** The acknowledgements of the alarms of these sessions. */
  async listForSessions(sessionIds: readonly string[]): Promise<AlarmAck[]> {
    if (sessionIds.length === 0) return [];
    const rows = await this.db
      .selectFrom('alarm_acks')
      .selectAll()
      .where('session_id', 'in', [...sessionIds])
      .orderBy('acknowledged_at')
      .execute();
    return rows.map((r) => ({
      sessionId: r.session_id,
      alarmType: r.alarm_type,
      principalId: r.principal_id,
      acknowledgedAt: Number(r.acknowledged_at),
    }));
  }
}
