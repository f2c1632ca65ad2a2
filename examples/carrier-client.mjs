#!/usr/bin/env node
// A carrier's integration with Threshold, end to end, in one file (Node.js 20+, no dependencies):
//
//   1. starts a webhook receiver and registers it (the signing secret is shown once);
//   2. books an in-home delivery with an Idempotency-Key, then sends the very same request again,
//      as a client would after a lost answer, and checks that no second delivery was made;
//   3. follows the delivery through signed webhooks (each signature checked) until it ends;
//   4. fetches the proof of delivery, and removes its webhook.
//
// Usage:
//   node examples/carrier-client.mjs --base http://localhost:8080 --key thk_… --home home-maple-12 \
//     [--door front-door] [--courier courier-sam] [--package PKG-1] [--timeout-s 600] \
//     [--receiver-port 0] [--public-url https://hooks.example.com/threshold]
//
// The receiver listens on 127.0.0.1. A production server accepts only public https webhook URLs:
// put the receiver behind a public https address (--public-url). `threshold demo` accepts a
// loopback http receiver, so against the demo no --public-url is needed.
//
// Exit code: 0 when the delivery ended delivered (or left at the door) and every webhook was
// signed right; 1 otherwise; 2 for bad arguments.
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { parseArgs } from 'node:util';
import { verifyThresholdWebhook } from './verify-webhook.mjs';

const FINAL = new Set(['delivered', 'left-at-door', 'needs-review', 'cancelled']);

function options(argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      base: { type: 'string' },
      key: { type: 'string' },
      home: { type: 'string' },
      door: { type: 'string' },
      courier: { type: 'string' },
      package: { type: 'string', default: `PKG-${Date.now()}` },
      'timeout-s': { type: 'string', default: '600' },
      'receiver-port': { type: 'string', default: '0' },
      'public-url': { type: 'string' },
    },
  });
  for (const required of ['base', 'key', 'home'])
    if (!values[required]) throw new Error(`--${required} is required`);
  return {
    ...values,
    timeoutS: Number(values['timeout-s']),
    receiverPort: Number(values['receiver-port']),
    publicUrl: values['public-url'],
  };
}

/** Calls the carrier API; throws with the server's own error message on a refusal. */
async function api(opts, method, path, body, headers = {}) {
  const res = await fetch(new URL(path, opts.base), {
    method,
    headers: {
      authorization: `Bearer ${opts.key}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...headers,
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  const json = text ? JSON.parse(text) : {};
  if (!res.ok) {
    const e = json.error ?? {};
    throw new Error(`${method} ${path}: ${res.status} ${e.code ?? ''} ${e.message ?? text}`);
  }
  return { json, headers: res.headers };
}

/** A webhook receiver: checks each signature, answers 204 (or 400 when it is wrong). */
function startReceiver(port, onEvent) {
  let secret = null;
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      if (
        secret === null ||
        !verifyThresholdWebhook(raw, req.headers['threshold-signature'], secret)
      ) {
        onEvent(null, 'bad signature');
        res.writeHead(400).end();
        return;
      }
      res.writeHead(204).end();
      onEvent(JSON.parse(raw.toString('utf8')), null);
    });
  });
  return new Promise((resolve) => {
    server.listen(port, '127.0.0.1', () =>
      resolve({
        url: `http://127.0.0.1:${server.address().port}/threshold`,
        setSecret: (s) => {
          secret = s;
        },
        close: () => new Promise((r) => server.close(() => r())),
      }),
    );
  });
}

async function main() {
  let opts;
  try {
    opts = options(process.argv.slice(2));
  } catch (err) {
    console.error(String(err.message ?? err));
    return 2;
  }
  const seen = [];
  let badSignatures = 0;
  let wake = () => {};
  const receiver = await startReceiver(opts.receiverPort, (event, problem) => {
    if (problem) badSignatures += 1;
    else seen.push(event);
    wake();
  });
  let webhookId = null;
  try {
    // 1. The webhook: where Threshold posts every state change of our deliveries.
    const hook = await api(
      opts,
      'POST',
      '/api/carrier/webhooks',
      {
        url: opts.publicUrl ?? receiver.url,
      },
      { 'idempotency-key': randomUUID() },
    );
    webhookId = hook.json.webhook.id;
    receiver.setSecret(hook.json.secret);
    console.log(`webhook ${webhookId} registered for ${hook.json.webhook.url}`);

    // 2. The delivery, booked once even if the request is sent twice.
    const now = Date.now();
    const booking = {
      homeId: opts.home,
      ...(opts.door ? { doorId: opts.door } : {}),
      packageRef: opts.package,
      windowStart: now - 60_000,
      windowEnd: now + 2 * 60 * 60_000,
      placement: 'in-home',
      ...(opts.courier ? { courierId: opts.courier } : {}),
    };
    const idempotencyKey = randomUUID();
    const first = await api(opts, 'POST', '/api/carrier/deliveries', booking, {
      'idempotency-key': idempotencyKey,
    });
    const again = await api(opts, 'POST', '/api/carrier/deliveries', booking, {
      'idempotency-key': idempotencyKey,
    });
    const delivery = first.json.delivery;
    if (again.json.delivery.id !== delivery.id)
      throw new Error('the retried booking made a second delivery');
    console.log(
      `delivery ${delivery.id} created (${delivery.status}); the retry answered the same ` +
        `delivery (replayed: ${again.headers.get('idempotent-replayed') ?? 'no'})`,
    );

    // 3. Follow it through webhooks until it ends.
    const deadline = Date.now() + opts.timeoutS * 1000;
    let printed = 0;
    let final = null;
    while (final === null) {
      const mine = seen.filter((e) => e.data?.delivery?.id === delivery.id);
      for (const e of mine.slice(printed)) {
        console.log(`event ${e.type}: status ${e.data.delivery.status}`);
        if (FINAL.has(e.data.delivery.status)) final = e.data.delivery.status;
      }
      printed = mine.length;
      if (final !== null) break;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no final state within ${opts.timeoutS} s`);
      await new Promise((r) => {
        wake = r;
        setTimeout(r, Math.min(left, 1000));
      });
    }

    // 4. The proof: outcome, times, camera coverage and a signed receipt (never the video).
    if (final === 'delivered') {
      const proof = await api(opts, 'GET', `/api/carrier/deliveries/${delivery.id}/proof`);
      const p = proof.json.proof ?? proof.json;
      console.log(`proof: ${JSON.stringify(p.outcome ?? p.status ?? null)}`);
    }
    console.log(`delivery ${delivery.id} ended ${final}; bad signatures: ${badSignatures}`);
    return (final === 'delivered' || final === 'left-at-door') && badSignatures === 0 ? 0 : 1;
  } catch (err) {
    console.error(String(err.message ?? err));
    return 1;
  } finally {
    if (webhookId !== null) {
      await api(
        opts,
        'POST',
        `/api/carrier/webhooks/${webhookId}/disable`,
        {},
        {
          'idempotency-key': randomUUID(),
        },
      ).catch(() => undefined);
    }
    await receiver.close();
  }
}

process.exitCode = await main();
