/**
 * The aggregator's view: `state` carries the site meter's grid and PV power with their age, and null
 * where there is no figure (no meter, a fault, not measured).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { siteFigures, statePayload } from '../../src/runtime/outgoing.ts';
import { decide, initialMemory } from '../../src/control/decide.ts';
import { settings, snapshot, T0 } from '../helpers/control.ts';

test('state.site: grid and PV as measured, rounded to W, with their age in s', () => {
  const s = snapshot(T0, { gridPowerW: -1234.6, gridPowerAtMs: T0 - 2400, pvPowerW: 3999.5, pvPowerAtMs: T0 - 7000 });
  const p = decide(s, settings(), initialMemory(T0), T0);
  const state = statePayload(p, s, { importedWh: 0, exportedWh: 0 }, T0);
  assert.deepEqual(state.site, { gridPowerW: -1235, gridAgeS: 2, pvPowerW: 4000, pvAgeS: 7 });
});

test('state.site: null without a meter, with a meter fault, with a PV fault', () => {
  assert.deepEqual(siteFigures(snapshot(T0), T0), { gridPowerW: null, gridAgeS: null, pvPowerW: null, pvAgeS: null });
  const faulty = snapshot(T0, { gridPowerW: 500, gridPowerAtMs: T0, houseLoadFault: 'timeout: no answer', pvPowerW: 100, pvPowerAtMs: T0, pvPowerFault: 'stale' });
  assert.deepEqual(siteFigures(faulty, T0), { gridPowerW: null, gridAgeS: null, pvPowerW: null, pvAgeS: null });
  const pvOnly = snapshot(T0, { gridPowerW: 500, gridPowerAtMs: T0, pvPowerW: 100, pvPowerAtMs: T0, pvPowerFault: 'stale' });
  assert.deepEqual(siteFigures(pvOnly, T0), { gridPowerW: 500, gridAgeS: 0, pvPowerW: null, pvAgeS: null });
});

test('flex: PV already exporting leaves less discharge to offer under an export limit', () => {
  const c = settings({ site: { gridExportLimitW: 5000, gridImportLimitW: null } });
  // the car idle, the house drawing 800 W: 5000 + 800 W may flow out of the car
  const quiet = snapshot(T0, { houseLoadW: undefined, gridPowerW: 800, gridPowerAtMs: T0, inverter: { powerW: 0, atMs: T0 } });
  assert.equal(decide(quiet, c, initialMemory(T0), T0).flex.maxDischargeW, 5800);
  // noon: PV makes 4000 W, the house still 800 W, 3200 W already exported: only 5000 − 3200 W more
  const sunny = snapshot(T0, { houseLoadW: undefined, gridPowerW: -3200, gridPowerAtMs: T0, pvPowerW: 4000, pvPowerAtMs: T0, inverter: { powerW: 0, atMs: T0 } });
  assert.equal(decide(sunny, c, initialMemory(T0), T0).flex.maxDischargeW, 1800);
});
