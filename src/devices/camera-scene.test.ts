import { describe, it, expect } from 'vitest';
import jpeg from 'jpeg-js';
import { renderScene, type SceneInput } from './camera-scene.ts';

const T0 = Date.UTC(2024, 4, 17, 14, 3, 27, 456);
const BASE: SceneInput = { doorOpen: false, capturedAtMs: T0, label: 'cam-front' };

/** Mean luma (0-255) of a rectangle given as fractions of the image size. */
function meanLuma(
  jpg: Buffer,
  box: { left: number; top: number; right: number; bottom: number },
): number {
  const img = jpeg.decode(jpg, { useTArray: true });
  const x0 = Math.floor(box.left * img.width);
  const x1 = Math.floor(box.right * img.width);
  const y0 = Math.floor(box.top * img.height);
  const y1 = Math.floor(box.bottom * img.height);
  let sum = 0;
  for (let y = y0; y < y1; y++) {
    for (let x = x0; x < x1; x++) {
      const i = (y * img.width + x) * 4;
      sum += 0.299 * img.data[i]! + 0.587 * img.data[i + 1]! + 0.114 * img.data[i + 2]!;
    }
  }
  return sum / ((x1 - x0) * (y1 - y0));
}

/** The middle of the doorway: the scene centres the door horizontally, in the upper two thirds. */
const DOOR_BOX = { left: 0.4, top: 0.25, right: 0.6, bottom: 0.65 };

describe('renderScene', () => {
  it('produces a complete JPEG file (SOI ... EOI)', () => {
    const jpg = renderScene(BASE);
    expect([jpg[0], jpg[1]]).toEqual([0xff, 0xd8]);
    expect([jpg[jpg.length - 2], jpg[jpg.length - 1]]).toEqual([0xff, 0xd9]);
  });

  it('decodes to the default and to a requested size', () => {
    const def = jpeg.decode(renderScene(BASE), { useTArray: true });
    expect([def.width, def.height]).toEqual([320, 240]);
    const custom = jpeg.decode(renderScene(BASE, { width: 200, height: 150 }), {
      useTArray: true,
    });
    expect([custom.width, custom.height]).toEqual([200, 150]);
  });

  it('is deterministic', () => {
    const input: SceneInput = { ...BASE, doorOpen: true, person: true };
    expect(renderScene(input).equals(renderScene({ ...input }))).toBe(true);
  });

  it('changes when the time moves on by 100 ms (the tenths digit)', () => {
    const later = renderScene({ ...BASE, capturedAtMs: T0 + 100 });
    expect(later.equals(renderScene(BASE))).toBe(false);
  });

  it('draws an open door much brighter in the doorway than a closed one', () => {
    const closed = meanLuma(renderScene({ ...BASE, doorOpen: false }), DOOR_BOX);
    const open = meanLuma(renderScene({ ...BASE, doorOpen: true }), DOOR_BOX);
    expect(open - closed).toBeGreaterThan(40);
  });

  it('darkens the doorway when a person stands in it', () => {
    const open = { ...BASE, doorOpen: true };
    const empty = meanLuma(renderScene(open), DOOR_BOX);
    const occupied = meanLuma(renderScene({ ...open, person: true }), DOOR_BOX);
    expect(empty - occupied).toBeGreaterThan(30);
  });

  it('draws the label', () => {
    expect(renderScene({ ...BASE, label: 'cam-back' }).equals(renderScene(BASE))).toBe(false);
  });

  it('stays under 40 KB at the defaults', () => {
    for (const doorOpen of [false, true]) {
      expect(renderScene({ ...BASE, doorOpen, person: true }).length).toBeLessThan(40 * 1024);
    }
  });

  it('renders tiny images and odd labels without throwing', () => {
    const input = { ...BASE, label: 'Ünïcødé & a very long camera label indeed' };
    for (const [width, height] of [
      [1, 1],
      [17, 9],
      [64, 48],
    ] as const) {
      const img = jpeg.decode(renderScene(input, { width, height }), { useTArray: true });
      expect([img.width, img.height]).toEqual([width, height]);
    }
  });

  it('rejects invalid times and options', () => {
    expect(() => renderScene({ ...BASE, capturedAtMs: Number.NaN })).toThrow(RangeError);
    expect(() => renderScene({ ...BASE, capturedAtMs: 9e15 })).toThrow(RangeError);
    expect(() => renderScene(BASE, { width: 0 })).toThrow(RangeError);
    expect(() => renderScene(BASE, { height: 10.5 })).toThrow(RangeError);
    expect(() => renderScene(BASE, { quality: 101 })).toThrow(RangeError);
  });
});
