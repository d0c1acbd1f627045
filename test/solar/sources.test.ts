/**
 * Where the surplus comes from and what stops it at once: a grid meter (charger − grid), a PV reading with
 * a house reading when there is no grid meter, nothing usable (stale, faulty, absent) → no surplus
 * charging; a dispatch taking over; an unplugged car. decide() sequences, one a second.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { decide, initialMemory } from '../../src/control/decide.ts';
import type { Memory, Plan } from '../../src/control/types.ts';
import { surplusW } from '../../src/control/surplus.ts';
import { dispatchCmd, snapshot, T0 } from '../helpers/control.ts';
import { CHARGE, chargeSettings } from './world.ts';

const c = chargeSettings({});
type Over = Parameters<typeof snapshot>[1];

/** Run decide() each second from `fromS` to `toS` with `over(t)` as the snapshot; the car draws the previous setpoint. */
function run(mem: Memory, fromS: number, toS: number, over: (t: number, carW: number) => Over, carW0 = 0, settings = c): { plans: Plan[]; mem: Memory; carW: number } {
  const plans: Plan[] = [];
  let carW = carW0;
  for (let t = fromS; t <= toS; t++) {
    const now = T0 + t * 1000;
    const p = decide(snapshot(now, { vehicle: { socPct: 50, socAtMs: now, atMs: now }, inverter: { powerW: carW, atMs: now }, ...over(t, carW) }), settings, mem, now);
    mem = p.memory;
    carW = p.setpointW;
    plans.push(p);
  }
  return { plans, mem, carW };
}

const gridMeter = (pvW: number, houseW = 500) => (t: number, carW: number): Over => ({
  houseLoadW: undefined, gridPowerW: houseW + carW - pvW, gridPowerAtMs: T0 + t * 1000,
});

describe('the surplus from the site readings', () => {
  test('a grid meter: charger − grid', () => {
    const now = T0;
    // house 500, PV 4000, car drawing 2000: the grid reads 500 + 2000 − 4000 = −1500; the car could take 3500
    const s = snapshot(now, { inverter: { powerW: 2000, atMs: now }, gridPowerW: -1500, gridPowerAtMs: now, houseLoadW: undefined });
    assert.equal(surplusW(s, c, now), 3500);
  });
  test('no grid meter: PV − house', () => {
    const now = T0;
    const s = snapshot(now, { pvPowerW: 4200, pvPowerAtMs: now, houseLoadW: 700, houseLoadAtMs: now });
    assert.equal(surplusW(s, c, now), 3500);
  });
  test('a house reading alone is no surplus figure (the PV is unknown)', () => {
    const now = T0;
    assert.equal(surplusW(snapshot(now, { houseLoadW: 700, houseLoadAtMs: now }), c, now), undefined);
  });
  test('a stale or faulty grid meter is no figure', () => {
    const now = T0 + 60_000;
    const stale = T0 + 60_000 - (c.site.houseLoadMaxAgeS + 1) * 1000;
    assert.equal(surplusW(snapshot(now, { houseLoadW: undefined, gridPowerW: -3000, gridPowerAtMs: stale }), c, now), undefined);
    assert.equal(surplusW(snapshot(now, { houseLoadW: undefined, gridPowerW: -3000, gridPowerAtMs: now, houseLoadFault: 'timeout: no answer' }), c, now), undefined);
  });
});

describe('what stops surplus charging at once', () => {
  test('the meter going stale stops it in the same second, without the disable delay', () => {
    const on = run(initialMemory(T0), 0, 100, gridMeter(4000));
    assert.equal(on.plans.at(-1)!.setpointW, 4000 - 500 - CHARGE.residualPowerW);
    // from 101 the meter's reading stays at its 100 s value: at 101 + houseLoadMaxAgeS it is stale
    const staleFrom = 100 + c.site.houseLoadMaxAgeS + 1;
    const after = run(on.mem, 101, 130, (t, carW) => ({ houseLoadW: undefined, gridPowerW: 500 + carW - 4000, gridPowerAtMs: T0 + 100_000 }), on.carW);
    const firstZero = after.plans.findIndex((p) => p.setpointW === 0) + 101;
    assert.equal(firstZero, staleFrom);
    assert.ok(after.plans[firstZero - 101].events.some((e) => e.kind === 'surplus' && /no usable grid or PV reading/.test(e.message)));
  });

  test('unplugged: off at once; plugged again, the start delay counts afresh', () => {
    const on = run(initialMemory(T0), 0, 100, gridMeter(4000));
    const out = run(on.mem, 101, 110, (t) => ({ vehicle: { connected: false }, ...gridMeter(4000)(t, 0) }), 0);
    assert.ok(out.plans.every((p) => p.setpointW === 0));
    const back = run(out.mem, 111, 200, gridMeter(4000));
    assert.equal(back.plans.findIndex((p) => p.setpointW > 0) + 111, 111 + CHARGE.enableDelayS);
  });

  test('a dispatch takes over; after it the guard holds the restart', () => {
    const v2g = chargeSettings({}, { vehicle: { v2gEnabled: true } });
    const on = run(initialMemory(T0), 0, 100, gridMeter(4000), 0, v2g);
    assert.equal(on.carW, 4000 - 500 - CHARGE.residualPowerW);
    // a 2 kW charge dispatch for 60 s: the aggregator's power, not the surplus's 3.4 kW
    const cmd = dispatchCmd('d1', 2000, 60, T0 + 101_000);
    const d = run(on.mem, 101, 170, (t, carW) => ({ ...gridMeter(4000)(t, carW), commands: t === 101 ? [cmd] : [] }), on.carW, v2g);
    assert.ok(d.plans.slice(0, 59).every((p) => p.setpointW === 2000), `the dispatch runs: ${d.plans.slice(0, 59).map((p) => p.setpointW).join(',')}`);
    // surplus charging was switched off when the dispatch began (101): on again at 101 + guardS, not before
    const after = run(d.mem, 171, 500, gridMeter(4000), d.carW, v2g);
    const restart = after.plans.findIndex((p) => p.setpointW > 0) + 171;
    assert.equal(restart, 101 + CHARGE.guardS);
  });
});
