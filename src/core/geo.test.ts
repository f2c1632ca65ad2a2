import { describe, expect, it } from 'vitest';
import { distanceM, insideGeofence } from './geo.ts';
import type { Geofence } from './model.ts';

/** Metres per degree of latitude on the mean Earth sphere (2πR / 360). */
const M_PER_DEG = 111_195.08;
const FENCE_FOR_NEGATIVE: Geofence = { lat: 0, lon: 0, radiusM: 150 };

describe('distanceM', () => {
  it('gives Paris–London as about 343.5 km', () => {
    const d = distanceM(48.8566, 2.3522, 51.5074, -0.1278);
    expect(Math.abs(d - 343_500)).toBeLessThan(1_000);
  });

  it('is zero for the same point and symmetric', () => {
    expect(distanceM(52.52, 13.405, 52.52, 13.405)).toBe(0);
    const ab = distanceM(40.7128, -74.006, 34.0522, -118.2437);
    const ba = distanceM(34.0522, -118.2437, 40.7128, -74.006);
    expect(ab).toBeCloseTo(ba, 6);
    // New York – Los Angeles, great circle on the mean sphere: about 3936 km.
    expect(Math.abs(ab - 3_936_000)).toBeLessThan(5_000);
  });

  it('gives one degree of latitude or of longitude at the equator as about 111.195 km', () => {
    expect(distanceM(0, 0, 1, 0)).toBeCloseTo(M_PER_DEG, 0);
    expect(distanceM(0, 0, 0, 1)).toBeCloseTo(M_PER_DEG, 0);
  });

  it('shrinks a degree of longitude with latitude (cos 60° = 0.5)', () => {
    expect(distanceM(60, 0, 60, 1) / distanceM(0, 0, 0, 1)).toBeCloseTo(0.5, 3);
  });

  it('goes the short way across the antimeridian', () => {
    expect(distanceM(0, 179.5, 0, -179.5)).toBeCloseTo(M_PER_DEG, 0);
  });

  it('gives half the circumference for antipodes', () => {
    expect(distanceM(90, 0, -90, 0)).toBeCloseTo(Math.PI * 6_371_008.8, 0);
    expect(distanceM(0, 0, 0, 180)).toBeCloseTo(Math.PI * 6_371_008.8, 0);
  });

  it('measures short distances at door scale to within a few centimetres', () => {
    // 100 m due north.
    expect(distanceM(52.52, 13.405, 52.52 + 100 / M_PER_DEG, 13.405)).toBeCloseTo(100, 1);
  });
});

describe('insideGeofence', () => {
  const fence: Geofence = { lat: 52.52, lon: 13.405, radiusM: 150 };
  /** A point `m` metres due north of the fence centre. */
  const north = (m: number, accuracyM: number) => ({
    lat: fence.lat + m / M_PER_DEG,
    lon: fence.lon,
    accuracyM,
  });

  it('accepts a precise fix at the centre', () => {
    expect(insideGeofence(fence, { lat: fence.lat, lon: fence.lon, accuracyM: 5 })).toBe(true);
  });

  it('accepts a fix whose accuracy circle lies wholly inside', () => {
    expect(insideGeofence(fence, north(100, 40))).toBe(true); // reaches 140 m of 150
  });

  it('refuses a fix whose centre is inside but whose accuracy circle reaches outside', () => {
    expect(insideGeofence(fence, north(100, 60))).toBe(false); // reaches 160 m of 150
  });

  it('refuses a precise fix outside the fence', () => {
    expect(insideGeofence(fence, north(200, 0))).toBe(false);
    expect(insideGeofence(fence, north(151, 0))).toBe(false);
  });

  it('accepts an accuracy circle that just touches the fence from inside', () => {
    expect(insideGeofence(fence, { lat: fence.lat, lon: fence.lon, accuracyM: 150 })).toBe(true);
    expect(insideGeofence(fence, { lat: fence.lat, lon: fence.lon, accuracyM: 150.01 })).toBe(
      false,
    );
  });

  it('refuses a fix with an accuracy circle wider than the fence, even at the centre', () => {
    expect(insideGeofence(fence, { lat: fence.lat, lon: fence.lon, accuracyM: 500 })).toBe(false);
  });

  it('refuses a fix with no numbers in it', () => {
    expect(insideGeofence(fence, { lat: Number.NaN, lon: fence.lon, accuracyM: 5 })).toBe(false);
    expect(insideGeofence(fence, { lat: fence.lat, lon: fence.lon, accuracyM: Number.NaN })).toBe(
      false,
    );
  });
  it('refuses a negative accuracy, which would shrink the distance', () => {
    expect(insideGeofence(FENCE_FOR_NEGATIVE, { lat: 0.009, lon: 0, accuracyM: -1_000 })).toBe(
      false,
    );
  });
});
