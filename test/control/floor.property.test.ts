/**
 * Invariant 1 with an independent oracle. The effective floor, including the departure floor, is
 * recomputed here from the config and the snapshot with this file's own formula (design.md, invariant 1;
 * docs/architecture.md, "What is assumed when inputs are missing"), not with limits.ts. The generated
 * world has a car whose SoC follows the power delivered, whose capacity and SoC are sometimes unknown or
 * not numbers, and an unmetered house now and then. Checked at every step: no discharge without a
 * usable SoC, none at or below the recomputed floor, and no step that crosses it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decide, initialMemory } from '../../src/control/decide.ts';
import type { Memory, Snapshot } from '../../src/control/types.ts';
import { T0, dispatchCmd, settings } from '../helpers/control.ts';

/** The documented assumptions (docs/architecture.md), written out here rather than imported. */
const ASSUMED_CAPACITY_ABOVE_FLOOR_WH = 10_000;

const configArb = fc.record({
  dischargeFloorPct: fc.integer({ min: 20, max: 80 }),
  targetSocPct: fc.integer({ min: 40, max: 100 }),
  departureTime: fc.option(fc.tuple(fc.integer({ min: 0, max: 23 }), fc.integer({ min: 0, max: 59 })).map(([h, m]) => `${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}`), { nil: null, freq: 5 }),
  departureMarginS: fc.constantFrom(0, 900, 1800, 3600),
  configCapacityKnown: fc.boolean(),
  assumedCapacityWhForDeparture: fc.integer({ min: 40_000, max: 150_000 }),
  gridImportLimitW: fc.option(fc.integer({ min: 3000, max: 25_000 }), { nil: null, freq: 2 }),
  assumedHouseLoadW: fc.integer({ min: 0, max: 9000 }),
});

const worldArb = fc.record({
  capacityWh: fc.integer({ min: ASSUMED_CAPACITY_ABOVE_FLOOR_WH, max: 100_000 }),
  carReportsCapacity: fc.constantFrom<'yes' | 'no' | 'nan' | 'inf'>('yes', 'no', 'no', 'nan', 'inf'),
  soc0: fc.double({ min: 0, max: 100, noNaN: true }),
  /** Start just above the homeowner's floor, to reach the per-tick bound. */
  nearFloorPct: fc.option(fc.double({ min: 0, max: 0.3, noNaN: true }), { nil: undefined, freq: 2 }),
  inverterMaxChargeW: fc.constantFrom(3700, 7400, 11_000, 22_000),
  carMaxChargeW: fc.option(fc.constantFrom(3700, 11_000), { nil: undefined }),
  efficiency: fc.double({ min: 0.85, max: 0.98, noNaN: true }),
  minSocPct: fc.constantFrom<number | undefined>(undefined, undefined, 30, 65, Number.NaN),
  startOffsetMs: fc.integer({ min: 0, max: 86_400_000 - 1 }),
});

const stepArb = fc.record({
  dtS: fc.constantFrom(1, 1, 1, 1, 1, 1, 900),
  socReport: fc.constantFrom<'true' | 'none' | 'nan' | 'ninf'>('true', 'true', 'true', 'true', 'true', 'none', 'nan', 'ninf'),
  houseLoadW: fc.option(fc.integer({ min: 0, max: 9000 }), { nil: undefined }),
  dispatchW: fc.option(fc.integer({ min: -22_000, max: -500 }), { nil: undefined, freq: 3 }),
  /** The wall clock steps by this much before the step (NTP, a board without RTC): the departure is calendar time. */
  wallStepS: fc.constantFrom(0, 0, 0, 0, 0, 0, 0, 0, -3600, 3600),
});

/** The next HH:MM in UTC strictly after `nowMs`. */
function nextUtc(hhmm: string, nowMs: number): number {
  const [h, m] = hhmm.split(':').map(Number);
  const day = Math.floor(nowMs / 86_400_000) * 86_400_000;
  const today = day + (h * 60 + m) * 60_000;
  return today > nowMs ? today : today + 86_400_000;
}

function usable(v: number | undefined): v is number {
  return v !== undefined && Number.isFinite(v);
}

