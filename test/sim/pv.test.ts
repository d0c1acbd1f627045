/**
 * The simulated roof: a clear-sky day in the scenario's zone (peak × ratio × sin(π·x)^1.5 between sunrise
 * and sunset, local time), nothing at night or with the grid down, the export limiter, and the meter's
 * figures (grid = house + car − PV). Expected values are worked out here from the formula's definition.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SimSite, type SimPvOptions } from '../../hal/sim/site.ts';
import { VirtualClock } from '../../hal/sim/virtual-clock.ts';

/** 2026-06-15 00:00 in Berlin (CEST, UTC+2). */
const MIDNIGHT_BERLIN = Date.UTC(2026, 5, 14, 22);

function site(pv: SimPvOptions, atLocalMin: number, houseLoadW = 500) {
  const clock = new VirtualClock(MIDNIGHT_BERLIN + atLocalMin * 60_000);
  const s = new SimSite({
    clock, vehicle: { capacityWh: 60000, socPct: 50, maxChargeW: 11000, maxDischargeW: 11000 },
    inverter: { ratedW: 11000, efficiency: 0.95 }, houseLoadW, pv,
  });
  return { clock, s };
}

const ROOF: SimPvOptions = { peakW: 6000, sunrise: '05:00', sunset: '21:00', timeZone: 'Europe/Berlin' };

describe('simulated PV', () => {
  it('peaks at the middle of the daylight at peak × 0.85, in local time', () => {
    // 05:00–21:00 local: the middle is 13:00 Berlin = 11:00 UTC
    assert.ok(Math.abs(site(ROOF, 13 * 60).s.pvPowerW() - 6000 * 0.85) < 1e-6);
  });
  it('follows sin(π·x)^1.5 through the day', () => {
    for (const [hh, mm] of [[6, 0], [9, 30], [17, 45], [20, 30]]) {
      const x = (hh * 60 + mm - 300) / 960;
      const want = 6000 * 0.85 * Math.sin(Math.PI * x) ** 1.5;
      assert.ok(Math.abs(site(ROOF, hh * 60 + mm).s.pvPowerW() - want) < 1e-6, `${hh}:${mm}`);
    }
  });
  it('gives nothing at night, at sunrise and at sunset', () => {
    for (const min of [0, 4 * 60 + 59, 5 * 60, 21 * 60, 23 * 60]) assert.equal(site(ROOF, min).s.pvPowerW(), 0, `minute ${min}`);
  });
  it('reads the zone: the same UTC instant is 13:00 in Berlin and 07:00 in New York', () => {
    const ny = site({ ...ROOF, timeZone: 'America/New_York' }, 13 * 60); // 11:00 UTC = 07:00 New York
    const x = (7 * 60 - 300) / 960;
    assert.ok(Math.abs(ny.s.pvPowerW() - 6000 * 0.85 * Math.sin(Math.PI * x) ** 1.5) < 1e-6);
  });
  it('stops with the grid (anti-islanding)', () => {
    const { s } = site(ROOF, 13 * 60);
    s.setGrid(false);
    assert.equal(s.pvPowerW(), 0);
  });
  it('the meter reads grid = house + car − PV', async () => {
    const { s } = site(ROOF, 13 * 60, 700);
    const meter = s.ports().siteMeter!;
    await meter.refresh();
    const st = meter.state();
    assert.ok(Math.abs(st.pvPowerW! - 5100) < 1e-6);
    assert.ok(Math.abs(st.gridPowerW! - (700 + 0 - 5100)) < 1e-6);
  });
  it('the export limiter holds the export at its limit and counts what it throws away', () => {
    const { s } = site({ ...ROOF, exportLimitW: 3000 }, 13 * 60, 500);
    // 5100 W of sun, 500 W of house, the car idle: the site may export 3000, so the panels give 3500
    assert.ok(Math.abs(s.pvPowerW() - 3500) < 1e-6);
    assert.ok(Math.abs(s.gridPowerW() + 3000) < 1e-6);
    s.step(3600);
    assert.ok(Math.abs(s.energy.pvCurtailedWh - 1600) < 1e-6, `${s.energy.pvCurtailedWh}`);
    assert.ok(Math.abs(s.energy.pvWh - 3500) < 1e-6);
    assert.ok(Math.abs(s.energy.gridExportWh - 3000) < 1e-6);
  });
});

describe('simulated PV at a location: the sun of the calendar date', () => {
  const RAD = Math.PI / 180;
  const at = (utc: string) => {
    const clock = new VirtualClock(Date.parse(utc));
    return new SimSite({
      clock, vehicle: { capacityWh: 60000, socPct: 50, maxChargeW: 11000, maxDischargeW: 11000 },
      inverter: { ratedW: 11000, efficiency: 0.95 }, houseLoadW: 500, pv: { peakW: 6000, latitudeDeg: 48.14, longitudeDeg: 11.58 },
    }).pvPowerW();
  };
  it('a December noon gives what the low sun allows, a June noon far more; nothing at night', () => {
    // solar noon in Munich is about 11:14 UTC in June and 10:59 UTC in December; noon elevation 90° − |φ − δ|
    const june = at('2026-06-21T11:14:00Z');
    const dec = at('2026-12-21T10:59:00Z');
    const wantJune = 6000 * 0.85 * Math.sin((90 - (48.14 - 23.44)) * RAD) ** 1.5;
    const wantDec = 6000 * 0.85 * Math.sin((90 - (48.14 + 23.44)) * RAD) ** 1.5;
    assert.ok(Math.abs(june - wantJune) < 0.02 * wantJune, `June ${june} W, geometry ${wantJune} W`);
    assert.ok(Math.abs(dec - wantDec) < 0.03 * wantDec, `December ${dec} W, geometry ${wantDec} W`);
    assert.equal(at('2026-12-21T17:00:00Z'), 0, 'a December evening is dark');
    assert.ok(at('2026-06-21T17:00:00Z') > 0, 'a June evening is not');
  });
});
