/**
 * Regression: state `energy` (and Home Assistant's `total_increasing` energy sensors built on it) started
 * at 0 Wh on every start of the daemon, so each restart looked like a meter replaced. The counters now
 * carry on from the store's last meter checkpoint, plus what the inverter's own counters moved while the
 * runtime was down. Expected figures come from the simulated inverter's counters, not from the runtime.
 * Real SQLite files, the simulated site on the virtual clock.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtualClock } from '../../hal/sim/virtual-clock.ts';
import { SimSite } from '../../hal/sim/site.ts';
import { loadConfig } from '../../src/config/load.ts';
import { Runtime } from '../../src/runtime.ts';
import { ProcessLife, drive, stepUntil } from './stand-ins.ts';
import { storeFiles } from './store-files.ts';

const T = Date.parse('2026-11-23T18:00:00Z');

function setup(t: { after(fn: () => void): void }) {
  const files = storeFiles(t, 'totals');
  const clock = new VirtualClock(T);
  // a car below its 80 % target charges at once (strategy immediate): energy flows from the first tick
  const site = new SimSite({ clock, vehicle: { capacityWh: 60000, socPct: 40, maxChargeW: 11000, maxDischargeW: 11000 }, inverter: { ratedW: 11000, efficiency: 0.95 }, houseLoadW: 500 });
  const config = loadConfig(null, { timezone: 'UTC', uplink: { url: null }, storage: { path: files.path }, vehicle: { departureTime: null, chargeStrategy: 'immediate' } });
  site.startPhysics(1000);
  t.after(() => site.stopPhysics());
  return { clock, site, config, open: files.open };
}

test('energy totals after a clean restart: they carry on, and count what flowed while the runtime was down', async (t) => {
  const { clock, site, config, open } = setup(t);
  const importedAtStart = site.inverter.importedWh;
  const rt1 = new Runtime({ ports: site.ports(), config, store: open() });
  await drive(clock, rt1.start());
  await stepUntil(clock, () => false, 10 * 60_000, 1000);
  await drive(clock, rt1.stop());
  const first = rt1.totals.importedWh;
  const flowed1 = site.inverter.importedWh - importedAtStart;
  assert.ok(first > 1000, `ten minutes of charging counted: ${first} Wh`);
  assert.ok(Math.abs(first - flowed1) < 50, `runtime ${first} Wh, inverter ${flowed1} Wh`);

  // energy that moves while no runtime runs (the inverter told to charge by someone else, or left running
  // by a crash): the inverter's own counter moves, and the next start must count it
  site.inverter.setPowerW(3000);
  await stepUntil(clock, () => false, 60_000, 1000);
  const movedWhileDown = site.inverter.importedWh - importedAtStart - flowed1;
  assert.ok(movedWhileDown > 30, `moved while down: ${movedWhileDown} Wh`);

  const rt2 = new Runtime({ ports: site.ports(), config, store: open() });
  await drive(clock, rt2.start());
  const second = rt2.totals.importedWh;
  const flowedAll = site.inverter.importedWh - importedAtStart;
  assert.ok(second >= first, `after the restart ${second} Wh, before ${first} Wh: never back to 0`);
  assert.ok(Math.abs(second - flowedAll) < 60, `after the restart ${second} Wh, the inverter's counter moved ${flowedAll} Wh in all`);
  await drive(clock, rt2.stop());
});

test('energy totals after a crash: they carry on from the last checkpoint, never from 0', async (t) => {
  const { clock, site, config, open } = setup(t);
  const importedAtStart = site.inverter.importedWh;
  const life = new ProcessLife(clock);
  const store1 = open();
  const rt1 = new Runtime({ ports: life.ports(site.ports()), config, store: life.wrap(store1, 'throw') });
  await drive(clock, rt1.start());
  await stepUntil(clock, () => false, 10 * 60_000, 1000);
  const before = rt1.totals.importedWh;
  life.kill();
  store1.db.close();

  const rt2 = new Runtime({ ports: site.ports(), config, store: open() });
  await drive(clock, rt2.start());
  const after = rt2.totals.importedWh;
  const flowed = site.inverter.importedWh - importedAtStart;
  assert.ok(after >= before - 1e-6, `after the crash ${after} Wh, before ${before} Wh`);
  assert.ok(Math.abs(after - flowed) < 60, `after the crash ${after} Wh, the inverter's counter moved ${flowed} Wh`);
  await drive(clock, rt2.stop());
});
