/**
 * Old commands never run twice (issue 15, point 8): finished dispatches come back from the store at a
 * start, so an id that already ran (a retained message delivered again at every start, or the same
 * dispatch re-sent after a kill -9) is answered and never drives the car again. Real SQLite file, the
 * simulated site on the virtual clock.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtualClock } from '../../hal/sim/virtual-clock.ts';
import { SimSite } from '../../hal/sim/site.ts';
import { loadConfig } from '../../src/config/load.ts';
import { Runtime } from '../../src/runtime.ts';
import type { DispatchResponse } from '../../src/control/types.ts';
import { ProcessLife, drive, stepUntil } from './stand-ins.ts';
import { storeFiles } from './store-files.ts';

test('finished dispatches are not reloaded after a restart: a re-sent id of a finished dispatch runs again (retained message, re-send after kill -9)', async (t) => {
  const files = storeFiles(t, 'finished');
  const clock = new VirtualClock(Date.parse('2026-11-23T18:00:00Z'));
  const site = new SimSite({
    clock, vehicle: { capacityWh: 60000, socPct: 85, maxChargeW: 11000, maxDischargeW: 11000 },
    inverter: { ratedW: 11000, efficiency: 0.95 }, houseLoadW: 500,
  });
  const config = loadConfig(null, { timezone: 'UTC', uplink: { url: null }, storage: { path: files.path }, vehicle: { departureTime: null } });
  const stores = [files.open()];
  site.startPhysics(1000);
  t.after(() => site.stopPhysics());
  const req = { id: 'retained-1', powerW: -5000, durationS: 20 };
  const submit = (rt: Runtime) => rt.submit({ kind: 'dispatch', request: req as never, body: JSON.stringify(req), receivedMs: clock.nowMs(), source: 'device' });

  const life = new ProcessLife(clock);
  const rt1 = new Runtime({ ports: life.ports(site.ports()), config, store: life.wrap(stores[0], 'throw') });
  await drive(clock, rt1.start());
  submit(rt1);
  assert.ok(await stepUntil(clock, () => site.inverter.setpointW === -5000, 5000, 100), 'the first delivery runs');
  assert.ok(await stepUntil(clock, () => stores[0].ledger().length === 1, 40_000, 500), 'settled at its end');
  await stepUntil(clock, () => false, 3000, 500);
  life.kill();
  stores[0].db.close();

  // the same message again after each of three starts: answered, never run
  for (let start = 0; start < 3; start++) {
    const store = files.open();
    stores.push(store);
    const responses: DispatchResponse[] = [];
    const life2 = new ProcessLife(clock);
    const rt = new Runtime({ ports: life2.ports(site.ports()), config, store: life2.wrap(store, 'throw'), onResponse: (r) => responses.push(r) });
    await drive(clock, rt.start());
    const exportedBefore = site.inverter.exportedWh;
    submit(rt);
    await stepUntil(clock, () => false, 5000, 100);
    assert.equal(site.inverter.setpointW, 0, `start ${start + 1}: the finished dispatch does not drive the car again`);
    assert.ok(site.inverter.exportedWh - exportedBefore < 0.5, `start ${start + 1}: nothing exported (${site.inverter.exportedWh - exportedBefore} Wh)`);
    const answer = responses.find((r) => r.id === 'retained-1');
    assert.equal(answer?.status, 'completed', JSON.stringify(responses));
    assert.equal(answer?.reason, 'already_finished');
    assert.equal(store.ledger().length, 1, 'one ledger row, however often it is re-sent');
    life2.kill();
    store.db.close();
  }
});
