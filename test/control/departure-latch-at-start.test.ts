/**
 * Regression `departure-latch-at-start`: every start of `npm start` (and of the daemon on a board) began
 * charging at full power at once, hours before the departure needed it, and kept on until the target. The
 * first decision runs before the inverter's first reading; its unknown charge power counted as 0 W, so the
 * departure floor was the whole target (80 %), the car at 70 % was "below" it, and the just-in-time latch
 * was set; the reading a second later put the floor back at 0 %, but the latch held. The same happened after
 * any moment of stale inverter data. An unknown charge power keeps the departure floor high for
 * discharging (the floor property tests hold that), but it does not start charging; and a latch whose
 * departure floor has fallen clearly below the SoC is let go.
 *
 * Expected values are worked out here from the snapshot's figures, not taken from the core.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decide, initialMemory } from '../../src/control/decide.ts';
import type { Memory, Plan } from '../../src/control/types.ts';
import { settings, snapshot } from '../helpers/control.ts';

const NOW = Date.parse('2026-12-01T23:00:00Z'); // departure 07:30 UTC: 8.5 h away
const CAP_WH = 60000;
const EFF = 0.95;

/** The departure floor as the departure rule states it: the target less what the charge power brings by then. */
function floorPct(targetPct: number, chargeW: number, hoursLeft: number, marginS: number): number {
  const h = Math.max(0, hoursLeft - marginS / 3600);
  return Math.max(0, targetPct - ((chargeW * EFF * h) / CAP_WH) * 100);
}

const noReading = { atMs: undefined, powerW: undefined, maxChargeW: undefined, maxDischargeW: undefined, ratedW: undefined };

function run(c: ReturnType<typeof settings>, steps: { atS: number; socPct: number; inverter?: Record<string, unknown> }[], mem: Memory = initialMemory(NOW)): Plan[] {
  const plans: Plan[] = [];
  for (const st of steps) {
    const now = NOW + st.atS * 1000;
    const p = decide(snapshot(now, { vehicle: { socPct: st.socPct }, inverter: st.inverter ?? {} }), c, mem, now);
    mem = p.memory;
    plans.push(p);
  }
  return plans;
}

test('departure-latch-at-start: no charging before the first inverter reading when the departure is hours away', () => {
  const c = settings({ vehicle: { targetSocPct: 80, departureTime: '07:30', chargeStrategy: 'departure' } });
  const margin = c.vehicle.departureMarginS;
  // 11 kW for 8.5 h brings far more than 10 % of 60 kWh: the floor with a reading is 0 %
  assert.equal(floorPct(80, 11000, 8.5, margin), 0);
  const plans = run(c, [{ atS: 0, socPct: 70, inverter: noReading }, ...Array.from({ length: 5 }, (_, i) => ({ atS: i + 1, socPct: 70 }))]);
  for (const [i, p] of plans.entries()) {
    assert.notEqual(p.mode, 'charge', `tick ${i}: ${p.mode} ${p.setpointW} W (${p.reasons.join(', ')})`);
    assert.equal(p.setpointW, 0, `tick ${i}`);
  }
  assert.equal(plans.at(-1)!.memory.chargeLatched, false);
  // the floor for discharging stays high while the charge power is unknown (no discharge on a guess)
  assert.ok(plans[0]!.floors.effectiveFloorPct >= 80 - 1e-9, `first tick effective floor ${plans[0]!.floors.effectiveFloorPct}`);
});

test('departure-latch-at-start: a stale inverter mid-night does not start charging either', () => {
  const c = settings({ vehicle: { targetSocPct: 80, departureTime: '07:30', chargeStrategy: 'departure' } });
  const staleAt = NOW - (c.control.inverterMaxAgeS + 5) * 1000;
  const plans = run(c, [
    { atS: 0, socPct: 70 },
    { atS: 1, socPct: 70, inverter: { atMs: staleAt } },
    { atS: 2, socPct: 70, inverter: { atMs: staleAt } },
    { atS: 3, socPct: 70 },
    { atS: 4, socPct: 70 },
  ]);
  for (const [i, p] of plans.entries()) assert.equal(p.setpointW, 0, `tick ${i}: ${p.mode} (${p.reasons.join(', ')})`);
});

test('a real departure need still starts charging as soon as the charge power is known, and holds to the target', () => {
  // a 1 kW inverter: 8.5 h bring 13.5 % of 60 kWh, so the floor is about 67 % (less the margin) and a car at 30 % must charge
  const c = settings({ vehicle: { targetSocPct: 80, departureTime: '07:30', chargeStrategy: 'departure' } });
  const weak = { maxChargeW: 1000, ratedW: 1000, maxDischargeW: 1000 };
  const expectedFloor = floorPct(80, 1000, 8.5, c.vehicle.departureMarginS);
  assert.ok(expectedFloor > 60 && expectedFloor < 70, `worked-out floor ${expectedFloor}`);
  const plans = run(c, [{ atS: 0, socPct: 30, inverter: noReading }, { atS: 1, socPct: 30, inverter: weak }, { atS: 2, socPct: 30, inverter: weak }]);
  assert.equal(plans[0]!.setpointW, 0, 'nothing to charge with before the reading');
  assert.equal(plans[1]!.mode, 'charge');
  assert.deepEqual(plans[1]!.reasons, ['departure']);
  assert.equal(plans[1]!.setpointW, 1000);
  assert.ok(Math.abs(plans[1]!.floors.departureFloorPct! - expectedFloor) < 0.01, `core ${plans[1]!.floors.departureFloorPct}, worked out ${expectedFloor}`);
  assert.equal(plans[2]!.memory.chargeLatched, true);
});

test('a latch whose departure floor has fallen clearly below the SoC is let go; near the floor it holds', () => {
  const c = settings({ vehicle: { targetSocPct: 80, departureTime: '07:30', chargeStrategy: 'departure' } });
  const margin = c.vehicle.departureMarginS;
  // 2 kW: the floor 8.5 h out is about 53 %; a car at 53 % starts, and holds a little above it
  const slow = { maxChargeW: 2000, ratedW: 2000, maxDischargeW: 2000 };
  const f = floorPct(80, 2000, 8.5, margin);
  const start = Math.floor(f * 10) / 10;
  const held = run(c, [{ atS: 0, socPct: start, inverter: slow }, { atS: 1, socPct: start + 1, inverter: slow }]);
  assert.equal(held[0]!.mode, 'charge', `at ${start} % against a worked-out floor ${f}`);
  assert.equal(held[1]!.mode, 'charge', 'one point above the floor: the latch holds (no flapping at the boundary)');
  // then the charge power rises to 11 kW (the car or the house let more through): the floor drops to 0 %
  const freed = run(c, [{ atS: 2, socPct: start + 1 }], held[1]!.memory);
  assert.equal(floorPct(80, 11000, 8.5, margin), 0);
  assert.equal(freed[0]!.setpointW, 0, `${freed[0]!.mode} (${freed[0]!.reasons.join(', ')})`);
  assert.equal(freed[0]!.memory.chargeLatched, false);
});
