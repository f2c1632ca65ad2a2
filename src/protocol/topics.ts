/**
 * MQTT topics of the device protocol (see docs/device-protocol.md).
 *
 *   threshold/v1/<homeId>/<deviceId>/<channel>
 *
 * Devices publish on the "up" channels of their own prefix and subscribe to their own
 * `command` topic; nothing else. The server subscribes to the up channels of every device.
 */

/** The first two levels of every Threshold topic. */
export const TOPIC_ROOT = 'threshold/v1';

/** Channels a device publishes on. */
export const UP_CHANNELS = [
  'availability',
  'state',
  'event',
  'heartbeat',
  'frame',
  'reply',
] as const;
/**
 * Channels the server publishes on for a device: `command`, and `grants` (a lock's signed
 * offline grant list, retained; see grant-list.ts), which only a home hub reads.
 */
export const DOWN_CHANNELS = ['command', 'grants'] as const;

export type UpChannel = (typeof UP_CHANNELS)[number];
export type DownChannel = (typeof DOWN_CHANNELS)[number];
export type Channel = UpChannel | DownChannel;

/** Ids of homes and devices: lower-case letters, digits and dashes, 1 to 64 long. */
export const ID_PATTERN = '^[a-z0-9][a-z0-9-]{0,63}$';
const ID_RE = new RegExp(ID_PATTERN);

/** Whether a string is a valid home or device id. */
export function isId(s: string): boolean {
  return ID_RE.test(s);
}

export interface DeviceTopic {
  readonly homeId: string;
  readonly deviceId: string;
  readonly channel: Channel;
}

const CHANNELS: ReadonlySet<string> = new Set<string>([...UP_CHANNELS, ...DOWN_CHANNELS]);

/** Builds the topic of one device channel. Throws on an invalid id (a bug, not input). */
export function deviceTopic(homeId: string, deviceId: string, channel: Channel): string {
  if (!isId(homeId) || !isId(deviceId))
    throw new Error(`invalid id in topic: ${homeId}/${deviceId}`);
  return `${TOPIC_ROOT}/${homeId}/${deviceId}/${channel}`;
}

/** Parses a topic; null when it is not exactly a Threshold device topic. */
export function parseDeviceTopic(topic: string): DeviceTopic | null {
  const parts = topic.split('/');
  if (parts.length !== 5 || `${parts[0]}/${parts[1]}` !== TOPIC_ROOT) return null;
  const [, , homeId, deviceId, channel] = parts as [string, string, string, string, string];
  if (!isId(homeId) || !isId(deviceId) || !CHANNELS.has(channel)) return null;
  return { homeId, deviceId, channel: channel as Channel };
}

/** Whether a channel is one devices publish on. */
export function isUpChannel(channel: Channel): channel is UpChannel {
  return (UP_CHANNELS as readonly string[]).includes(channel);
}

/** The filter that matches every device topic, up and down (for tools that watch all traffic). */
export const SERVER_SUBSCRIPTION = `${TOPIC_ROOT}/+/+/+`;

/**
 * The filters the server subscribes to: each up channel of every device, so its own commands
 * do not come back to it.
 */
export const SERVER_SUBSCRIPTIONS: readonly string[] = UP_CHANNELS.map(
  (c) => `${TOPIC_ROOT}/+/+/${c}`,
);
