/**
 * The clear-sky PV forecast (src/control/pv-forecast.ts) and what `flex` makes of it. The sun's figures
 * are checked against spherical geometry worked out here: the noon elevation 90° − |φ − δ| and the day
 * length 2·acos(−tan φ · tan δ)/15° h, with δ = ±23.44° at the solstices and 0° at the equinox; the
 * flex figures against the battery's room computed from the snapshot.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { pvForecastW, pvSurplusWh, sunCosZenith } from '../../src/control/pv-forecast.ts';
import { decide, initialMemory } from '../../src/control/decide.ts';
import { flexPayload } from '../../src/runtime/outgoing.ts';
import type { PvForecastConfig } from '../../src/config/types.ts';
import { settings, snapshot } from '../helpers/control.ts';

const RAD = Math.PI / 180;
const MUNICH = { latitudeDeg: 48.14, longitudeDeg: 11.58 };
const SYDNEY = { latitudeDeg: -33.87, longitudeDeg: 151.21 };
const ROOF: PvForecastConfig = { peakW: 6000, ...MUNICH };

/** Minute-by-minute over a UTC day: the highest cos(zenith) and the minutes the sun is up. */
function scanDay(dayUtc: string, place: { latitudeDeg: number; longitudeDeg: number }): { maxCz: number; upMin: number } {
  const t0 = Date.parse(`${dayUtc}T00:00:00Z`);
  let maxCz = -2;
  let upMin = 0;
  // a day centred on the place's solar noon (about 12:00 − longitude/15 h UTC), so the daylight is not cut
  const from = t0 + (12 - place.longitudeDeg / 15 - 12) * 3_600_000;
  for (let m = 0; m < 1440; m++) {
    const cz = sunCosZenith(from + m * 60_000, place.latitudeDeg, place.longitudeDeg);
    maxCz = Math.max(maxCz, cz);
    if (cz > 0) upMin++;
  }
  return { maxCz, upMin };
}

function dayLengthMin(latDeg: number, declDeg: number): number {
  return ((2 * Math.acos(-Math.tan(latDeg * RAD) * Math.tan(declDeg * RAD))) / RAD / 15) * 60;
}

describe('the sun', () => {
  test('noon elevation and day length at Munich on the solstices', () => {
    const june = scanDay('2026-06-21', MUNICH);
    assert.ok(Math.abs(Math.asin(june.maxCz) / RAD - (90 - (48.14 - 23.44))) < 0.3, `June noon elevation ${Math.asin(june.maxCz) / RAD}`);
    assert.ok(Math.abs(june.upMin - dayLengthMin(48.14, 23.44)) < 6, `June day ${june.upMin} min`);
    const dec = scanDay('2026-12-21', MUNICH);
    assert.ok(Math.abs(Math.asin(dec.maxCz) / RAD - (90 - (48.14 + 23.44))) < 0.3, `December noon elevation ${Math.asin(dec.maxCz) / RAD}`);
    assert.ok(Math.abs(dec.upMin - dayLengthMin(48.14, -23.44)) < 6, `December day ${dec.upMin} min`);
  });

  test('the southern hemisphere has its winter in June', () => {
    const june = scanDay('2026-06-21', SYDNEY);
    assert.ok(Math.abs(Math.asin(june.maxCz) / RAD - (90 - (33.87 + 23.44))) < 0.3, `Sydney June noon ${Math.asin(june.maxCz) / RAD}`);
    assert.ok(Math.abs(june.upMin - dayLengthMin(-33.87, 23.44)) < 6, `Sydney June day ${june.upMin} min`);
  });

  test('overhead at the equator and Greenwich at the equinox, near 12:07 UTC (the equation of time in March)', () => {
    let best = { t: 0, cz: -2 };
    for (let m = 11 * 60; m < 13 * 60; m++) {
      const t = Date.parse('2026-03-20T00:00:00Z') + m * 60_000;
      const cz = sunCosZenith(t, 0, 0);
      if (cz > best.cz) best = { t, cz };
    }
    assert.ok(best.cz > Math.cos(0.5 * RAD), `cos zenith ${best.cz}`);
    const minute = new Date(best.t).getUTCHours() * 60 + new Date(best.t).getUTCMinutes();
    assert.ok(minute >= 12 * 60 + 4 && minute <= 12 * 60 + 10, `solar noon at minute ${minute}`);
  });
});

