/**
 * Who may do what on the broker: the access rules of the device protocol, as pure functions.
 *
 * A device (id D in home H) may publish only on `threshold/v1/H/D/<up-channel>`, subscribe
 * only to exactly `threshold/v1/H/D/command`, and set a will only on its own availability
 * topic. The server client may publish only commands to concrete devices and subscribe to
 * anything under `threshold/v1/`. Retained messages exist only on the availability and state
 * channels, where a newcomer needs the last value.
 *
 * Each check returns `null` when the action is allowed, or a short reason (for logs and
 * counters) when it is refused.
 */
import {
  TOPIC_ROOT,
  deviceTopic,
  isUpChannel,
  parseDeviceTopic,
  type Channel,
} from '../protocol/topics.ts';
import { maxPayloadBytes } from '../protocol/device-messages.ts';

/** The authenticated identity behind a broker connection. */
export type BrokerIdentity =
  | { readonly kind: 'device'; readonly deviceId: string; readonly homeId: string }
  | { readonly kind: 'server'; readonly clientId: string };

/** Why an action was refused; short, stable, safe to log and to count by. */
export type AclRefusal =
  | 'not-a-device-topic'
  | 'other-device'
  | 'not-an-up-channel'
  | 'not-a-command-topic'
  | 'retain-not-allowed'
  | 'not-own-command-topic'
  | 'outside-threshold-root'
  | 'will-not-own-availability'
  | 'will-too-large';

/** Channels on which a retained message is allowed: the last known value matters there. */
const RETAINED_CHANNELS: ReadonlySet<Channel> = new Set<Channel>(['availability', 'state']);

const ROOT_PREFIX = `${TOPIC_ROOT}/`;

/**
 * Whether `identity` may publish on `topic`. `topic` is a concrete topic (aedes refuses
 * wildcards in PUBLISH before asking), and {@link parseDeviceTopic} accepts only valid ids, so
 * a wildcard or an extra level never passes.
 */
export function checkPublish(
  identity: BrokerIdentity,
  topic: string,
  retain: boolean,
): AclRefusal | null {
  const parsed = parseDeviceTopic(topic);
  if (!parsed) return 'not-a-device-topic';
  if (identity.kind === 'server') {
    // A lock's grant list is retained (a hub that reconnects gets the newest at once); a
    // retained command would be replayed to the device at every reconnect.
    if (parsed.channel === 'grants') return null;
    if (parsed.channel !== 'command') return 'not-a-command-topic';
    if (retain) return 'retain-not-allowed';
    return null;
  }
  if (parsed.homeId !== identity.homeId || parsed.deviceId !== identity.deviceId) {
    return 'other-device';
  }
  if (!isUpChannel(parsed.channel)) return 'not-an-up-channel';
  if (retain && !RETAINED_CHANNELS.has(parsed.channel)) return 'retain-not-allowed';
  return null;
}

/**
 * Whether a publish that no connected client stands behind may go out. aedes does this only
 * for a will it finds in persistence after its client is gone; wills were checked at
 * connect, so only availability messages pass.
 */
export function checkOrphanPublish(topic: string): AclRefusal | null {
  const parsed = parseDeviceTopic(topic);
  if (!parsed) return 'not-a-device-topic';
  return parsed.channel === 'availability' ? null : 'will-not-own-availability';
}

/**
 * Whether `identity` may subscribe to `filter`. A device gets exactly its own command topic
 * (no wildcards, so it cannot read anything else); the server anything under the root.
 */
export function checkSubscribe(identity: BrokerIdentity, filter: string): AclRefusal | null {
  if (identity.kind === 'server') {
    return filter.startsWith(ROOT_PREFIX) ? null : 'outside-threshold-root';
  }
  return isOwnDownTopic(identity, filter) ? null : 'not-own-command-topic';
}

/**
 * Whether a message on `topic` may be delivered to `identity`. A second line behind
 * {@link checkSubscribe}: even if a subscription slipped through, a device only ever receives
 * its own commands.
 */
export function checkForward(identity: BrokerIdentity, topic: string): AclRefusal | null {
  if (identity.kind === 'server') {
    return topic.startsWith(ROOT_PREFIX) ? null : 'outside-threshold-root';
  }
  return isOwnDownTopic(identity, topic) ? null : 'not-own-command-topic';
}

/** A device's own `command` or `grants` topic, exactly (no wildcard). */
function isOwnDownTopic(
  identity: Extract<BrokerIdentity, { kind: 'device' }>,
  topic: string,
): boolean {
  return (
    topic === deviceTopic(identity.homeId, identity.deviceId, 'command') ||
    topic === deviceTopic(identity.homeId, identity.deviceId, 'grants')
  );
}

/** The last will of a CONNECT, as far as the ACL cares. */
export interface WillMessage {
  readonly topic: string;
  readonly payload: Uint8Array | string;
  readonly retain: boolean;
}

/**
 * Whether `identity` may leave this last will. A device may only announce its own
 * unavailability (on its availability topic, within that channel's size limit); the server's
 * will must pass the same rule as its publishes.
 */
export function checkWill(identity: BrokerIdentity, will: WillMessage): AclRefusal | null {
  if (identity.kind === 'server') return checkPublish(identity, will.topic, will.retain);
  if (will.topic !== deviceTopic(identity.homeId, identity.deviceId, 'availability')) {
    return 'will-not-own-availability';
  }
  const size =
    typeof will.payload === 'string' ? Buffer.byteLength(will.payload) : will.payload.byteLength;
  if (size > maxPayloadBytes('availability')) return 'will-too-large';
  return checkPublish(identity, will.topic, will.retain);
}
