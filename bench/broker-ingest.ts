/**
 * The embedded broker's own cost per device message, with the server link's `deliver`
 * answering synchronously (returns nothing: a heartbeat) or with a promise (as every message
 * was answered before, and as an event still is). Everything but `deliver` is production's:
 * `startEmbeddedBroker` with its authentication, ACL and frame guard, and its `serverLink()`.
 * The devices are authenticated device connections in this same process (bench/raw-mqtt.ts),
 * each keeping 10 unacknowledged QoS 1 heartbeat-sized messages in flight.
 *
 * Measured in this process: messages taken per second and CPU time per message
 * (`process.cpuUsage`: broker and publishers together, the same in both modes but for
 * `deliver`), rounds alternating the two modes (s p p s s p p s …).
 *
 * usage: node bin/run-ts.js bench/broker-ingest.ts [--rounds N] [--seconds S] [--devices N]
 */
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deriveDeviceKey, mqttPassword } from '../src/protocol/device-auth.ts';
import { deviceTopic } from '../src/protocol/topics.ts';
import { startEmbeddedBroker } from '../src/broker/embedded-broker.ts';
import { serverMqttCredentials } from '../src/broker/server-credentials.ts';
import { benchMain, fmt } from './bench-report.ts';
import { RawMqttClient, topicField } from './raw-mqtt.ts';
import { ratio, summarize, type Summary } from './sample-stats.ts';

/** One mode's figures. */
interface ModeFigures {
  readonly messagesPerSecond: Summary;
  readonly cpuMicrosPerMessage: Summary;
}

async function main(rounds: number, seconds: number, devices: number): Promise<object> {
  const master = randomBytes(32);
  const ids = Array.from({ length: devices }, (_, i) => `bench-dev-${i}`);
  const broker = await startEmbeddedBroker({
    masterKey: master,
    lookupDevice: (id) => (ids.includes(id) ? { homeId: 'bench-home' } : undefined),
    server: serverMqttCredentials(master),
  });
  let mode: 'sync' | 'promise' = 'sync';
  let taken = 0;
  const link = broker.serverLink();
  await link.start(() => {
    taken += 1;
    return mode === 'sync' ? undefined : Promise.resolve();
  });
  const clients = await Promise.all(
    ids.map((id) =>
      RawMqttClient.open({
        port: broker.port,
        clientId: id,
        username: id,
        password: mqttPassword(deriveDeviceKey(master, id)),
      }),
    ),
  );
  const topics = ids.map((id) => topicField(deviceTopic('bench-home', id, 'heartbeat')));
  const payload = Buffer.from('x'.repeat(280));
  const WINDOW = 10;
  let pumping = true;
  // The publishers run in this process too, on timers: their cost is the same in both modes and
  // is measured apart (a round with deliver not called is not possible), so the figure to read
  // is the difference between the modes.
  const pump = (): void => {
    if (!pumping) return;
    for (let i = 0; i < clients.length; i++) {
      const c = clients[i]!;
      while (c.up && c.sentQos1 - c.acked < WINDOW) c.publish(topics[i]!, payload, 1);
    }
    setImmediate(pump);
  };
  pump();
  const samples: Record<'sync' | 'promise', { rate: number[]; cpu: number[] }> = {
    sync: { rate: [], cpu: [] },
    promise: { rate: [], cpu: [] },
  };
  await new Promise((r) => setTimeout(r, 1_000));
  for (let r = 0; r < rounds * 2; r++) {
    mode = r % 4 === 0 || r % 4 === 3 ? 'sync' : 'promise';
    await new Promise((res) => setTimeout(res, 300));
    const n0 = taken;
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await new Promise((res) => setTimeout(res, seconds * 1000));
    const cpu = process.cpuUsage(c0);
    const n = taken - n0;
    const secs = (performance.now() - t0) / 1000;
    samples[mode].rate.push(n / secs);
    samples[mode].cpu.push((cpu.user + cpu.system) / n);
    process.stderr.write(
      `[bench] broker ingest ${mode}: ${Math.round(n / secs)} messages/s, ${((cpu.user + cpu.system) / n).toFixed(2)} µs CPU each\n`,
    );
  }
  pumping = false;
  for (const c of clients) c.end();
  await link.stop();
  await broker.close();
  const fig = (m: 'sync' | 'promise'): ModeFigures => ({
    messagesPerSecond: summarize(samples[m].rate, 0),
    cpuMicrosPerMessage: summarize(samples[m].cpu, 2),
  });
  const sync = fig('sync');
  const promise = fig('promise');
  return {
    devices,
    window: WINDOW,
    payloadBytes: payload.length,
    seconds,
    sync,
    promise,
    cpuPromiseToSync: ratio(promise.cpuMicrosPerMessage.median, sync.cpuMicrosPerMessage.median),
  };
}

const USAGE = `usage: node bin/run-ts.js bench/broker-ingest.ts [--rounds N] [--seconds S] [--devices N] [--json]
  --rounds N    rounds of each mode, alternating (default 4)
  --seconds S   seconds per round (default 5)
  --devices N   device connections publishing (default 100)
`;

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await benchMain(
    USAGE,
    { rounds: { type: 'string' }, seconds: { type: 'string' }, devices: { type: 'string' } },
    async (args) => {
      const rounds = Number(args.rounds ?? 4);
      const seconds = Number(args.seconds ?? 5);
      const devices = Number(args.devices ?? 100);
      if (![rounds, seconds, devices].every((n) => Number.isInteger(n) && n >= 1))
        return 'rounds, seconds and devices are whole numbers of at least 1';
      const r = (await main(rounds, seconds, devices)) as {
        sync: ModeFigures;
        promise: ModeFigures;
        cpuPromiseToSync: number | null;
      };
      return {
        json: r,
        table: [
          `embedded broker, ${devices} devices, QoS 1, 280 B: messages taken per second and CPU per message (this process: broker and publishers)`,
          `  deliver answers synchronously: ${fmt(r.sync.messagesPerSecond.median)}/s, ${fmt(r.sync.cpuMicrosPerMessage.median, 2)} µs`,
          `  deliver answers with a promise: ${fmt(r.promise.messagesPerSecond.median)}/s, ${fmt(r.promise.cpuMicrosPerMessage.median, 2)} µs`,
          `  promise ÷ synchronous, CPU per message: ${fmt(r.cpuPromiseToSync, 2)}`,
        ].join('\n'),
      };
    },
  );
}
