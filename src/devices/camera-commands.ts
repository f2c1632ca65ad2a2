/**
 * What a camera does with a command, for every camera that speaks the device protocol (the
 * simulated camera, a camera bridged by the home hub): `arm {sessionId}`, `disarm`, `report`;
 * anything else is not a camera's to do.
 */
import type { CommandMessage } from '../protocol/device-messages.ts';
import { CommandFailure } from './device-connection.ts';

/** The camera's side of the commands. */
export interface CameraCommandTarget {
  arm(sessionId: string): void;
  disarm(): void;
  /** Publishes the camera's state again. */
  report(): void;
  /** The `data` of an `ok` reply: the camera's state. */
  data(): Record<string, unknown>;
}

/**
 * Carries out `command` on `camera` and returns the reply's data; throws a
 * {@link CommandFailure} for a command a camera does not take or one without its sessionId.
 */
export function cameraCommand(
  camera: CameraCommandTarget,
  command: CommandMessage,
): Record<string, unknown> {
  switch (command.action) {
    case 'arm':
      if (command.sessionId === undefined)
        throw new CommandFailure('command.invalid', 'arm needs a sessionId');
      camera.arm(command.sessionId);
      return camera.data();
    case 'disarm':
      camera.disarm();
      return camera.data();
    case 'report':
      camera.report();
      return camera.data();
    case 'lock':
    case 'unlock':
    case 'pin.set':
    case 'pin.clear':
    case 'pin.list':
    case 'pin.window':
      throw new CommandFailure('command.unsupported', `a camera cannot ${command.action}`);
  }
}
