/**
 * The core with a site meter: the house derived from the grid meter (house = grid − charger + PV), PV in
 * the import and export limits, the fallback to `site.assumedHouseLoadW` (never to house = 0) when the
 * meter is stale or faulty, and the per-phase fuse limit. Expected values are worked out by hand below.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { decide, initialMemory } from '../../src/control/decide.ts';
import { fuseChargeLimitW, houseLoadForExportW, houseLoadForImportW, meteredHouseLoadW, powerLimits } from '../../src/control/limits.ts';
import type { Snapshot } from '../../src/control/types.ts';
import { settings, snapshot, T0 } from '../helpers/control.ts';

const floors = { dischargeFloorPct: 20, backupFloorPct: 30, effectiveFloorPct: 20 };

/** A site with a grid meter only (no house feed meter). */
function metered(now: number, over: Parameters<typeof snapshot>[1] = {}): Snapshot {
  return snapshot(now, { houseLoadW: undefined, ...over });
}

describe('house load from a grid meter', () => {
  const c = settings({ site: { gridImportLimitW: 10_000, gridExportLimitW: 2_000, assumedHouseLoadW: 5_000, houseLoadMaxAgeS: 10 } });

  test('house = grid − charger + PV, from the same tick', () => {
    // importing 3000 W while the car takes 2000 W and PV makes 1500 W: the house draws 3000 − 2000 + 1500 = 2500 W
    const s = metered(T0, { gridPowerW: 3000, gridPowerAtMs: T0, pvPowerW: 1500, pvPowerAtMs: T0, inverter: { powerW: 2000, atMs: T0 } });
    assert.equal(meteredHouseLoadW(s, c, T0), 2500);
    // the import limit sees what the site draws besides the car: house − PV = 1000 W
    assert.equal(houseLoadForImportW(s, c, T0), 1000);
    const lim = powerLimits(s, c, floors, T0, undefined);
    assert.equal(lim.maxChargeW, 9000);
    assert.equal(lim.chargeLimitedBy, 'grid_limit');
  });

  test('PV exporting leaves less room for discharge under the export limit', () => {
    // exporting 3000 W with the car idle: house − PV = −3000 W; the export limit of 2000 W is already passed
    const s = metered(T0, { gridPowerW: -3000, gridPowerAtMs: T0, pvPowerW: 3500, pvPowerAtMs: T0, inverter: { powerW: 0, atMs: T0 } });
    assert.equal(houseLoadForExportW(s, c, T0), -3000);
    const lim = powerLimits(s, c, floors, T0, undefined);
    assert.equal(lim.maxDischargeW, 0);
    assert.equal(lim.dischargeLimitedBy, 'grid_limit');
    // and more room to charge: 10000 + 3000
    assert.equal(lim.maxChargeW, 11_000); // the inverter's own 11 kW binds before 13 kW
  });

  test('a stale grid reading falls back to the assumed house load, not to 0', () => {
    const now = T0 + 11_000;
    const s = metered(now, { gridPowerW: 200, gridPowerAtMs: T0, inverter: { powerW: 0, atMs: now } });
    assert.equal(meteredHouseLoadW(s, c, now), undefined);
    assert.equal(houseLoadForImportW(s, c, now), 5000);
    assert.equal(powerLimits(s, c, floors, now, undefined).maxChargeW, 5000);
    // unmetered export: the house may draw nothing
    assert.equal(houseLoadForExportW(s, c, now), 0);
  });

  test('a faulty meter falls back to the assumption even with a fresh-looking figure', () => {
    const s = metered(T0, { gridPowerW: 200, gridPowerAtMs: T0, houseLoadFault: 'timeout: no answer', inverter: { powerW: 0, atMs: T0 } });
    assert.equal(houseLoadForImportW(s, c, T0), 5000);
  });

  test('a stale inverter reading makes the derivation impossible: assumption', () => {
    const now = T0 + 20_000;
    const s = metered(now, { gridPowerW: 200, gridPowerAtMs: now, inverter: { powerW: 0, atMs: T0 } });
    assert.equal(meteredHouseLoadW(s, c, now), undefined);
  });

  test('a stale PV reading is not subtracted (the grid figure alone still holds)', () => {
    const now = T0 + 15_000;
    const s = metered(now, { gridPowerW: 1000, gridPowerAtMs: now, pvPowerW: 4000, pvPowerAtMs: T0, inverter: { powerW: 0, atMs: now } });
    assert.equal(houseLoadForImportW(s, c, now), 1000);
  });

  test('a PV fault drops PV from the house figure of a house-feed meter (less room to charge)', () => {
    const s = snapshot(T0, { houseLoadW: 2000, houseLoadAtMs: T0, pvPowerW: 1500, pvPowerAtMs: T0, pvPowerFault: 'timeout' });
    assert.equal(houseLoadForImportW(s, c, T0), 2000);
    const ok = snapshot(T0, { houseLoadW: 2000, houseLoadAtMs: T0, pvPowerW: 1500, pvPowerAtMs: T0 });
    assert.equal(houseLoadForImportW(ok, c, T0), 500);
  });
});