test('invariant 1 against an independent floor: unknown and non-finite capacity and SoC, SoC following the power', () => {
  const seen = { discharging: 0, departureBinding: 0, capacityUnknownDischarging: 0, refusedUnknownSoc: 0, closeToFloor: 0 };
  fc.assert(
    fc.property(configArb, worldArb, fc.array(stepArb, { minLength: 5, maxLength: 80 }), (cfg, w, steps) => {
      const configCapacityWh = cfg.configCapacityKnown ? w.capacityWh : null;
      const c = settings({
        timezone: 'UTC',
        vehicle: {
          dischargeFloorPct: cfg.dischargeFloorPct, backupFloorPct: Math.min(20, cfg.dischargeFloorPct), targetSocPct: cfg.targetSocPct,
          departureTime: cfg.departureTime, departureMarginS: cfg.departureMarginS, capacityWh: configCapacityWh,
          assumedCapacityWhForDeparture: cfg.assumedCapacityWhForDeparture, departureSource: 'config', maxChargeW: null, maxDischargeW: null,
        },
        site: { gridImportLimitW: cfg.gridImportLimitW, gridExportLimitW: null, assumedHouseLoadW: cfg.assumedHouseLoadW, houseLoadMaxAgeS: 10 },
        control: { tickS: 1, socMaxAgeS: 30, inverterMaxAgeS: 5 },
      });
      let now = T0 + w.startOffsetMs + 0.25;
      let soc = w.nearFloorPct !== undefined ? cfg.dischargeFloorPct + w.nearFloorPct : w.soc0;
      let mem: Memory = initialMemory(now);
      let wallOffsetMs = 0;
      let n = 0;
      const carCapacity = w.carReportsCapacity === 'yes' ? w.capacityWh : w.carReportsCapacity === 'nan' ? Number.NaN : w.carReportsCapacity === 'inf' ? Number.POSITIVE_INFINITY : undefined;
      for (const st of steps) {
        now += st.dtS * 1000;
        wallOffsetMs += st.wallStepS * 1000;
        const wall = now + wallOffsetMs;
        const reported = st.socReport === 'true' ? soc : st.socReport === 'nan' ? Number.NaN : st.socReport === 'ninf' ? Number.NEGATIVE_INFINITY : undefined;
        const s: Snapshot = {
          wallMs: wall,
          vehicle: {
            connected: true, socPct: reported, socAtMs: reported === undefined ? undefined : now, socSource: reported === undefined ? 'none' : 'vehicle',
            capacityWh: carCapacity, minSocPct: w.minSocPct, maxChargeW: w.carMaxChargeW, maxDischargeW: 11_000, bidirectional: true, atMs: now,
          },
          inverter: { atMs: now, powerW: mem.lastSetpointW, ratedW: 22_000, maxChargeW: w.inverterMaxChargeW, maxDischargeW: 22_000, efficiency: w.efficiency, gridForming: false, connected: true, gridAlarm: false, islandCapable: true },
          grid: { sensePresent: true },
          contactor: { installed: true, feedbackClosed: true, commandedClosed: true },
          estopPressed: false,
          houseLoadW: st.houseLoadW,
          houseLoadAtMs: st.houseLoadW === undefined ? undefined : now,
          loadTierCount: 0,
          commands: st.dispatchW === undefined ? [] : [dispatchCmd(`d${n++}`, st.dispatchW, 3600, wall)],
          energy: { exportedWh: 0, importedWh: 0, carSideWh: 0 },
        };
        const p = decide(s, c, mem, now);
        mem = p.memory;

        // --- the oracle's floor -------------------------------------------------------------
        let depFloor: number | undefined;
        if (cfg.departureTime !== null) {
          const depAt = nextUtc(cfg.departureTime, wall);
          const knownCap = usable(carCapacity) && carCapacity > 0 ? carCapacity : configCapacityWh;
          const capForDeparture = knownCap ?? cfg.assumedCapacityWhForDeparture;
          const house = st.houseLoadW ?? cfg.assumedHouseLoadW;
          const chargeW = Math.max(0, Math.min(w.inverterMaxChargeW, w.carMaxChargeW ?? Infinity, cfg.gridImportLimitW === null ? Infinity : cfg.gridImportLimitW - house));
          const hours = Math.max(0, (depAt - wall) / 1000 - cfg.departureMarginS) / 3600;
          depFloor = Math.min(cfg.targetSocPct, Math.max(0, cfg.targetSocPct - ((chargeW * w.efficiency * hours) / capForDeparture) * 100));
        }
        const floor = Math.min(100, Math.max(cfg.dischargeFloorPct, depFloor ?? 0, usable(w.minSocPct) ? w.minSocPct : 0));
        assert.ok(Math.abs(p.floors.effectiveFloorPct - floor) < 1e-6, `effective floor ${p.floors.effectiveFloorPct} %, oracle ${floor} %`);
        if (depFloor !== undefined && depFloor > cfg.dischargeFloorPct) seen.departureBinding++;

        // --- the checks ---------------------------------------------------------------------
        assert.ok(Number.isFinite(p.setpointW), `setpoint ${p.setpointW}`);
        if (p.setpointW < 0) {
          seen.discharging++;
          if (!(usable(carCapacity) && carCapacity > 0) && configCapacityWh === null) seen.capacityUnknownDischarging++;
          assert.ok(usable(reported), `discharge ${p.setpointW} W with the SoC ${reported}`);
          assert.ok(soc > floor, `discharge ${p.setpointW} W at ${soc} %, floor ${floor} %`);
          // one tick of it, car side, on the true capacity: never below the floor
          const after = soc + ((p.setpointW / w.efficiency / 3600) / w.capacityWh) * 100;
          assert.ok(after >= floor - 1e-9, `one tick at ${p.setpointW} W takes ${soc} % to ${after} %, below the floor ${floor} %`);
          if (soc - floor < 0.5) seen.closeToFloor++;
        } else if (!usable(reported) && st.dispatchW !== undefined) seen.refusedUnknownSoc++;

        // --- the world: the SoC follows the power, for one tick (the device acts every tick) ---
        const sp = p.setpointW;
        const carSideWh = sp > 0 ? (sp * w.efficiency) / 3600 : sp / w.efficiency / 3600;
        soc = Math.min(100, Math.max(0, soc + (carSideWh / w.capacityWh) * 100));
      }
    }),
    { numRuns: 400 },
  );
  for (const [k, v] of Object.entries(seen)) assert.ok(v > 0, `the generated worlds never reached: ${k}`);
});
