/**
 * A Matter door lock for tests: a matter.js `ServerNode` with one Door Lock endpoint (PIN
 * credentials, users), run as a child process inside its own network namespace
 * (`test/drivers/matter-netns.ts`), because matter.js does not use the loopback interface.
 *
 * It behaves like a lock's firmware, not like matter.js's default Door Lock server: a lock or
 * unlock command is *accepted* at once and the bolt moves afterwards (after `motorMs`, or when
 * the test releases held movements), and only then do `LockState` and the `LockOperation` event
 * change. A jam leaves the bolt `NotFullyLocked` and raises a `DoorLockAlarm` "LockJammed". A
 * hand on the thumb-turn and a keypad entry arrive as `LockOperation` events with the source
 * Manual or Keypad (with the user and credential index), as locks report them. A wrong code is
 * a `LockOperationError` "InvalidCredential"; the one that reaches `WrongCodeEntryLimit` also
 * raises `DoorLockAlarm` "WrongCodeEntryLimit" (the keypad is then off for
 * `UserCodeTemporaryDisableTime` seconds, which a controller reads from the attribute).
 *
 * Control: one JSON object per line on stdin, `{ id, op, ... }`; every line is answered on
 * stdout with `{ id, ok }` (or `{ id, error }`) after it took effect, and every movement of the
 * bolt is reported as `{ bolt }`. The first line on stdout is `{ ready, pairingCode }`. `radioOff`
 * and `radioOn` take the lock out of range and back.
 *
 * Usage: `node --import tsx test/drivers/matter-virtual-lock.ts STORAGE_DIR INTERFACE`.
 */
import { Socket } from 'node:dgram';
import { createInterface } from 'node:readline';
import { config } from '@matter/nodejs/config';

/**
 * The lock's radio. Off, every UDP datagram it sends vanishes and none reaches it, with no
 * error on either side: a lock out of range, not a lock whose network stack says "unreachable"
 * (taking the veth link down would make sends fail at once, which a Matter device treats
 * differently from silence). The network itself stays real.
 */
const radio = { on: true };
// The originals, called with the socket as `this` (hence fetched, not taken as methods).
const send = Reflect.get(Socket.prototype, 'send') as (this: Socket, ...args: unknown[]) => void;
const emit = Reflect.get(Socket.prototype, 'emit') as (this: Socket, ...args: unknown[]) => boolean;
Socket.prototype.send = function (this: Socket, ...args: unknown[]): void {
  if (radio.on) {
    send.apply(this, args);
    return;
  }
  const callback = args.findLast((a) => typeof a === 'function') as
    ((error: Error | null, bytes: number) => void) | undefined;
  if (callback) queueMicrotask(() => callback(null, 0));
};
Socket.prototype.emit = function (this: Socket, ...args: unknown[]): boolean {
  if (args[0] === 'message' && !radio.on) return false;
  return emit.apply(this, args);
};

// Set before matter.js builds its environment: no signal traps (the test ends this process by
// closing its stdin), no process.env, argv or config file read, storage where the test says.
config.trapProcessSignals = false;
config.loadProcessArgv = false;
config.loadProcessEnv = false;
config.loadConfigFile = false;
config.setProcessExitCodeOnError = false;

const [storageDir, netInterface] = process.argv.slice(2);
if (storageDir === undefined || netInterface === undefined) {
  process.stderr.write('usage: matter-virtual-lock.ts STORAGE_DIR INTERFACE\n');
  process.exit(2);
}
config.defaultStoragePath = storageDir;
// stdout carries the control protocol; matter.js logs through console.debug/info (stdout).
console.debug = console.info = console.log = console.error;

const { Environment, Logger, LogLevel, ServerNode, Bytes, VendorId } = await import('@matter/main');
const { DoorLockDevice } = await import('@matter/main/devices/door-lock');
const { DoorLockServer } = await import('@matter/main/behaviors/door-lock');
const { DoorLock } = await import('@matter/main/clusters/door-lock');
const { DeviceAdvertiser } = await import('@matter/main/protocol');

Logger.level = process.env.THRESHOLD_MATTER_LOG === '1' ? LogLevel.INFO : LogLevel.ERROR;
const env = Environment.default;
env.vars.set('storage.path', storageDir);
// mDNS only on the namespace's end of the veth pair.
env.vars.set('mdns.networkInterface', netInterface);

