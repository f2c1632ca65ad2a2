/** Every scenario, by name, in the order `threshold scenario --all` runs them. */
import type { Scenario } from '../scenario.ts';
import { carrierDelivery } from './carrier-delivery.ts';
import { carrierIsolation } from './carrier-isolation.ts';
import { deauth } from './deauth.ts';
import { delivery } from './delivery.ts';
import { freeze } from './freeze.ts';
import { guestEscalation } from './guest-escalation.ts';
import { guestSchedule } from './guest-schedule.ts';
import { hubDeadline } from './hub-deadline.ts';
import { hubDeadMan } from './hub-dead-man.ts';
import { hubStaleGrants } from './hub-stale-grants.ts';
import { pinBruteForce } from './pin-brute-force.ts';
import { relockJam } from './relock-jam.ts';
import { replay } from './replay.ts';
import { revokeCascade } from './revoke-cascade.ts';
import { revokeOffline } from './revoke-offline.ts';
import { cameraCutBeforeOpen } from './camera-cut-before-open.ts';
import { cameraCutAfterOpen } from './camera-cut-after-open.ts';
import { jamAtRelock } from './jam-at-relock.ts';
import { loopFreeze } from './loop-freeze.ts';
import { commandFaults } from './command-faults.ts';
import { brokerRestart } from './broker-restart.ts';
import { courierOutsideWindow } from './courier-outside-window.ts';
import { courierOffSite } from './courier-off-site.ts';
import { courierWrongDelivery } from './courier-wrong-delivery.ts';
import { courierReuse } from './courier-reuse.ts';
import { courierRevoked } from './courier-revoked.ts';
import { stolenToken } from './stolen-token.ts';
import { forgedHeartbeat } from './forged-heartbeat.ts';
import { impersonation } from './impersonation.ts';
import { lockDoorMismatch } from './lock-door-mismatch.ts';
import { lockJam } from './lock-jam.ts';
import { clockSkew } from './clock-skew.ts';
import { controlPlaneCrash } from './control-plane-crash.ts';
import { dbTamper } from './db-tamper.ts';
import { logTruncated } from './log-truncated.ts';
import { cameraLinkDown } from './camera-link-down.ts';
import { hubRevokedPin } from './hub-revoked-pin.ts';

export const SCENARIOS: readonly Scenario[] = [
  delivery,
  deauth,
  freeze,
  relockJam,
  replay,
  guestSchedule,
  pinBruteForce,
  revokeCascade,
  guestEscalation,
  revokeOffline,
  carrierDelivery,
  carrierIsolation,
  hubDeadline,
  hubDeadMan,
  hubStaleGrants,
  cameraCutBeforeOpen,
  cameraCutAfterOpen,
  jamAtRelock,
  loopFreeze,
  commandFaults,
  brokerRestart,
  courierOutsideWindow,
  courierOffSite,
  courierWrongDelivery,
  courierReuse,
  courierRevoked,
  stolenToken,
  forgedHeartbeat,
  impersonation,
  lockDoorMismatch,
  lockJam,
  clockSkew,
  controlPlaneCrash,
  dbTamper,
  logTruncated,
  hubRevokedPin,
  cameraLinkDown,
];

/** The scenario named `name`, or undefined. */
export function findScenario(name: string): Scenario | undefined {
  return SCENARIOS.find((s) => s.name === name);
}
