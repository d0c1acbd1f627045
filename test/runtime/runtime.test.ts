import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtualClock } from '../../hal/sim/virtual-clock.ts';
import { SimSite } from '../../hal/sim/site.ts';
import { loadConfig } from '../../src/config/load.ts';
import { Runtime } from '../../src/runtime.ts';
import type { DispatchResponse } from '../../src/control/types.ts';

const T = Date.parse('2026-11-23T18:00:00Z');

function setup() {
  const clock = new VirtualClock(T);
  const site = new SimSite({ clock, vehicle: { capacityWh: 50000, socPct: 85, maxChargeW: 11000, maxDischargeW: 11000 }, inverter: { ratedW: 11000, efficiency: 0.95 }, houseLoadW: 500, sheddableLoadsW: [300] });
  const config = loadConfig(null, { timezone: 'UTC', vehicle: { departureTime: null }, uplink: { url: null } });
  return { clock, site, config };
}

test('a dispatch is decided at once, not on the next tick', async () => {
  const { clock, site, config } = setup();
  const responses: DispatchResponse[] = [];
  const rt = new Runtime({ ports: site.ports(), config, onResponse: (r) => responses.push(r) });
  await rt.start();
  clock.advance(300);
  const req = { id: 'now-1', powerW: -4000, durationS: 60 };
  rt.submit({ kind: 'dispatch', request: req, body: JSON.stringify(req), receivedMs: clock.nowMs(), source: 'device' });
  await rt.settled();
  assert.deepEqual(responses.map((r) => r.status), ['accepted', 'active']);
  assert.equal(site.inverter.setpointW, -4000);
  assert.equal(clock.nowMs(), T + 300, 'no clock time passed');
  await rt.stop();
  assert.equal(site.inverter.setpointW, 0, 'stop leaves the power stage at zero');
});

test('ports that throw and reject never stop the loop; the fault shows and power goes to zero', async () => {
  const { clock, site, config } = setup();
  const ports = site.ports();
  const inverter = ports.inverter;
  let broken = false;
  const failing = Object.assign(Object.create(Object.getPrototypeOf(inverter)), inverter, {
    refresh: () => (broken ? Promise.reject(new Error('bus exploded')) : inverter.refresh()),
    setPowerW: (w: number) => (broken ? (() => { throw new Error('sync throw'); })() : inverter.setPowerW(w)),
    state: () => inverter.state(),
  });
  const unhandled: unknown[] = [];
  const onUnhandled = (e: unknown) => unhandled.push(e);
  process.on('unhandledRejection', onUnhandled);
  const rt = new Runtime({ ports: { ...ports, inverter: failing }, config });
  await rt.start();
  const req = { id: 'x', powerW: -4000, durationS: 600 };
  rt.submit({ kind: 'dispatch', request: req, body: JSON.stringify(req), receivedMs: clock.nowMs(), source: 'device' });
  await rt.settled();
  broken = true;
  for (let i = 0; i < 20; i++) {
    clock.advance(1000);
    await rt.settled();
  }
  const st = rt.status();
  assert.ok(st.ticks >= 20, 'still ticking');
  assert.equal(st.mode, 'fault', 'a reading that stopped updating became a fault');
  assert.equal(st.setpointW, 0);
  await rt.stop();
  await new Promise((r) => setImmediate(r));
  process.off('unhandledRejection', onUnhandled);
  assert.deepEqual(unhandled, []);
});

test('a port that fails to open leaves the runtime running in fault, saying why', async () => {
  const { site, config } = setup();
  const ports = site.ports();
  const relays = Object.assign(Object.create(Object.getPrototypeOf(ports.relays!)), ports.relays!, { open: () => Promise.reject(new Error('GPIO 17 (contactor): EBUSY')) });
  const events: string[] = [];
  const rt = new Runtime({ ports: { ...ports, relays }, config, onEvent: (e) => events.push(e.message) });
  await rt.start();
  assert.equal(rt.status().mode, 'fault');
  assert.ok(events.some((m) => /EBUSY/.test(m)), JSON.stringify(events));
  await rt.stop();
});
