/**
 * One meaning for every figure the aggregator sees (issue 15, point 9): `acceptedW` and `flex` are AC
 * power at the connection point, with the efficiency model the simulator and the metering use. A car
 * that can give 11 kW on its side (DC) through a 95 % inverter delivers 10,450 W on the AC side; the
 * device must not promise 11,000 W. The oracle is the simulated inverter's measured AC power.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtualClock } from '../../hal/sim/virtual-clock.ts';
import { SimSite } from '../../hal/sim/site.ts';
import { loadConfig } from '../../src/config/load.ts';
import { Runtime } from '../../src/runtime.ts';
import type { DispatchResponse } from '../../src/control/types.ts';
import { drive, stepUntil } from '../runtime/stand-ins.ts';

const T = Date.parse('2026-11-23T18:00:00Z');

test('acceptedW promises what the inverter cannot deliver on the AC side: powerW -999999 is accepted at what the AC side really gives', async () => {
  const clock = new VirtualClock(T);
  const site = new SimSite({ clock, vehicle: { capacityWh: 60000, socPct: 85, maxChargeW: 11000, maxDischargeW: 11000 }, inverter: { ratedW: 11000, efficiency: 0.95 }, houseLoadW: 500 });
  const config = loadConfig(null, { timezone: 'UTC', uplink: { url: null }, vehicle: { departureTime: null } });
  const responses: DispatchResponse[] = [];
  let flexMaxDischargeW: number | undefined;
  const rt = new Runtime({ ports: site.ports(), config, onResponse: (r) => responses.push(r), onTick: (p) => (flexMaxDischargeW = p.flex.maxDischargeW) });
  site.startPhysics(1000);
  try {
    await drive(clock, rt.start());
    await stepUntil(clock, () => false, 2000, 100);
    const req = { id: 'ac-1', powerW: -999999, durationS: 600 };
    rt.submit({ kind: 'dispatch', request: req, body: JSON.stringify(req), receivedMs: clock.nowMs(), source: 'device' });
    assert.ok(await stepUntil(clock, () => responses.some((r) => r.id === 'ac-1' && r.status === 'active'), 5000, 100));
    await stepUntil(clock, () => false, 10_000, 500);
    const acW = -site.inverter.acPowerW;
    const accepted = -(responses.find((r) => r.id === 'ac-1' && r.status === 'accepted')?.acceptedW ?? 0);
    // independent figure: 11 kW on the car's side times the inverter's 95 %
    assert.ok(Math.abs(acW - 11000 * 0.95) < 50, `AC power settled at ${acW} W`);
    assert.ok(Math.abs(accepted - acW) <= Math.max(200, acW * 0.03), `acceptedW ${accepted} W, AC side delivers ${acW} W`);
    assert.ok(flexMaxDischargeW !== undefined && flexMaxDischargeW <= acW + Math.max(200, acW * 0.03), `flex.maxDischargeW ${flexMaxDischargeW} W, AC side delivers ${acW} W`);
    assert.ok(!responses.some((r) => r.id === 'ac-1' && r.status === 'curtailed'), 'delivering what was promised: no curtailment');
  } finally {
    site.stopPhysics();
    await drive(clock, rt.stop());
  }
});
