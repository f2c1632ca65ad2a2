import type { Geofence } from './model.ts';

const EARTH_RADIUS_M = 6_371_008.8;
const toRad = (deg: number): number => (deg * Math.PI) / 180;

/** Great-circle distance in metres between two WGS 84 points (haversine). */
export function distanceM(aLat: number, aLon: number, bLat: number, bLon: number): number {
  const dLat = toRad(bLat - aLat);
  const dLon = toRad(bLon - aLon);
  const h =
    Math.sin(dLat / 2) ** 2 +
    Math.cos(toRad(aLat)) * Math.cos(toRad(bLat)) * Math.sin(dLon / 2) ** 2;
  return 2 * EARTH_RADIUS_M * Math.asin(Math.min(1, Math.sqrt(h)));
}

/** A position reported by a phone: degrees and the accuracy radius in metres. */
export interface Position {
  readonly lat: number;
  readonly lon: number;
  readonly accuracyM: number;
}

/**
 * Whether a reported position is inside the geofence. The accuracy circle must lie inside:
 * a fix whose uncertainty reaches outside the fence does not prove presence.
 */
export function insideGeofence(fence: Geofence, pos: Position): boolean {
  const valid =
    Number.isFinite(pos.lat) &&
    Number.isFinite(pos.lon) &&
    Number.isFinite(pos.accuracyM) &&
    pos.accuracyM >= 0;
  if (!valid) return false;
  return distanceM(fence.lat, fence.lon, pos.lat, pos.lon) + pos.accuracyM <= fence.radiusM;
}
