/**
 * Surplus charging tables (threshold, delay, guard, hysteresis) on decide() sequences against a small
 * site (world.ts), one decision a second on the monotonic clock; and what each charge.mode does.
 * Expected times are worked out here from the settings: start = first second the surplus covers the
 * threshold + enableDelayS; stop = first second it falls short + disableDelayS, or the guard's end.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CHARGE, chargeSettings, runSite, switches } from './world.ts';
import { decide, initialMemory } from '../../src/control/decide.ts';
import { snapshot, T0 } from '../helpers/control.ts';

const step = (atS: number, before: number, after: number) => (t: number) => (t < atS ? before : after);

describe('pv mode: threshold and delays', () => {
  test('starts enableDelayS after the surplus first covers the minimum, and follows the surplus', () => {
    // house 500 W, PV 4000 W from t = 20: surplus 3500 W, minus the 100 W residual = 3400 W for the car
    const ticks = runSite(chargeSettings({}), { durationS: 200, pvW: step(20, 0, 4000) });
    const sw = switches(ticks);
    assert.deepEqual(sw.on, [20 + CHARGE.enableDelayS]);
    assert.deepEqual(sw.off, []);
    // once the car draws, the grid sits at the residual: car = PV − house − residual
    const last = ticks.at(-1)!;
    assert.equal(last.plan.setpointW, 4000 - 500 - 100);
    assert.ok(last.plan.reasons.includes('surplus'), last.plan.reasons.join());
  });

  test('a surplus that breaks off before the delay restarts the delay', () => {
    // 4000 W PV from 0 to 40, none 40..50, again from 50: the delay counts from 50
    const pv = (t: number) => (t >= 40 && t < 50 ? 0 : 4000);
    const sw = switches(runSite(chargeSettings({}), { durationS: 200, pvW: pv }));
    assert.deepEqual(sw.on, [50 + CHARGE.enableDelayS]);
  });

  test('stops disableDelayS after the surplus no longer covers the minimum, holding the minimum meanwhile', () => {
    // on at 60; at 1000 the PV drops to 1500 W: 1500 − 500 − 100 = 900 W < 1380 W minimum → stop at 1000 + 180
    const ticks = runSite(chargeSettings({}), { durationS: 1400, pvW: step(1000, 4000, 1500) });
    const sw = switches(ticks);
    assert.deepEqual(sw.on, [60]);
    assert.deepEqual(sw.off, [1000 + CHARGE.disableDelayS]);
    for (const k of ticks.filter((x) => x.t > 1001 && x.t < 1180)) assert.equal(k.plan.setpointW, CHARGE.minPowerW, `t=${k.t}`);
  });

  test('the guard holds a stop until guardS after the start', () => {
    // on at 60; the sun goes at 70: the disable delay alone would stop at 250, the guard holds until 60 + 300
    const sw = switches(runSite(chargeSettings({}), { durationS: 800, pvW: step(70, 4000, 0) }));
    assert.deepEqual(sw.on, [60]);
    assert.deepEqual(sw.off, [60 + CHARGE.guardS]);
  });

  test('the guard holds a restart until guardS after the stop', () => {
    // on at 60, sun gone 400..700 (stop at 580 = 400 + 180), back at 700: the enable delay says 760, the guard 880
    const pv = (t: number) => (t >= 400 && t < 700 ? 0 : 4000);
    const sw = switches(runSite(chargeSettings({}), { durationS: 1200, pvW: pv }));
    assert.deepEqual(sw.on, [60, 580 + CHARGE.guardS]);
    assert.deepEqual(sw.off, [400 + CHARGE.disableDelayS]);
  });
});

describe('pv mode: hysteresis between the start and the stop threshold', () => {
  // start at a surplus of 2000 W for the car; stop when running at the minimum would import 500 W or more
  const c = chargeSettings({ startSurplusW: 2000, stopImportW: 500 });
  test('a surplus between the minimum and the start threshold does not start', () => {
    // 2200 − 500 − 100 = 1600 W: above the 1380 W minimum, below the 2000 W start
    assert.deepEqual(switches(runSite(c, { durationS: 600, pvW: () => 2200 })).on, []);
  });
  test('once on, a shortfall below the stop threshold keeps the minimum without end', () => {
    // 2000 W for the car (2600 PV) starts at 60; then 1500 PV: 900 W for the car, 480 W short at the minimum (< 500)
    const ticks = runSite(c, { durationS: 1500, pvW: step(400, 2600, 1500) });
    assert.deepEqual(switches(ticks), { on: [60], off: [] });
    assert.equal(ticks.at(-1)!.plan.setpointW, CHARGE.minPowerW);
  });
  test('a shortfall at the stop threshold stops after the delay', () => {
    // 1400 PV: 800 W for the car, 580 W short at the minimum (>= 500) from 400 → off at 580
    assert.deepEqual(switches(runSite(c, { durationS: 1500, pvW: step(400, 2600, 1400) })), { on: [60], off: [400 + CHARGE.disableDelayS] });
  });
});

describe('charge modes', () => {
  const sunny = () => 4000;
  test('off: no charging of its own, sun or not', () => {
    const ticks = runSite(chargeSettings({ mode: 'off' }), { durationS: 400, pvW: sunny, socPct: 40 });
    assert.ok(ticks.every((k) => k.plan.setpointW === 0));
  });
  test('now: full power at once, sun or not, until the target', () => {
    const ticks = runSite(chargeSettings({ mode: 'now' }, { vehicle: { departureTime: '07:30' } }), { durationS: 10, pvW: () => 0, socPct: 40 });
    assert.equal(ticks[0].plan.setpointW, 11000);
  });
  test('target with a far departure: waits (just in time), sun or not, without an export limit', () => {
    // T0 is 17:00 UTC; a 07:30 departure 14.5 h away needs 40 → 80 % of 60 kWh: ~2.3 h at 11 kW
    const ticks = runSite(chargeSettings({ mode: 'target' }, { vehicle: { departureTime: '07:30' } }), { durationS: 300, pvW: sunny, socPct: 40 });
    assert.ok(ticks.every((k) => k.plan.setpointW === 0));
  });
  test('minpv: the minimum from the grid below the target without any sun', () => {
    const ticks = runSite(chargeSettings({ mode: 'minpv' }), { durationS: 30, pvW: () => 0, socPct: 40 });
    assert.equal(ticks[0].plan.setpointW, CHARGE.minPowerW);
    assert.ok(ticks[0].plan.reasons.includes('minpv'));
  });
  test('minpv above the target behaves as pv (no sun: nothing)', () => {
    const ticks = runSite(chargeSettings({ mode: 'minpv' }), { durationS: 300, pvW: () => 0, socPct: 85 });
    assert.ok(ticks.every((k) => k.plan.setpointW === 0));
  });
  test('pv stops at surplusMaxSocPct at once', () => {
    const ticks = runSite(chargeSettings({ surplusMaxSocPct: 50.05 }), { durationS: 200, pvW: sunny, socPct: 50 });
    const sw = switches(ticks);
    assert.deepEqual(sw.on, [60]);
    // 3400 W × 0.95 into 60 kWh: 0.05 % takes 3400·0.95/3600/60000·100 ≈ 0.0015 %/s → ~33 s
    assert.equal(sw.off.length, 1);
    assert.ok(ticks.find((k) => k.t === sw.off[0])!.socPct >= 50.05);
  });
  test('pv: the departure target still charges from the grid just in time', () => {
    // no sun at all; departure 07:30 from 17:00 UTC; 10 % of 60 kWh at 11 kW is ~0.6 h: the charge starts before 07:30 − margin
    const c = chargeSettings({ mode: 'pv' }, { vehicle: { departureTime: '07:30', targetSocPct: 80 } });
    const ticks = runSite(c, { durationS: 14.5 * 3600, tickS: 30, pvW: () => 0, socPct: 70 });
    const last = ticks.at(-1)!;
    assert.ok(last.socPct >= 79.5, `SoC ${last.socPct} at the departure`);
    assert.ok(ticks.some((k) => k.plan.reasons.includes('departure')));
  });
  test('target mode with an export limit: PV exporting at the limit is taken into the car', () => {
    // a 3 kW export limit, PV 6 kW, house 500 W: the site would export 5.5 kW; the limiter holds 3 kW → charge
    const c = chargeSettings({ mode: 'target' }, { site: { gridExportLimitW: 3000 }, vehicle: { departureTime: '07:30' } });
    const pvW = (t: number) => 6000;
    const ticks = runSite(c, { durationS: 400, pvW, socPct: 40 });
    const sw = switches(ticks);
    assert.deepEqual(sw.on, [CHARGE.enableDelayS]);
    // the export settles just under the limit (100 W headroom): car = 6000 − 500 − (3000 − 100)
    assert.equal(ticks.at(-1)!.plan.setpointW, 6000 - 500 - 2900);
  });
});

describe('changing the mode', () => {
  /** decide() each second with settings `c`, carrying the memory; returns the setpoints. */
  function seconds(c: ReturnType<typeof chargeSettings>, mem: import('../../src/control/types.ts').Memory, from: number, to: number, soc: number) {
    const out: number[] = [];
    for (let t = from; t <= to; t++) {
      const now = T0 + t * 1000;
      const p = decide(snapshot(now, { vehicle: { socPct: soc }, inverter: { powerW: out.at(-1) ?? 0 }, houseLoadW: 500, houseLoadAtMs: now, gridPowerW: 500 + (out.at(-1) ?? 0), gridPowerAtMs: now, pvPowerW: 0, pvPowerAtMs: now }), c, mem, now);
      mem = p.memory;
      out.push(p.setpointW);
    }
    return { out, mem };
  }
  test('now → pv without sun: the grid charge "now" started stops at once', () => {
    const now = seconds(chargeSettings({ mode: 'now' }, { vehicle: { departureTime: '07:30' } }), initialMemory(T0), 0, 5, 40);
    assert.ok(now.out.every((w) => w === 11000));
    const pv = seconds(chargeSettings({ mode: 'pv' }, { vehicle: { departureTime: '07:30' } }), now.mem, 6, 10, 40);
    assert.deepEqual(pv.out, [0, 0, 0, 0, 0]);
  });
  test('now → off: stops at once', () => {
    const now = seconds(chargeSettings({ mode: 'now' }), initialMemory(T0), 0, 5, 40);
    assert.deepEqual(seconds(chargeSettings({ mode: 'off' }), now.mem, 6, 8, 40).out, [0, 0, 0]);
  });
  test('pv → now: full power at once', () => {
    const pv = seconds(chargeSettings({ mode: 'pv' }), initialMemory(T0), 0, 5, 40);
    assert.deepEqual(pv.out, [0, 0, 0, 0, 0, 0]);
    assert.deepEqual(seconds(chargeSettings({ mode: 'now' }), pv.mem, 6, 8, 40).out, [11000, 11000, 11000]);
  });
});

describe('the homeowner\'s quick actions stand in every mode', () => {
  const until = new Date(T0 + 3 * 3600_000).toISOString();
  for (const m of ['off', 'pv', 'minpv'] as const) {
    test(`${m}: a backup reserve quick action charges from the grid below its level (chargeStrategy immediate)`, () => {
      const c = chargeSettings({ mode: m }, { vehicle: { chargeStrategy: 'immediate' }, overrides: { backupReserve: { socPct: 60, until } } } as never);
      const ticks = runSite(c, { durationS: 3, pvW: () => 0, socPct: 40 });
      assert.ok(ticks.every((k) => k.plan.setpointW === 11000), ticks.map((k) => `${k.plan.setpointW} ${k.plan.reasons.join(',')}`).join('; '));
    });
    test(`${m}: a boost charges at full power`, () => {
      const c = chargeSettings({ mode: m }, { overrides: { boost: { targetSocPct: 90, until } } } as never);
      const ticks = runSite(c, { durationS: 3, pvW: () => 0, socPct: 40 });
      assert.ok(ticks.every((k) => k.plan.setpointW === 11000 && k.plan.reasons.includes('boost')));
    });
  }
});
