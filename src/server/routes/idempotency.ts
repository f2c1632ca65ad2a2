/**
 * Idempotency keys for carrier requests that create or change something: a carrier sends an
 * `Idempotency-Key` header with each such POST, and a retry with the same key (after a timeout,
 * a dropped connection, a crash of its own) gets the first answer again, byte for byte, with
 * `Idempotent-Replayed: true`, instead of doing the work twice. So a retried create never makes
 * a second delivery.
 *
 * - The key is the carrier's: carrier B's "abc" and carrier A's "abc" are unrelated.
 * - The same key for another request (another route, another body) is refused: 422
 *   `request.idempotency-key-reused`.
 * - While the first request is still being answered, a second one with its key gets 409
 *   `request.in-flight` (retry shortly). A claim its server never answered (it stopped) is
 *   taken over after {@link ABANDONED_CLAIM_MS}.
 * - Only successful answers are kept. A refused request (4xx) or a failure frees the key, so
 *   the corrected request may be sent with the same key.
 * - Keys are kept {@link IDEMPOTENCY_KEY_TTL_MS}; after that the key may be used afresh.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Kysely } from 'kysely';
import { canonicalJson } from '../../core/canonical-json.ts';
import { ThresholdError } from '../../core/errors.ts';
import { IdempotencyRepository } from '../../store/idempotency-repository.ts';
import type { Database } from '../../store/index.ts';
import type { AppDeps } from '../app.ts';
import { sha256Hex } from '../keys.ts';

/** The request header that carries the key (HTTP headers are case-insensitive). */
export const IDEMPOTENCY_KEY_HEADER = 'idempotency-key';
/** The answer header that marks a replayed answer. */
export const IDEMPOTENT_REPLAYED_HEADER = 'idempotent-replayed';
/** How long a key and its answer are kept, ms (24 hours). */
export const IDEMPOTENCY_KEY_TTL_MS = 24 * 60 * 60_000;
/** After this long without an answer, a claim is taken to be abandoned, ms. */
export const ABANDONED_CLAIM_MS = 60_000;
/** At most how often expired keys are swept, ms. */
export const IDEMPOTENCY_SWEEP_EVERY_MS = 60 * 60_000;

/** 1 to 255 visible ASCII characters (no spaces, no control characters). */
const KEY_PATTERN = /^[\x21-\x7e]{1,255}$/;

/** What a piece of idempotent work answers: an HTTP status (2xx) and a JSON body. */
export interface IdempotentAnswer {
  readonly status: number;
  readonly body: object;
}

/** The claim of a key, as the work sees it. */
export interface IdempotencyClaim {
  readonly key: string;
  /**
   * Stores the answer in `db`: call it inside the transaction that makes the change, last, so
   * the change and the answer a retry will get are committed together (or neither is). The
   * answer must be the one the work then returns. Work that makes no transaction of its own
   * need not call it: the answer is stored when the work returns.
   */
  answer(db: Kysely<Database>, a: IdempotentAnswer): Promise<void>;
}

/** When each store was last swept of expired keys (once per process and store). */
const lastSweep = new WeakMap<object, number>();

/**
 * The `Idempotency-Key` of a request: 400 `request.idempotency-key-required` when it is
 * missing and `required`, 400 `request.invalid` when it is malformed, null when it is missing
 * and optional.
 */
export function idempotencyKeyOf(req: FastifyRequest, required: boolean): string | null {
  const raw = req.headers[IDEMPOTENCY_KEY_HEADER];
  if (raw === undefined) {
    if (required) throw new ThresholdError('request.idempotency-key-required');
    return null;
  }
  // A header sent twice arrives as one value joined by ", ", or as an array: both refused.
  if (typeof raw !== 'string' || !KEY_PATTERN.test(raw)) {
    throw new ThresholdError(
      'request.invalid',
      'The Idempotency-Key header must be 1 to 255 visible ASCII characters (no spaces), sent once.',
    );
  }
  return raw;
}