/** The slots of the keypad (users, and one PIN credential each). */
const USERS = 8;
/** What a test passes to the pairing step (the matter.js test defaults). */
const PASSCODE = 20202021;
const DISCRIMINATOR = 3840;

type Bolt = 'locked' | 'unlocked' | 'jammed';

/** The lock's own truth and the test's knobs, outside matter.js's state. */
const world = {
  /** Movements wait for `releaseMovements` while true. */
  hold: false,
  jamNext: false,
  motorMs: 50,
  held: [] as (() => void)[],
};

const LockBase = DoorLockServer.with('PinCredential', 'User');

/** Door Lock with a motor: commands are taken at once, the bolt moves after. */
class VirtualLockServer extends LockBase {
  override lockDoor(): void {
    schedule('locked');
  }

  override unlockDoor(): void {
    schedule('unlocked');
  }
}

const node = await ServerNode.create({
  id: 'virtual-lock',
  network: { port: 5540 },
  commissioning: { passcode: PASSCODE, discriminator: DISCRIMINATOR },
  productDescription: { name: 'Threshold virtual lock', deviceType: DoorLockDevice.deviceType },
  basicInformation: {
    vendorName: 'Threshold tests',
    vendorId: VendorId(0xfff1),
    productName: 'Virtual lock',
    productId: 0x8001,
    serialNumber: 'virtual-lock-1',
    nodeLabel: 'Virtual lock',
  },
});

const endpoint = await node.add(DoorLockDevice.with(VirtualLockServer), {
  id: 'lock',
  doorLock: {
    lockState: DoorLock.LockState.Locked,
    lockType: DoorLock.LockType.DeadBolt,
    actuatorEnabled: true,
    operatingMode: DoorLock.OperatingMode.Normal,
    numberOfTotalUsersSupported: USERS,
    numberOfPinUsersSupported: USERS,
    numberOfCredentialsSupportedPerUser: 1,
    credentialRulesSupport: { single: true },
    minPinCodeLength: 4,
    maxPinCodeLength: 10,
    // Both must be set for the keypad to lock itself out after wrong codes.
    wrongCodeEntryLimit: 3,
    userCodeTemporaryDisableTime: 10,
    autoRelockTime: 0,
  },
});

