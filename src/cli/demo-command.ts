/**
 * `threshold demo` (what `npm start` runs): the server, a seeded demo home, and a home hub for
 * it, in one process. The hub bridges the home's simulated lock, door sensor and camera (its
 * `memory` drivers) exactly as it bridges real ones, so the demo shows what a home runs: the
 * hub's config is a real file under `<data>/hub/`, and its local enforcement (deadlines, the
 * dead-man's switch, the cut-off) and local log are on. Prints where to go and how to sign in.
 */
import { join } from 'node:path';
import pino from 'pino';
import { startHubHome } from '../harness/scenarios/hub-home.ts';
import { systemClock } from '../protocol/system-clock.ts';
import { seedDemo, DEMO_DOORSTEP } from '../server/seed.ts';
import { startSystem } from '../server/system.ts';
import { closeOnSignal, startOrExit } from './command-process.ts';

export interface DemoOptions {
  readonly data: string;
  readonly port: number;
  readonly mqttPort: number;
  readonly publicUrl?: string;
}

export async function demoCommand(opts: DemoOptions): Promise<void> {
  const logger = pino({ level: process.env.LOG_LEVEL ?? 'warn' });
  const sys = await startOrExit(() =>
    startSystem({
      dataDir: opts.data,
      port: opts.port,
      mqttPort: opts.mqttPort,
      logger,
      demo: true,
      // The demo is for development on this machine: webhook receivers and push endpoints
      // on loopback or plain http are accepted here, never by \`threshold serve\`.
      allowInsecurePushEndpoints: true,
      ...(opts.publicUrl ? { publicUrl: opts.publicUrl } : {}),
    }),
  );
  const creds = await seedDemo(sys, opts.data);
  const hubDir = join(opts.data, 'hub');
  const home = await startOrExit(() =>
    startHubHome(
      creds,
      sys.brokerUrl,
      hubDir,
      systemClock,
      { grantKey: sys.keys.grantSigner.publicKey },
      logger,
    ),
  );
  const url = opts.publicUrl ?? `http://localhost:${sys.port}`;
  const pos = JSON.stringify({ position: DEMO_DOORSTEP });
  console.log(`
Threshold demo is running.

  Owner page    ${url}/
  Courier page  ${url}/courier   (a phone-sized page; the demo lets it pretend to be at the door)
  API           ${url}/docs
  MQTT broker   ${sys.brokerUrl}
  Data          ${opts.data}  (credentials in ${opts.data}/demo-credentials.json)

  Owner         user "${creds.owner.username}"    password "${creds.owner.password}"
  Courier       user "${creds.courier.username}"  password "${creds.courier.password}"
  Carrier key   ${creds.carrier.apiKey}
  Carrier admin user "${creds.carrierAdmin.username}"  password "${creds.carrierAdmin.password}"  (API keys and couriers of ${creds.carrier.id})

Try an in-home delivery from a shell:

  TOKEN=$(curl -s ${url}/api/auth/sign-in -H 'content-type: application/json' \\
    -d '{"username":"${creds.courier.username}","password":"${creds.courier.password}"}' | node -pe 'JSON.parse(require("fs").readFileSync(0)).token')
  curl -s ${url}/api/courier/deliveries -H "authorization: Bearer $TOKEN"
  curl -s -X POST ${url}/api/courier/deliveries/${creds.deliveryId}/access -H "authorization: Bearer $TOKEN" \\
    -H 'content-type: application/json' -d '${pos}'

Create a delivery as the carrier (the Idempotency-Key makes a retry safe: same key, no second delivery):

  curl -s -X POST ${url}/api/carrier/deliveries -H "authorization: Bearer ${creds.carrier.apiKey}" \\
    -H 'content-type: application/json' -H "idempotency-key: demo-$(date +%s)" \\
    -d "$(node -pe 'JSON.stringify({homeId:"${creds.homeId}",packageRef:"PKG-CURL-1",windowStart:Date.now(),windowEnd:Date.now()+3600000})')"

The demo home ${creds.homeId} runs behind a home hub, as a real home does. The hub bridges
its simulated devices (lock ${creds.devices.lock.id}, door sensor ${creds.devices.doorSensor.id}, camera ${creds.devices.camera.id})
and enforces deadlines and the dead-man's switch itself.

  Hub config    ${home.configPath}
  Hub's log     ${join(home.dataDir, 'hub-log.jsonl')}

Press Ctrl+C to stop.
`);
  closeOnSignal(async () => {
    await home.hub.stop();
    await sys.close();
  });
}
