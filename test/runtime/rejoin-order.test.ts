/**
 * The rejoin chain in src/runtime/actuation.ts: grid-forming off answered, then the setpoint answered, then
 * the contactor; a step that does not answer stops it, and a newer plan cancels it (invariant 5).
 * Plans are made by hand here: the point is what the actuator does with one, whatever the core decided.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtualClock } from '../../hal/sim/virtual-clock.ts';
import { SimSite } from '../../hal/sim/site.ts';
import { loadConfig } from '../../src/config/load.ts';
import { Actuator } from '../../src/runtime/actuation.ts';
import { BoundedCaller } from '../../src/runtime/port-calls.ts';
import type { Plan } from '../../src/control/types.ts';
import { ControlledInverter, flush, stepUntil } from './stand-ins.ts';

const T = Date.parse('2026-11-23T18:00:00Z');

async function islanded() {
  const clock = new VirtualClock(T);
  const site = new SimSite({ clock, vehicle: { capacityWh: 50000, socPct: 70, maxChargeW: 11000, maxDischargeW: 11000 }, inverter: { ratedW: 11000, efficiency: 0.95 }, houseLoadW: 500 });
  const config = loadConfig(null, { timezone: 'UTC', uplink: { url: null } });
  const ports = site.ports();
  const inverter = new ControlledInverter(site.inverter, clock);
  for (const p of [inverter, ports.relays!, ports.gridSense!]) await p.open();
  const caller = new BoundedCaller(clock, () => 1500, () => {});
  const act = new Actuator({ ...ports, inverter }, caller, () => true);
  const plan = (o: Partial<Plan>): Plan => ({ setpointW: 0, gridForming: false, contactorClosed: true, loadTiersOn: [], ...o }) as Plan;
  // the house islanded: contactor open (confirmed), inverter forming
  act.apply(plan({ contactorClosed: false }), config);
  await stepUntil(clock, () => site.lines.contactorFeedback.read() === 0, 1000, 10);
  act.apply(plan({ contactorClosed: false, gridForming: true }), config);
  await stepUntil(clock, () => site.inverter.gridForming, 1000, 10);
  await inverter.refresh();
  return { clock, site, inverter, act, plan, config };
}

test('rejoining, the contactor closes only after grid-forming off has been answered', async () => {
  const r = await islanded();
  r.inverter.hang = new Set(['setGridForming']);
  r.act.apply(r.plan({ contactorClosed: true, gridForming: false }), r.config);
  await stepUntil(r.clock, () => false, 5000, 50);
  assert.equal(r.site.lines.contactor.read(), 0, 'the contactor stayed open while grid-forming off went unanswered');
  assert.equal(r.inverter.pending('setGridForming').length, 1);
  r.inverter.release();
  await flush();
  // a later plan (the core decides again once a fresh reading says the inverter stopped forming)
  r.act.apply(r.plan({ contactorClosed: true, gridForming: false }), r.config);
  assert.ok(await stepUntil(r.clock, () => r.site.lines.contactor.read() === 1, 3000, 10), 'closed once the inverter answered');
  const forming = r.inverter.calls.filter((c) => c.method === 'setGridForming' && c.value === false && c.answeredMs !== undefined);
  assert.ok(forming.length >= 1);
});

test('a newer plan that keeps the contactor open cancels a rejoin still waiting on the inverter', async () => {
  const r = await islanded();
  r.inverter.delayMs.setGridForming = 800;
  const writesBefore = r.site.lines.contactor.writes.length;
  r.act.apply(r.plan({ contactorClosed: true, gridForming: false }), r.config);
  await stepUntil(r.clock, () => false, 200, 50);
  // the grid went again before the inverter answered: the new plan keeps the house islanded
  r.act.apply(r.plan({ contactorClosed: false, gridForming: false }), r.config);
  await stepUntil(r.clock, () => false, 3000, 50);
  assert.deepEqual(r.site.lines.contactor.writes.slice(writesBefore).filter((l) => l === 1), [], 'the older rejoin never closed the contactor');
});