/** Writes one line of the control protocol. */
function say(message: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

function boltOf(state: number | null): Bolt {
  if (state === DoorLock.LockState.Locked) return 'locked';
  if (state === DoorLock.LockState.Unlocked || state === DoorLock.LockState.Unlatched)
    return 'unlocked';
  return 'jammed';
}

/** Sets the bolt as the lock's own report (attribute first, then the event that explains it). */
async function move(
  to: Bolt,
  source: (typeof DoorLock.OperationSource)[keyof typeof DoorLock.OperationSource],
  slot: number | null = null,
): Promise<void> {
  await endpoint.act('move', (agent) => {
    const lock = agent.get(VirtualLockServer);
    if (to === 'jammed') {
      lock.state.lockState = DoorLock.LockState.NotFullyLocked;
      lock.events.doorLockAlarm.emit({ alarmCode: DoorLock.AlarmCode.LockJammed }, lock.context);
      return;
    }
    lock.state.lockState =
      to === 'locked' ? DoorLock.LockState.Locked : DoorLock.LockState.Unlocked;
    lock.events.lockOperation.emit(
      {
        lockOperationType:
          to === 'locked' ? DoorLock.LockOperationType.Lock : DoorLock.LockOperationType.Unlock,
        operationSource: source,
        userIndex: slot,
        fabricIndex: null,
        sourceNode: null,
        credentials:
          slot === null
            ? null
            : [{ credentialType: DoorLock.CredentialType.Pin, credentialIndex: slot }],
      },
      lock.context,
    );
  });
  say({ bolt: to });
}

/**
 * A remote command's movement: the motor starts `motorMs` after the command was accepted (so a
 * test's hold or jam, sent on stdin just before the command on the network, is in place) and
 * the bolt moves then, or when held movements are released; maybe into a jam.
 */
function schedule(to: 'locked' | 'unlocked'): void {
  const run = (): void => {
    const jam = world.jamNext;
    world.jamNext = false;
    move(jam ? 'jammed' : to, DoorLock.OperationSource.Remote).catch((err: unknown) => {
      process.stderr.write(`move failed: ${String(err)}\n`);
    });
  };
  setTimeout(() => {
    if (world.hold) world.held.push(run);
    else run();
  }, world.motorMs);
}

/** A wrong code at the keypad, counted as the lock counts them. */
let wrongCodes = 0;
async function wrongCode(): Promise<void> {
  wrongCodes += 1;
  await endpoint.act('wrong code', (agent) => {
    const lock = agent.get(VirtualLockServer);
    lock.events.lockOperationError.emit(
      {
        lockOperationType: DoorLock.LockOperationType.Unlock,
        operationSource: DoorLock.OperationSource.Keypad,
        operationError: DoorLock.OperationError.InvalidCredential,
        userIndex: null,
        fabricIndex: null,
        sourceNode: null,
        credentials: null,
      },
      lock.context,
    );
    if (wrongCodes === lock.state.wrongCodeEntryLimit) {
      lock.events.doorLockAlarm.emit(
        { alarmCode: DoorLock.AlarmCode.WrongCodeEntryLimit },
        lock.context,
      );
    }
  });
}

/** Back to a fresh lock between tests: bolt, no users or codes, no held movement. */
async function reset(bolt: 'locked' | 'unlocked'): Promise<void> {
  world.hold = false;
  world.jamNext = false;
  world.held = [];
  wrongCodes = 0;
  await endpoint.act('reset', (agent) => {
    const lock = agent.get(VirtualLockServer);
    lock.state.users = [];
    lock.state.credentials = [];
    lock.state.lockState =
      bolt === 'locked' ? DoorLock.LockState.Locked : DoorLock.LockState.Unlocked;
  });
  say({ bolt });
}

/** The PIN codes the lock holds now, by credential index (for the test to check the codes). */
async function codes(): Promise<Record<number, string>> {
  return endpoint.act('codes', (agent) => {
    const lock = agent.get(VirtualLockServer);
    const auth = lock.auth;
    const out: Record<number, string> = {};
    for (const cred of auth.credentials) {
      if (cred.credentialType !== DoorLock.CredentialType.Pin) continue;
      out[cred.credentialIndex] = Buffer.from(Bytes.of(auth.decrypt(cred.credentialData))).toString(
        'utf8',
      );
    }
    return out;
  });
}

/** One control line. */
async function handle(op: Record<string, unknown>): Promise<unknown> {
  switch (op.op) {
    case 'reset':
      await reset(op.bolt === 'unlocked' ? 'unlocked' : 'locked');
      return null;
    case 'turnByHand':
      await move(op.bolt === 'unlocked' ? 'unlocked' : 'locked', DoorLock.OperationSource.Manual);
      return null;
    case 'keypadUnlock':
      await move('unlocked', DoorLock.OperationSource.Keypad, Number(op.slot));
      return null;
    case 'wrongCode':
      await wrongCode();
      return null;
    case 'jamNextMove':
      world.jamNext = true;
      return null;
    case 'holdMovements':
      world.hold = true;
      return null;
    case 'releaseMovements': {
      world.hold = false;
      for (const run of world.held.splice(0)) run();
      return null;
    }
    case 'radioOff':
      radio.on = false;
      return null;
    case 'radioOn':
      radio.on = true;
      // What a device does when it is back on its network: announce itself again (mDNS), so
      // that controllers looking for it find it now rather than at their next retry.
      node.env.get(DeviceAdvertiser).restartAdvertisement();
      return null;
    case 'codes':
      return codes();
    case 'state':
      return endpoint.act('state', (agent) => boltOf(agent.get(VirtualLockServer).state.lockState));
    default:
      throw new Error(`unknown op ${String(op.op)}`);
  }
}

await node.start();
const codesOut = node.state.commissioning.pairingCodes;
say({ ready: true, pairingCode: codesOut.manualPairingCode });

const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  let op: Record<string, unknown>;
  try {
    op = JSON.parse(line) as Record<string, unknown>;
  } catch {
    say({ error: `not JSON: ${line}` });
    return;
  }
  handle(op).then(
    (result) => say({ id: op.id, ok: true, result }),
    (err: unknown) => say({ id: op.id, error: err instanceof Error ? err.message : String(err) }),
  );
});
// The test closes stdin (or dies): the lock goes with it.
lines.on('close', () => {
  node.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
});
