/**
 * The carrier example client (`examples/carrier-client.mjs`), run as a user would run it, as its
 * own process, against a live server: it registers a webhook receiver, books a delivery twice
 * with one Idempotency-Key, and follows it through signed webhooks while a courier (driven here
 * through the real courier API and the simulated home) delivers it inside.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ScenarioWorld } from '../src/harness/scenario-world.ts';

const CLIENT = fileURLToPath(new URL('../examples/carrier-client.mjs', import.meta.url));

let world: ScenarioWorld;
beforeAll(async () => {
  world = await ScenarioWorld.create({ allowLocalEndpoints: true });
}, 60_000);
afterAll(async () => {
  await world?.close();
});

it('books a delivery once, follows it through signed webhooks to "delivered", and fetches its proof', async () => {
  const child = spawn(
    process.execPath,
    [
      CLIENT,
      '--base',
      world.sys.url,
      '--key',
      world.creds.carrier.apiKey,
      '--home',
      world.creds.homeId,
      '--door',
      world.creds.doorId,
      '--courier',
      world.creds.courier.id,
      '--package',
      'PKG-EXAMPLE-1',
      '--timeout-s',
      '60',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  let err = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  try {
    await world.waitFor(
      () => /delivery \S+ created/.test(out) || err.length > 0,
      20_000,
      'the client booked its delivery',
    );
    expect(err).toBe('');
    const deliveryId = /delivery (\S+) created/.exec(out)![1]!;
    // The retry answered the same delivery, and the server said it was a replay.
    expect(out).toMatch(/the retry answered the same delivery \(replayed: true\)/);
    expect(
      (await world.sys.store.deliveries.listForCarrier(world.creds.carrier.id)).filter(
        (d) => d.packageRef === 'PKG-EXAMPLE-1',
      ),
    ).toHaveLength(1);

    // The courier delivers it: at the door, inside, out, door closed, lock.
    const access = await world.requestAccess(deliveryId);
    expect(access.status, JSON.stringify(access.body)).toBe(200);
    const sessionId = (access.body.session as { id: string }).id;
    await world.dropParcel();
    expect((await world.requestRelock(sessionId)).status).toBe(200);

    const code = await Promise.race([
      exited,
      new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 45_000)),
    ]);
    expect(code, `${out}\n${err}`).toBe(0);
  } finally {
    child.kill();
  }
  const events = [...out.matchAll(/^event (\S+): status (\S+)$/gm)].map((m) => m[1]);
  expect(events[0]).toBe('delivery.created');
  expect(events).toContain('delivery.in-progress');
  expect(events.at(-1)).toBe('delivery.delivered');
  expect(out).toMatch(/ended delivered; bad signatures: 0/);
  expect(out).toMatch(/^proof: /m);
  // The client removed its webhook on the way out.
  expect(
    (await world.sys.store.db.selectFrom('webhooks').selectAll().execute()).every(
      (w) => w.disabled_at !== null,
    ),
  ).toBe(true);
}, 120_000);
