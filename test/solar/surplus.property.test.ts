/**
 * Properties of pv mode over random PV and house series (fast-check), against the small site of world.ts:
 * 1. the car never takes more than the surplus allows beyond the residual, except the minimum power while
 *    the stop delay or the guard runs out: such a stretch is never longer than max(disableDelayS, guardS);
 * 2. the departure target is still reached when the grid alone could reach it;
 * 3. in any mode, with any readings, the car charges within every limit, and "off" only for the backup reserve.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CHARGE, chargeSettings, runSite } from './world.ts';
import { decide, initialMemory } from '../../src/control/decide.ts';
import { snapshot, T0 } from '../helpers/control.ts';

/** Piecewise-constant series: [durationS, W] segments. */
const series = (segs: [number, number][]) => (t: number) => {
  let at = 0;
  for (const [d, w] of segs) {
    if (t < at + d) return w;
    at += d;
  }
  return segs.at(-1)![1];
};
const segments = (maxW: number) => fc.array(fc.tuple(fc.integer({ min: 5, max: 600 }), fc.integer({ min: 0, max: maxW })), { minLength: 1, maxLength: 12 });

test('pv mode: the car takes at most surplus − residual, or the minimum for no longer than the stop delay or the guard', () => {
  fc.assert(
    fc.property(segments(9000), segments(4000), fc.integer({ min: 0, max: 300 }), (pv, house, residual) => {
      const c = chargeSettings({ residualPowerW: residual });
      const pvW = series(pv);
      const houseW = series(house);
      const ticks = runSite(c, { durationS: 1800, pvW, houseW, socPct: 50 });
      let deficitS = 0;
      for (const k of ticks) {
        // what the sun leaves for the car this tick, from the test's own PV and house figures
        const allowedW = k.pvW - k.houseW - residual;
        const set = k.plan.setpointW;
        if (set > 0 && set > allowedW + 1) {
          assert.equal(set, CHARGE.minPowerW, `t=${k.t}: ${set} W with only ${allowedW} W of surplus`);
          deficitS++;
          assert.ok(deficitS <= Math.max(CHARGE.disableDelayS, CHARGE.guardS) + 1, `t=${k.t}: ${deficitS} s at the minimum beyond the surplus`);
        } else deficitS = 0;
      }
    }),
    { numRuns: 60 },
  );
});

test('pv mode: the departure target is reached whatever the sun does, when the grid alone could reach it', () => {
  fc.assert(
    fc.property(segments(8000), fc.integer({ min: 20, max: 79 }), (pv, soc0) => {
      // T0 is 17:00 UTC, the departure 07:30 UTC: 14.5 h; 11 kW × 0.95 fills 60 kWh's 60 % in ~3.5 h
      const c = chargeSettings({ mode: 'pv' }, { vehicle: { departureTime: '07:30', targetSocPct: 80 } });
      const ticks = runSite(c, { durationS: 14.5 * 3600 - 60, tickS: 60, pvW: series(pv.map(([d, w]) => [d * 60, w])), socPct: soc0 });
      const last = ticks.at(-1)!;
      assert.ok(last.socPct >= 79.5, `SoC ${last.socPct.toFixed(2)} % at the departure from ${soc0} %`);
    }),
    { numRuns: 25 },
  );
});

test('any mode, any readings: the car charges within every limit, and "off" charges only for the backup reserve', () => {
  const mode = fc.constantFrom('off', 'now', 'target', 'minpv', 'pv') as fc.Arbitrary<'off' | 'now' | 'target' | 'minpv' | 'pv'>;
  const maybe = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });
  fc.assert(
    fc.property(
      mode, fc.integer({ min: 0, max: 100 }), maybe(fc.integer({ min: -20000, max: 20000 })), maybe(fc.integer({ min: 0, max: 15000 })),
      maybe(fc.integer({ min: 0, max: 20000 })), maybe(fc.integer({ min: 1000, max: 30000 })), fc.array(fc.integer({ min: 0, max: 600 }), { minLength: 1, maxLength: 8 }),
      (m, soc, gridW, pvW, exportLimitW, importLimitW, gaps) => {
        const c = chargeSettings({ mode: m }, { site: { gridExportLimitW: exportLimitW ?? null, gridImportLimitW: importLimitW ?? null }, vehicle: { departureTime: '07:30' } });
        let mem = initialMemory(T0);
        let t = T0;
        for (const gapS of gaps) {
          t += gapS * 1000;
          const p = decide(snapshot(t, { vehicle: { socPct: soc, socAtMs: t, atMs: t }, inverter: { atMs: t }, gridPowerW: gridW, gridPowerAtMs: t, pvPowerW: pvW, pvPowerAtMs: t }), c, mem, t);
          mem = p.memory;
          assert.ok(p.setpointW >= 0 && p.setpointW <= p.limits.maxChargeW, `${m}: ${p.setpointW} W outside 0..${p.limits.maxChargeW}`);
          if (m === 'off' && p.setpointW > 0) assert.ok(c.backup.enabled && soc < c.vehicle.backupFloorPct, `off charged ${p.setpointW} W at ${soc} % (${p.reasons.join(', ')})`);
        }
      },
    ),
    { numRuns: 300 },
  );
});