/**
 * Runs `work` at most once per Idempotency-Key of the carrier, and answers the request: with
 * what `work` answered, or, for a retry, with the stored answer (see the module comment).
 * The key is required unless `optional` is set; without a key, optional work just runs.
 * Authenticate first (the key is the carrier's), then call this, then do nothing else.
 */
export async function idempotent(
  deps: Pick<AppDeps, 'store' | 'clock'>,
  req: FastifyRequest,
  reply: FastifyReply,
  carrierId: string,
  work: (claim: IdempotencyClaim | null) => Promise<IdempotentAnswer>,
  options: { readonly optional?: boolean } = {},
): Promise<FastifyReply> {
  const key = idempotencyKeyOf(req, options.optional !== true);
  if (key === null) {
    const a = await work(null);
    return send(reply, a.status, JSON.stringify(a.body));
  }
  const repo = new IdempotencyRepository(deps.store.db);
  const now = deps.clock.now();
  await sweep(deps, repo, now);
  const request = `${req.method} ${req.url.split('?')[0] ?? ''}`;
  const requestHash = sha256Hex(canonicalJson(req.body ?? null));
  const ask = { carrierId, key, request, requestHash, createdAt: now };

  let claimed = await repo.claim(ask);
  if (!claimed && (await repo.deleteIfOlder(carrierId, key, now - IDEMPOTENCY_KEY_TTL_MS))) {
    // An expired key is a new key.
    claimed = await repo.claim(ask);
  }
  if (!claimed) {
    const held = await repo.get(carrierId, key);
    // Released between the two steps (the first request was refused): try once more.
    if (held === null) claimed = await repo.claim(ask);
    else if (held.request !== request || held.requestHash !== requestHash)
      throw new ThresholdError('request.idempotency-key-reused', undefined, {
        firstRequest: held.request,
      });
    else if (held.statusCode !== null && held.response !== null) {
      void reply.header(IDEMPOTENT_REPLAYED_HEADER, 'true');
      return send(reply, held.statusCode, held.response);
    } else claimed = await repo.takeOver(ask, now - ABANDONED_CLAIM_MS, now);
    if (!claimed) throw new ThresholdError('request.in-flight');
  }

  let stored: { status: number; text: string } | null = null;
  const claim: IdempotencyClaim = {
    key,
    answer: async (db, a) => {
      const text = JSON.stringify(a.body);
      if (!(await new IdempotencyRepository(db).complete(carrierId, key, a.status, text))) {
        throw new Error(`the claim of idempotency key ${key} was lost`);
      }
      stored = { status: a.status, text };
    },
  };
  let a: IdempotentAnswer;
  try {
    a = await work(claim);
  } catch (err) {
    // Refused or failed: the key is free again (an answer committed already is never freed).
    await repo.release(carrierId, key).catch(() => false);
    throw err;
  }
  const answered = stored as { status: number; text: string } | null;
  if (answered !== null) return send(reply, answered.status, answered.text);
  const text = JSON.stringify(a.body);
  await repo.complete(carrierId, key, a.status, text);
  return send(reply, a.status, text);
}

/** Sends JSON text as it is, so a replay is byte-for-byte the first answer. */
function send(reply: FastifyReply, status: number, text: string): FastifyReply {
  return reply.code(status).type('application/json; charset=utf-8').send(text);
}

/** Deletes expired keys, at most once per {@link IDEMPOTENCY_SWEEP_EVERY_MS} per store. */
async function sweep(
  deps: Pick<AppDeps, 'store' | 'clock'>,
  repo: IdempotencyRepository,
  now: number,
): Promise<void> {
  const last = lastSweep.get(deps.store);
  if (last !== undefined && now - last < IDEMPOTENCY_SWEEP_EVERY_MS) return;
  lastSweep.set(deps.store, now);
  await repo.purgeOlderThan(now - IDEMPOTENCY_KEY_TTL_MS);
}
