/**
 * A clear-sky PV forecast from the installation's peak power and location, for `flex` (docs/solar.md,
 * "What the aggregator is told"). Pure: the calendar time is handed in; no weather service, no clock.
 *
 * The sun's position follows NOAA's "General Solar Position Calculations" (NOAA Global Monitoring
 * Laboratory, solareqns.PDF): the fractional year γ, the equation of time and the declination as Fourier
 * series in γ, the true solar time from UTC and longitude, the hour angle, and
 * cos(zenith) = sin φ · sin δ + cos φ · cos δ · cos(hour angle). Good to about a minute of time, far
 * finer than a forecast of this kind needs.
 *
 * The AC output is `peakW × performanceRatio × cos(zenith)^1.5` while the sun is up: the power on a
 * horizontal panel scaled by the sun's height, the exponent the longer path through the air at a low sun
 * (the same shape the simulator's PV day uses, hal/sim/site.ts). It is a cloudless day, an upper bound:
 * clouds only lower it, and panels tilted toward the sun give more in winter than it says.
 */
import type { PvForecastConfig } from '../config/types.ts';

const RAD = Math.PI / 180;
const DAY_MS = 86_400_000;

/** cos(zenith) of the sun at this calendar time and place (negative: below the horizon). */
export function sunCosZenith(wallMs: number, latitudeDeg: number, longitudeDeg: number): number {
  const d = new Date(wallMs);
  const y = d.getUTCFullYear();
  const dayOfYear = Math.floor((wallMs - Date.UTC(y, 0, 1)) / DAY_MS) + 1;
  const daysInYear = (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0 ? 366 : 365;
  const utcMin = d.getUTCHours() * 60 + d.getUTCMinutes() + d.getUTCSeconds() / 60;
  const g = ((2 * Math.PI) / daysInYear) * (dayOfYear - 1 + (utcMin / 60 - 12) / 24);
  const eqTimeMin = 229.18 * (0.000075 + 0.001868 * Math.cos(g) - 0.032077 * Math.sin(g) - 0.014615 * Math.cos(2 * g) - 0.040849 * Math.sin(2 * g));
  const decl = 0.006918 - 0.399912 * Math.cos(g) + 0.070257 * Math.sin(g) - 0.006758 * Math.cos(2 * g) + 0.000907 * Math.sin(2 * g)
    - 0.002697 * Math.cos(3 * g) + 0.00148 * Math.sin(3 * g);
  const trueSolarMin = utcMin + eqTimeMin + 4 * longitudeDeg;
  const hourAngle = (trueSolarMin / 4 - 180) * RAD;
  const lat = latitudeDeg * RAD;
  return Math.sin(lat) * Math.sin(decl) + Math.cos(lat) * Math.cos(decl) * Math.cos(hourAngle);
}

/** The clear-sky AC output at this calendar time, W (0 at night; 0 for a config that is not finite). */
export function pvForecastW(wallMs: number, fc: PvForecastConfig): number {
  const ratio = fc.performanceRatio ?? 0.85;
  if (![wallMs, fc.peakW, fc.latitudeDeg, fc.longitudeDeg, ratio].every(Number.isFinite) || fc.peakW <= 0 || ratio <= 0) return 0;
  const cz = sunCosZenith(wallMs, fc.latitudeDeg, fc.longitudeDeg);
  return cz > 0 ? fc.peakW * ratio * cz ** 1.5 : 0;
}

/** Step of the energy sums, ms: a quarter hour, the resolution a day's PV curve needs for Wh figures. */
export const FORECAST_STEP_MS = 15 * 60_000;

/**
 * Energy the forecast PV leaves for the car between two calendar times, Wh: in each quarter hour the
 * forecast minus the house load (never below 0), bounded by `carMaxW` (what the charger can take), summed
 * with the midpoint rule. The caller bounds the result by the room in the battery.
 */
export function pvSurplusWh(fromWallMs: number, toWallMs: number, fc: PvForecastConfig, houseLoadW: number, carMaxW: number): number {
  if (!(toWallMs > fromWallMs) || !Number.isFinite(toWallMs - fromWallMs) || !(carMaxW > 0)) return 0;
  const load = Number.isFinite(houseLoadW) ? Math.max(0, houseLoadW) : 0;
  let wh = 0;
  for (let t = fromWallMs; t < toWallMs; t += FORECAST_STEP_MS) {
    const stepMs = Math.min(FORECAST_STEP_MS, toWallMs - t);
    const surplusW = Math.min(carMaxW, Math.max(0, pvForecastW(t + stepMs / 2, fc) - load));
    wh += (surplusW * stepMs) / 3_600_000;
  }
  return wh;
}
