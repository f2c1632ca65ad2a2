/**
 * The device side of Threshold: the protocol client every device speaks through, and the
 * simulated lock, door sensor and camera that `threshold sim` runs and tests use as fakes.
 */
export {
  CommandGuard,
  DEFAULT_SKEW_TOLERANCE_MS,
  type CommandGuardOptions,
  type CommandGuardStats,
  type CommandRefusalCode,
  type CommandVerdict,
} from './command-guard.ts';
export {
  CommandFailure,
  silentLogger,
  type DeviceBehaviour,
  type DeviceConnection,
  type DeviceErrorCode,
  type DeviceLogger,
  type EventBody,
  type HeartbeatBody,
  type PublishResult,
  type StateBody,
} from './device-connection.ts';
export {
  DeviceEndpoint,
  type DeviceEndpointStats,
  type DeviceIdentity,
  type EndpointTransport,
} from './device-endpoint.ts';
export { DeviceLink, type DeviceLinkOptions, type DeviceLinkStats } from './device-link.ts';
export { MemoryLink, type CommandFields, type PublishedMessage } from './memory-link.ts';
export { renderScene, type SceneInput, type SceneOptions } from './camera-scene.ts';
export {
  SimCamera,
  type CapturedFrame,
  type PictureMode,
  type SimCameraOptions,
} from './sim-camera.ts';
export {
  SimDoorSensor,
  type DoorPositionSource,
  type SimDoorSensorOptions,
} from './sim-door-sensor.ts';
export {
  SimHome,
  type SimDeviceCredentials,
  type SimHomeLinks,
  type SimHomeOptions,
  type SimLinkSettings,
} from './sim-home.ts';
export { SimLock, type BoltTarget, type SimLockOptions } from './sim-lock.ts';
