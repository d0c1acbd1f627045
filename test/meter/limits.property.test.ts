/**
 * Property: with a grid meter, charging at the limit the core allows never takes the site past the grid
 * import limit nor any phase past the main fuse, whatever the house draws on each phase, whatever PV makes
 * and whatever the car was taking when the meter read. The site here is computed from first principles
 * (unity power factor, nominal voltage, a three-phase charger): the meter sees the sum of house, car and PV
 * currents per phase and their total power; the core sees only the meter and the inverter.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { powerLimits } from '../../src/control/limits.ts';
import { settings, snapshot, T0 } from '../helpers/control.ts';

const V = 230;
const floors = { dischargeFloorPct: 20, backupFloorPct: 30, effectiveFloorPct: 20 };

test('the allowed charge power keeps the import limit and every phase within the fuse', () => {
  fc.assert(
    fc.property(
      fc.record({
        houseW: fc.tuple(fc.integer({ min: 0, max: 9000 }), fc.integer({ min: 0, max: 9000 }), fc.integer({ min: 0, max: 9000 })),
        pvW: fc.integer({ min: 0, max: 10_000 }),
        carNowW: fc.integer({ min: 0, max: 11_000 }),
        importLimitW: fc.integer({ min: 2000, max: 40_000 }),
        fuseA: fc.integer({ min: 16, max: 63 }),
      }),
      ({ houseW, pvW, carNowW, importLimitW, fuseA }) => {
        // a physically possible site: every phase within its fuse before the core acts
        const phaseW = (carW: number) => houseW.map((h) => h - pvW / 3 + carW / 3);
        fc.pre(phaseW(carNowW).every((w) => Math.abs(w) / V <= fuseA));
        // and the house alone within both (otherwise no car power can fix it: the core allows 0 W)
        fc.pre(phaseW(0).every((w) => Math.abs(w) / V <= fuseA) && phaseW(0).reduce((a, b) => a + b, 0) <= importLimitW);
        const gridW = phaseW(carNowW).reduce((a, b) => a + b, 0);
        const c = settings({ site: { gridImportLimitW: importLimitW, fuseA, houseLoadMaxAgeS: 10 } });
        const s = snapshot(T0, {
          houseLoadW: undefined,
          gridPowerW: gridW, gridPowerAtMs: T0, pvPowerW: pvW, pvPowerAtMs: T0,
          phaseCurrentsA: phaseW(carNowW).map((w) => Math.abs(w) / V), phaseCurrentsAtMs: T0,
          inverter: { powerW: carNowW, atMs: T0 },
        });
        const { maxChargeW } = powerLimits(s, c, floors, T0, undefined);
        const after = phaseW(maxChargeW);
        const importW = after.reduce((a, b) => a + b, 0);
        assert.ok(importW <= importLimitW + 1e-6, `import ${importW} W over the limit ${importLimitW} W (car ${maxChargeW} W)`);
        for (const [i, w] of after.entries()) assert.ok(Math.abs(w) / V <= fuseA + 1e-6, `L${i + 1} at ${(Math.abs(w) / V).toFixed(2)} A over ${fuseA} A (car ${maxChargeW} W)`);
      },
    ),
    { numRuns: 2000 },
  );
});

test('and it is not needlessly small: the binding limit is met within 1 W unless the car or inverter binds', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 6000 }), fc.integer({ min: 0, max: 5000 }), fc.integer({ min: 0, max: 11_000 }), (houseW, pvW, carNowW) => {
      const c = settings({ site: { gridImportLimitW: 9000, fuseA: null } });
      // the meter sees the car too: grid = house − PV + car
      const s = snapshot(T0, { houseLoadW: undefined, gridPowerW: houseW - pvW + carNowW, gridPowerAtMs: T0, pvPowerW: pvW, pvPowerAtMs: T0, inverter: { powerW: carNowW, atMs: T0 } });
      const { maxChargeW } = powerLimits(s, c, floors, T0, undefined);
      // room on the connection: 9000 − (house − PV); the inverter and the car cap at 11 kW
      const expected = Math.max(0, Math.min(11_000, 11_000 / 0.95, 9000 - (houseW - pvW)));
      assert.ok(Math.abs(maxChargeW - expected) <= 1, `${maxChargeW} W, expected ${expected} W`);
    }),
    { numRuns: 500 },
  );
});