describe('per-phase fuse', () => {
  // 25 A per phase, three-phase charger; 230 V
  const c = settings({ vehicle: { chargeStrategy: 'immediate', targetSocPct: 100, maxChargeW: null }, site: { gridImportLimitW: null, fuseA: 25, houseLoadMaxAgeS: 10 } });

  test('fuse limit = (fuse − worst house current on the charger phases) × V × phases', () => {
    // the car takes 6900 W = 10 A per phase; L1 reads 30 A, so the house draws 20 A on L1: (25 − 20) × 230 × 3 = 3450 W
    const s = metered(T0, { phaseCurrentsA: [30, 12, 10], phaseCurrentsAtMs: T0, inverter: { powerW: 6900, atMs: T0 } });
    assert.equal(Math.round(fuseChargeLimitW(s, c, T0)!), 3450);
  });

  test('single-phase charger on L2 only counts L2', () => {
    const c1 = settings({ site: { fuseA: 32, chargerPhases: [2] } });
    // car 3680 W on L2 = 16 A; L2 reads 20 A, so 4 A house: (32 − 4) × 230 = 6440 W; L1 at 31 A does not matter
    const s = metered(T0, { phaseCurrentsA: [31, 20, 0], phaseCurrentsAtMs: T0, inverter: { powerW: 3680, atMs: T0 } });
    assert.equal(Math.round(fuseChargeLimitW(s, c1, T0)!), 6440);
  });

  test('unknown charger power: all measured current counts as house', () => {
    const s = metered(T0, { phaseCurrentsA: [20, 20, 20], phaseCurrentsAtMs: T0, inverter: { powerW: undefined, atMs: T0 } });
    assert.equal(Math.round(fuseChargeLimitW(s, c, T0)!), 5 * 230 * 3);
  });

  test('stale currents: the assumed house load spread over three phases', () => {
    const now = T0 + 30_000;
    const s = metered(now, { phaseCurrentsA: [0, 0, 0], phaseCurrentsAtMs: T0, inverter: { powerW: 0, atMs: now } });
    // 5000 W / (230 V × 3) = 7.246 A per phase: (25 − 7.246) × 690 = 12 250 W
    assert.equal(Math.round(fuseChargeLimitW(s, c, now)!), Math.round((25 - 5000 / 690) * 690));
  });

  test('a fast house-load step cuts the car within one tick (decide)', () => {
    let mem = initialMemory(T0);
    // tick 0: the house draws 2 A per phase, the car can take its full 11 kW
    const quiet = (now: number, carW: number) =>
      metered(now, { vehicle: { socPct: 50 }, phaseCurrentsA: [2 + carW / 690, 2 + carW / 690, 2 + carW / 690], phaseCurrentsAtMs: now, inverter: { powerW: carW, atMs: now } });
    const p0 = decide(quiet(T0, 0), c, mem, T0);
    assert.equal(p0.setpointW, 11_000);
    mem = p0.memory;
    const t1 = T0 + 1000;
    const p1 = decide(quiet(t1, 11_000), c, mem, t1);
    assert.equal(p1.setpointW, 11_000);
    mem = p1.memory;
    // tick 2: an oven and a heat pump come on, +18 A on L1: L1 reads 2 + 15.94 + 18 A with the car still at 11 kW
    const t2 = T0 + 2000;
    const carA = 11_000 / 690;
    const step = metered(t2, { vehicle: { socPct: 50 }, phaseCurrentsA: [2 + carA + 18, 2 + carA, 2 + carA], phaseCurrentsAtMs: t2, inverter: { powerW: 11_000, atMs: t2 } });
    const p2 = decide(step, c, mem, t2);
    // room on L1: 25 − 20 = 5 A, × 230 V × 3 phases = 3450 W, at this very tick
    // (the core rounds a setpoint down to whole watts: never past the fuse)
    assert.ok(p2.setpointW <= 3450 && p2.setpointW >= 3449, `setpoint ${p2.setpointW}`);
    assert.equal(p2.limits.chargeLimitedBy, 'grid_limit');
  });
});

describe('config reload', () => {
  test('a changed siteMeter section needs a restart (its driver is built at start); site.fuseA applies live', async () => {
    const { classifyChanges } = await import('../../src/config/reload.ts');
    const { loadConfig } = await import('../../src/config/load.ts');
    const r = classifyChanges(['siteMeter.modbus.unitId', 'site.fuseA'], loadConfig(null), { uplinkRunning: false, rewardLive: true });
    assert.deepEqual(r, { live: ['site.fuseA'], restart: ['siteMeter.modbus.unitId'] });
  });
});
