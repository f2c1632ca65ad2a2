/**
 * A carrier's webhook receiver on 127.0.0.1, for scenarios and tests: it keeps every request as
 * received and checks its `threshold-signature` (HMAC-SHA256 over "<t>.<raw body>", the scheme
 * docs/carriers.md describes) with the secret it is given.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request the receiver got. */
export interface ReceivedWebhook {
  readonly raw: string;
  readonly body: { id: string; type: string; data: { delivery: { id: string; status: string } } };
  readonly signatureValid: boolean;
  readonly headers: http.IncomingHttpHeaders;
}

/** Whether `header` signs `raw` with `secret`, less than `toleranceS` old. */
export function signatureValid(
  raw: string,
  header: string | undefined,
  secret: string,
  nowMs: number = Date.now(),
  toleranceS = 300,
): boolean {
  const fields = new Map<string, string[]>();
  for (const part of (header ?? '').split(',')) {
    const [k, v] = part.trim().split('=');
    if (k && v) fields.set(k, [...(fields.get(k) ?? []), v]);
  }
  const t = Number(fields.get('t')?.[0]);
  if (!Number.isInteger(t) || Math.abs(nowMs / 1000 - t) > toleranceS) return false;
  const expected = createHmac('sha256', secret).update(`${t}.${raw}`).digest();
  return (fields.get('v1') ?? []).some(
    (v) => /^[0-9a-f]{64}$/.test(v) && timingSafeEqual(Buffer.from(v, 'hex'), expected),
  );
}

/** See the module comment. */
export class WebhookReceiver {
  readonly received: ReceivedWebhook[] = [];
  secret = '';
  private server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const valid = signatureValid(raw, req.headers['threshold-signature'] as string, this.secret);
      try {
        this.received.push({
          raw,
          body: JSON.parse(raw) as ReceivedWebhook['body'],
          signatureValid: valid,
          headers: req.headers,
        });
      } catch {
        // Not JSON: kept out of the list, answered as a bad request below.
      }
      res.statusCode = valid ? 204 : 400;
      res.end();
    });
  });
  url = '';

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hooks`;
  }

  /** The events received for one delivery, in arrival order. */
  forDelivery(deliveryId: string): ReceivedWebhook[] {
    return this.received.filter((r) => r.body.data?.delivery?.id === deliveryId);
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
