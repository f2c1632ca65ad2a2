// Verifies a Threshold webhook request (Node.js 18+, no dependencies). Call it with the raw
// request body exactly as received (a Buffer or string, before any JSON parsing), the value of
// the `threshold-signature` header and your webhook's secret (`whsec_…`). It returns true only
// for a body signed with that secret less than `toleranceS` seconds ago; answer 400 otherwise.
import { Buffer } from 'node:buffer';
import { createHmac, timingSafeEqual } from 'node:crypto';

export function verifyThresholdWebhook(
  rawBody,
  header,
  secret,
  toleranceS = 300,
  nowMs = Date.now(),
) {
  const fields = String(header ?? '')
    .split(',')
    .map((f) => f.trim().split('='));
  const t = Number(fields.find(([k]) => k === 't')?.[1]);
  // An old timestamp means a replayed request, even when its signature is good.
  if (!Number.isInteger(t) || Math.abs(nowMs / 1000 - t) > toleranceS) return false;
  const expected = createHmac('sha256', secret).update(`${t}.`).update(rawBody).digest();
  return fields.some(
    ([k, v]) =>
      k === 'v1' &&
      /^[0-9a-f]{64}$/.test(v ?? '') &&
      timingSafeEqual(Buffer.from(v, 'hex'), expected),
  );
}
