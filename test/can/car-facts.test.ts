/** The car facts the CAN driver takes from the vehicle link: SoC as sent, power from the session counters. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { vehicleLinkFacts } from '../../hal/inverter/can/car-facts.ts';
import type { VehicleState } from '../../hal/ports.ts';

test('power from the energy counters between two updates, stamped with the later one; none after a reset', () => {
  let s: VehicleState = { atMs: 10_000, connected: true, socPct: 60, socAtMs: 9_000, chargedWh: 100, dischargedWh: 50 };
  const facts = vehicleLinkFacts({ state: () => s });
  let f = facts();
  assert.deepEqual([f.socPct, f.socAtMs, f.dcPowerW], [60, 9_000, undefined], 'one update: no power yet');
  assert.equal(facts().dcPowerW, undefined, 'the same update again: still none');
  // 2 s later 2.5 Wh more discharged: -2.5 Wh × 3600 s/h / 2 s = -4500 W
  s = { ...s, atMs: 12_000, dischargedWh: 52.5 };
  f = facts();
  assert.deepEqual([f.dcPowerW, f.powerAtMs, f.powerSource], [-4500, 12_000, 'vehicle-counters']);
  // 1 s later 1 Wh charged: +3600 W
  s = { ...s, atMs: 13_000, chargedWh: 101 };
  assert.equal(facts().dcPowerW, 3600);
  // a new session: the counters start again from 0: no power until the next update
  s = { ...s, atMs: 14_000, chargedWh: 0, dischargedWh: 0 };
  assert.equal(facts().dcPowerW, undefined);
  s = { ...s, atMs: 15_000, chargedWh: 1 };
  assert.equal(facts().dcPowerW, 3600);
  // unplugged: no SoC, whatever the link last had
  s = { ...s, connected: false };
  assert.equal(facts().socPct, undefined);
});
