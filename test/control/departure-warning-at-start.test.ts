/**
 * Regression: every start logged "departure target 80 % at risk" and cleared it a tick later, because the
 * first decision ran before the inverter's first reading and took its unknown charge power as 0 W. An
 * unknown charge power says nothing about the departure: the warning waits for a reading (and a real risk
 * still warns as soon as one is there).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decide, initialMemory } from '../../src/control/decide.ts';
import { settings, snapshot } from '../helpers/control.ts';

const NOW = Date.parse('2026-12-01T23:00:00Z'); // departure 07:30 UTC: 8.5 h away

test('departure warning at start: none before the first inverter reading; a real risk warns once there is one', () => {
  const c = settings({ vehicle: { targetSocPct: 80, departureTime: '07:30' } });
  const noReading = snapshot(NOW, { vehicle: { socPct: 70 }, inverter: { atMs: undefined, powerW: undefined, maxChargeW: undefined, maxDischargeW: undefined } });
  const first = decide(noReading, c, initialMemory(NOW), NOW);
  assert.equal(first.departureAtRisk, false);
  assert.deepEqual(first.events.filter((e) => e.kind === 'departure'), []);
  // 10 % of 60 kWh in 8.5 h at 11 kW: no risk once the reading is there
  const second = decide(snapshot(NOW + 1000, { vehicle: { socPct: 70 } }), c, first.memory, NOW + 1000);
  assert.equal(second.departureAtRisk, false);
  assert.deepEqual(second.events.filter((e) => e.kind === 'departure'), []);
  // a car at 10 % with a 1 kW inverter: 70 % of 60 kWh cannot come in 8.5 h: the warning comes with the reading
  const weak = { inverter: { maxChargeW: 1000, ratedW: 1000 }, vehicle: { socPct: 10 } };
  const a = decide(snapshot(NOW, { ...weak, inverter: { atMs: undefined, powerW: undefined, maxChargeW: undefined } }), c, initialMemory(NOW), NOW);
  assert.equal(a.departureAtRisk, false);
  const b = decide(snapshot(NOW + 1000, weak), c, a.memory, NOW + 1000);
  assert.equal(b.departureAtRisk, true);
  assert.equal(b.events.filter((e) => e.kind === 'departure').length, 1);
});
