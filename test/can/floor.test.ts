/**
 * The real control core and runtime driving the CAN driver, which plays the battery to the simulated hybrid
 * inverter on the in-memory bus: a dispatch into the discharge floor. The inverter decides how much it draws,
 * but only within the advertised discharge limit, which follows the runtime's setpoint: it reaches 0 A at the
 * floor and stays there. Checked on the frames the inverter received, against the car's own SoC.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeFrame } from '../../hal/inverter/can/codec.ts';
import { createCanInverter, parseCanConfig } from '../../hal/inverter/can/index.ts';
import { startSimCanHome } from '../../hal/sim/can-home.ts';
import { SimSite } from '../../hal/sim/site.ts';
import { VirtualClock } from '../../hal/sim/virtual-clock.ts';
import { loadConfig } from '../../src/config/load.ts';
import { Runtime } from '../../src/runtime.ts';
import type { DispatchResponse } from '../../src/control/types.ts';
import { canSection } from './harness.ts';

const T = Date.parse('2026-11-23T18:00:00Z');
const FLOOR_PCT = 50;

test('a dispatch into the floor: the discharge limit follows the setpoint to 0 A at the floor and stays there; never 0 V', async () => {
  const clock = new VirtualClock(T);
  const site = new SimSite({ clock, vehicle: { capacityWh: 20000, socPct: 53, maxChargeW: 11000, maxDischargeW: 11000 }, inverter: { ratedW: 11000, efficiency: 0.95, islandCapable: false }, houseLoadW: 500 });
  const config = loadConfig(null, { timezone: 'UTC', vehicle: { dischargeFloorPct: FLOOR_PCT, departureTime: null, v2gEnabled: true }, backup: { enabled: false }, uplink: { url: null } });
  const cfg = parseCanConfig(canSection({ interface: 'sim', profile: 'pylontech-1.2', ratedW: 11000, pack: { maxChargeA: 250, maxDischargeA: 250 } }));
  const home = await startSimCanHome(site, clock, cfg, { efficiency: 0.95 });
  const limits: { atMs: number; socPct: number; dis: number; cha: number; cvl: number }[] = [];
  home.bus.tap((f, from) => {
    if (from !== 'bms' || f.id !== 0x351) return;
    const d = decodeFrame(f, cfg.profile);
    assert.ok(d.ok);
    limits.push({ atMs: f.atMs!, socPct: site.car.socPct, dis: d.values.dischargeCurrentLimitA as number, cha: d.values.chargeCurrentLimitA as number, cvl: d.values.chargeVoltageLimitV as number });
  });
  const inverter = createCanInverter(cfg, { clock, car: home.facts, efficiency: 0.95, socMaxAgeMs: 30_000, channel: home.channel });
  const responses: DispatchResponse[] = [];
  const rt = new Runtime({ ports: { ...site.ports(), inverter }, config, onResponse: (r) => responses.push(r) });
  site.startPhysics(250);
  await rt.start();
  const req = { id: 'can-floor-1', powerW: -8000, durationS: 3600 };
  rt.submit({ kind: 'dispatch', request: req, body: JSON.stringify(req), receivedMs: clock.nowMs(), source: 'device' });
  let minSoc = site.car.socPct;
  for (let s = 0; s < 1800; s++) {
    clock.advance(1000);
    await rt.settled();
    minSoc = Math.min(minSoc, site.car.socPct);
  }
  await rt.stop();
  site.stopPhysics();
  await home.stop();

  assert.ok(responses.some((r) => r.id === 'can-floor-1' && r.status === 'active'));
  assert.ok(responses.some((r) => r.status === 'curtailed' && r.reason === 'floor'), JSON.stringify(responses.map((r) => [r.status, r.reason])));
  const discharging = limits.filter((l) => l.dis > 0);
  assert.ok(discharging.length > 100, 'the inverter was allowed to discharge while above the floor');
  // 3 % of 20 kWh at ~8 kW AC: about 4.5 minutes of discharge before the floor
  const firstZero = limits.findIndex((l, i) => i > limits.indexOf(discharging[0]) && l.dis === 0);
  assert.ok(firstZero > 0, 'the discharge limit reached 0 A');
  assert.ok(limits[firstZero].socPct <= FLOOR_PCT + 0.1, `it reached 0 A at the floor, not before (SoC ${limits[firstZero].socPct} %)`);
  const after = limits.slice(firstZero);
  assert.ok(after.length > 1000, `${after.length} frame sets after`);
  assert.ok(after.every((l) => l.dis === 0), 'and stayed there');
  assert.ok(minSoc >= FLOOR_PCT - 0.01, `the car never went below the floor (min ${minSoc} %)`);
  assert.ok(limits.every((l) => l.cvl === 55.2), 'the charge voltage limit is never 0 V');
  assert.equal(home.inverter.zeroVoltageSeen, false);
});
