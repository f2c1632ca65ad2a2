/**
 * Idempotency keys of carrier requests: the first request with a key claims it, and its answer
 * is kept, so a retry is answered the same without doing the work twice. Keys are per carrier.
 */
import type { Kysely, Selectable } from 'kysely';
import type { Database, IdempotencyKeyRow } from './schema.ts';

/** A claimed key: the request it was first used for and, once answered, the answer. */
export interface IdempotencyRecord {
  readonly carrierId: string;
  readonly key: string;
  /** Method and path of the first request, e.g. `POST /api/carrier/deliveries`. */
  readonly request: string;
  /** SHA-256 (hex) of the canonical JSON of the first request's body. */
  readonly requestHash: string;
  /** Null while the first request is still being answered. */
  readonly statusCode: number | null;
  /** The answer's body exactly as sent (JSON text), or null while in flight. */
  readonly response: string | null;
  /** When the key was claimed, ms since the epoch. */
  readonly createdAt: number;
}

/** Stores idempotency keys. */
export class IdempotencyRepository {
  constructor(private readonly db: Kysely<Database>) {}

  /**
   * Claims a key for a request (in flight: no answer yet). False when the carrier already
   * holds that key, whatever its state: the database decides, so two requests racing for one
   * key cannot both claim it.
   */
  async claim(r: {
    readonly carrierId: string;
    readonly key: string;
    readonly request: string;
    readonly requestHash: string;
    readonly createdAt: number;
  }): Promise<boolean> {
    const result = await this.db
      .insertInto('idempotency_keys')
      .values({
        carrier_id: r.carrierId,
        key: r.key,
        request: r.request,
        request_hash: r.requestHash,
        status_code: null,
        response: null,
        created_at: r.createdAt,
      })
      .onConflict((oc) => oc.columns(['carrier_id', 'key']).doNothing())
      .executeTakeFirst();
    return (result.numInsertedOrUpdatedRows ?? 0n) > 0n;
  }

  /** The carrier's record of a key, or null. */
  async get(carrierId: string, key: string): Promise<IdempotencyRecord | null> {
    const row = await this.db
      .selectFrom('idempotency_keys')
      .selectAll()
      .where('carrier_id', '=', carrierId)
      .where('key', '=', key)
      .executeTakeFirst();
    return row === undefined ? null : toRecord(row);
  }

  /**
   * Stores the answer of a claimed key that has none yet (use the transaction of the work, so
   * the change and its answer commit together). False if the key is not claimed or is answered.
   */
  async complete(
    carrierId: string,
    key: string,
    statusCode: number,
    response: string,
  ): Promise<boolean> {
    const result = await this.db
      .updateTable('idempotency_keys')
      .set({ status_code: statusCode, response })
      .where('carrier_id', '=', carrierId)
      .where('key', '=', key)
      .where('status_code', 'is', null)
      .executeTakeFirst();
    return result.numUpdatedRows > 0n;
  }

  /**
   * Gives up an unanswered claim (the request was refused or failed), so the key may be used
   * again. An answered key is never released. Returns whether a claim was removed.
   */
  async release(carrierId: string, key: string): Promise<boolean> {
    const result = await this.db
      .deleteFrom('idempotency_keys')
      .where('carrier_id', '=', carrierId)
      .where('key', '=', key)
      .where('status_code', 'is', null)
      .executeTakeFirst();
    return result.numDeletedRows > 0n;
  }

  /**
   * Takes over a claim that was left unanswered since before `staleBefore` (its server stopped
   * while answering) for the same request: it is claimed anew at `atMs`. Returns whether it
   * was taken over; only one of several callers racing for it wins.
   */
  async takeOver(
    r: { readonly carrierId: string; readonly key: string; readonly requestHash: string },
    staleBefore: number,
    atMs: number,
  ): Promise<boolean> {
    const result = await this.db
      .updateTable('idempotency_keys')
      .set({ created_at: atMs })
      .where('carrier_id', '=', r.carrierId)
      .where('key', '=', r.key)
      .where('request_hash', '=', r.requestHash)
      .where('status_code', 'is', null)
      .where('created_at', '<', staleBefore)
      .executeTakeFirst();
    return result.numUpdatedRows > 0n;
  }

  /** Deletes one key if it was claimed before `before` (an expired key); returns whether. */
  async deleteIfOlder(carrierId: string, key: string, before: number): Promise<boolean> {
    const result = await this.db
      .deleteFrom('idempotency_keys')
      .where('carrier_id', '=', carrierId)
      .where('key', '=', key)
      .where('created_at', '<', before)
      .executeTakeFirst();
    return result.numDeletedRows > 0n;
  }

  /** Deletes every key claimed before `before`; returns how many. */
  async purgeOlderThan(before: number): Promise<number> {
    const result = await this.db
      .deleteFrom('idempotency_keys')
      .where('created_at', '<', before)
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  }
}

function toRecord(row: Selectable<IdempotencyKeyRow>): IdempotencyRecord {
  return {
    carrierId: row.carrier_id,
    key: row.key,
    request: row.request,
    requestHash: row.request_hash,
    statusCode: row.status_code === null ? null : Number(row.status_code),
    response: row.response,
    createdAt: Number(row.created_at),
  };
}