describe('the clear-sky output', () => {
  test('none at night; at solar noon peak × ratio × cos(zenith)^1.5; a bad config gives none', () => {
    assert.equal(pvForecastW(Date.parse('2026-06-21T00:00:00Z'), ROOF), 0);
    const noon = Date.parse('2026-06-21T11:14:00Z');
    const cz = Math.sin((90 - (48.14 - 23.44)) * RAD);
    assert.ok(Math.abs(pvForecastW(noon, ROOF) - 6000 * 0.85 * cz ** 1.5) < 20, `${pvForecastW(noon, ROOF)}`);
    assert.ok(Math.abs(pvForecastW(noon, { ...ROOF, performanceRatio: 0.7 }) - 6000 * 0.7 * cz ** 1.5) < 20);
    for (const bad of [{ ...ROOF, peakW: NaN }, { ...ROOF, latitudeDeg: Infinity }, { ...ROOF, peakW: -1 }, { ...ROOF, performanceRatio: NaN }]) {
      assert.equal(pvForecastW(noon, bad), 0, JSON.stringify(bad));
    }
    assert.equal(pvForecastW(NaN, ROOF), 0);
  });

  test('the surplus sum matches a minute-by-minute sum, subtracts the house and caps at the charger', () => {
    const from = Date.parse('2026-06-21T00:00:00Z');
    const to = from + 86_400_000;
    const bySum = (houseW: number, capW: number) => {
      let wh = 0;
      for (let t = from; t < to; t += 60_000) wh += Math.min(capW, Math.max(0, pvForecastW(t + 30_000, ROOF) - houseW)) / 60;
      return wh;
    };
    for (const [houseW, capW] of [[0, 1e9], [500, 1e9], [500, 2000], [6000, 1e9]] as const) {
      const want = bySum(houseW, capW);
      const got = pvSurplusWh(from, to, ROOF, houseW, capW);
      assert.ok(Math.abs(got - want) <= Math.max(5, want * 0.01), `house ${houseW} cap ${capW}: ${got} vs ${want}`);
    }
    assert.equal(pvSurplusWh(from, to, ROOF, 6000, 1e9), 0, 'a house that takes the whole peak leaves nothing');
    assert.equal(pvSurplusWh(to, from, ROOF, 0, 1e9), 0, 'an empty span');
    assert.equal(pvSurplusWh(from, NaN, ROOF, 0, 1e9), 0);
    assert.equal(pvSurplusWh(from, to, ROOF, 0, NaN), 0);
  });
});

describe('flex with a forecast', () => {
  // June 21, 08:00 UTC in Munich (10:00 local); the settings' zone is UTC, so the departure is 07:30 UTC the next day
  const NOW = Date.parse('2026-06-21T08:00:00Z');
  const CAP = 60_000;
  const EFF = 0.95;
  const snap = () => snapshot(NOW, { vehicle: { socPct: 50, capacityWh: CAP }, houseLoadW: 500 });
  const plan = (over: Parameters<typeof settings>[0]) => decide(snap(), settings(over), initialMemory(NOW), NOW);
  const roomWh = Math.round((((100 - 50) / 100) * CAP) / EFF);

  test('pv mode: the sun\'s share comes out of chargeableWh; the two add up to the room; the discharge side is unchanged', () => {
    const none = plan({ charge: { mode: 'pv' } as never });
    const fc = plan({ charge: { mode: 'pv' } as never, site: { pvForecast: ROOF } });
    assert.equal(none.flex.pvForecastWh, 0);
    assert.equal(none.flex.chargeableWh, roomWh);
    assert.ok(fc.flex.pvForecastWh > 10_000, `a June day from 10:00 local on 6 kWp: ${fc.flex.pvForecastWh} Wh`);
    assert.equal(fc.flex.chargeableWh + fc.flex.pvForecastWh, roomWh);
    assert.equal(fc.flex.dischargeableWh, none.flex.dischargeableWh);
    assert.equal(fc.flex.maxDischargeW, none.flex.maxDischargeW);
    const payload = flexPayload(fc);
    assert.equal(payload.pvForecastWh, fc.flex.pvForecastWh);
    assert.equal(payload.chargeableWh, fc.flex.chargeableWh);
  });

  test('the forecast never exceeds the room in the battery', () => {
    const p = decide(snapshot(NOW, { vehicle: { socPct: 97, capacityWh: CAP } }), settings({ charge: { mode: 'pv' } as never, site: { pvForecast: ROOF } }), initialMemory(NOW), NOW);
    const room = Math.round((((100 - 97) / 100) * CAP) / EFF);
    assert.equal(p.flex.pvForecastWh, room);
    assert.equal(p.flex.chargeableWh, 0);
  });

  test('the mode decides: now and off count no sun; target only what the export limit would curtail', () => {
    assert.equal(plan({ charge: { mode: 'now' } as never, site: { pvForecast: ROOF } }).flex.pvForecastWh, 0);
    assert.equal(plan({ charge: { mode: 'off' } as never, site: { pvForecast: ROOF } }).flex.pvForecastWh, 0);
    assert.equal(plan({ charge: { mode: 'target' } as never, site: { pvForecast: ROOF } }).flex.pvForecastWh, 0, 'no export limit: nothing is curtailed');
    const pv = plan({ charge: { mode: 'pv' } as never, site: { pvForecast: ROOF } }).flex.pvForecastWh;
    const limited = plan({ charge: { mode: 'target' } as never, site: { pvForecast: ROOF, gridExportLimitW: 2000 } }).flex.pvForecastWh;
    assert.ok(limited > 0 && limited < pv, `target with a 2 kW export limit ${limited} Wh, pv ${pv} Wh`);
  });

  test('at night with the departure before sunrise, the sun adds nothing', () => {
    const night = Date.parse('2026-06-21T21:00:00Z');
    const p = decide(
      snapshot(night, { vehicle: { socPct: 50, capacityWh: CAP } }),
      settings({ charge: { mode: 'pv' } as never, site: { pvForecast: ROOF }, vehicle: { departureTime: '02:00' } }),
      initialMemory(night), night,
    );
    assert.ok(p.flex.untilMs !== undefined && p.flex.untilMs < Date.parse('2026-06-22T03:00:00Z'), `until ${p.flex.untilMs}`);
    assert.equal(p.flex.pvForecastWh, 0);
    assert.equal(p.flex.chargeableWh, roomWh);
  });
});
