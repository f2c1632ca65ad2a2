/**
 * The checks a lock driver makes before it sends a keypad code to a lock (the Z-Wave and Matter
 * drivers share them): a slot the lock has, a code of the form the device protocol allows. A
 * refusal changes nothing on the lock.
 */
import { PIN_CODE_PATTERN } from '../../protocol/device-messages.ts';
import { DriverError } from './driver.ts';

const PIN_CODE_RE = new RegExp(PIN_CODE_PATTERN);

/** Refuses (`device.refused`) a slot outside 1…`capacity`. */
export function checkPinSlot(slot: number, capacity: number): void {
  if (!Number.isInteger(slot) || slot < 1 || slot > capacity) {
    throw new DriverError('device.refused', `the lock has slots 1 to ${capacity}, not ${slot}`);
  }
}

/** Refuses (`device.refused`) a code that is not 4 to 10 digits. */
export function checkPinCode(code: string): void {
  if (!PIN_CODE_RE.test(code)) throw new DriverError('device.refused', 'a code is 4 to 10 digits');
}
