import { describe, expect, it } from 'vitest';
import type { CommandMessage } from '../protocol/device-messages.ts';
import { cameraCommand } from './camera-commands.ts';
import { CommandFailure } from './device-connection.ts';

function camera() {
  const calls: string[] = [];
  return {
    calls,
    target: {
      arm: (id: string) => calls.push(`arm ${id}`),
      disarm: () => calls.push('disarm'),
      report: () => calls.push('report'),
      data: () => ({ recording: calls.at(-1)?.startsWith('arm') ?? false }),
    },
  };
}

const cmd = (action: CommandMessage['action'], more: Partial<CommandMessage> = {}) =>
  ({
    commandId: 'c1',
    action,
    issuedAt: 0,
    expiresAt: 1,
    nonce: 'n',
    mac: 'm',
    ...more,
  }) as CommandMessage;

describe('cameraCommand', () => {
  it('arms for a session, disarms and reports, answering with the camera’s state', () => {
    const c = camera();
    expect(cameraCommand(c.target, cmd('arm', { sessionId: 's-1' }))).toEqual({ recording: true });
    expect(cameraCommand(c.target, cmd('disarm'))).toEqual({ recording: false });
    cameraCommand(c.target, cmd('report'));
    expect(c.calls).toEqual(['arm s-1', 'disarm', 'report']);
  });

  it('refuses an arm without a session, and what is not a camera’s to do, touching nothing', () => {
    const c = camera();
    const failure = (f: () => unknown) => {
      try {
        f();
      } catch (err) {
        return err instanceof CommandFailure ? err.code : 'other';
      }
      return 'none';
    };
    expect(failure(() => cameraCommand(c.target, cmd('arm')))).toBe('command.invalid');
    for (const action of [
      'lock',
      'unlock',
      'pin.set',
      'pin.clear',
      'pin.list',
      'pin.window',
    ] as const)
      expect(failure(() => cameraCommand(c.target, cmd(action)))).toBe('command.unsupported');
    expect(c.calls).toEqual([]);
  });
});
