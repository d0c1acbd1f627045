/**
 * The ledger agrees with what happened (issue 15, point 9): a clean stop settles the running dispatch
 * with a reason of its own; a dispatch whose window is still open when the device comes back resumes
 * and is settled once at its end with the downtime stated; a dispatch cancelled before its start has a
 * ledger entry whose end is not before its start, the same in the MQTT message and the database.
 * Real SQLite files, the simulated site on the virtual clock.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtualClock } from '../../hal/sim/virtual-clock.ts';
import { SimSite } from '../../hal/sim/site.ts';
import { loadConfig } from '../../src/config/load.ts';
import type { Store } from '../../src/store/index.ts';
import { Runtime } from '../../src/runtime.ts';
import { isoUtc } from '../../src/contract.ts';
import type { DispatchResponse } from '../../src/control/types.ts';
import { ProcessLife, drive, stepUntil } from './stand-ins.ts';
import { storeFiles } from './store-files.ts';

const T = Date.parse('2026-11-23T18:00:00Z');
const EFF = 0.95;
const POWER_W = -7000;

function setup(t: { after(fn: () => void): void }) {
  const { dir, path, open } = storeFiles(t, 'ledger');
  const clock = new VirtualClock(T);
  const site = new SimSite({
    clock, vehicle: { capacityWh: 60000, socPct: 85, maxChargeW: 11000, maxDischargeW: 11000 },
    inverter: { ratedW: 11000, efficiency: EFF }, houseLoadW: 500,
  });
  const config = loadConfig(null, { timezone: 'UTC', uplink: { url: null }, storage: { path }, vehicle: { departureTime: null } });
  site.startPhysics(1000);
  t.after(() => site.stopPhysics());
  const submit = (rt: Runtime, req: Record<string, unknown>) =>
    rt.submit({ kind: 'dispatch', request: req as never, body: JSON.stringify(req), receivedMs: clock.nowMs(), source: 'device' });
  const ledgerMsgs = (s: Store) => s.outbox.pending(10_000).filter((m) => m.topic === 'ledger').map((m) => m.payload as Record<string, unknown>);
  return { dir, clock, site, config, open, submit, ledgerMsgs };
}

test('a clean stop during a dispatch publishes nothing and the next start settles it as crashed: now settled at the stop with reason stopped', async (t) => {
  const { clock, site, config, open, submit, ledgerMsgs } = setup(t);
  const store1 = open();
  const exportedBefore = site.inverter.exportedWh;
  const rt1 = new Runtime({ ports: site.ports(), config, store: store1 });
  await drive(clock, rt1.start());
  submit(rt1, { id: 'stop-1', powerW: POWER_W, durationS: 600 });
  assert.ok(await stepUntil(clock, () => site.inverter.setpointW === POWER_W, 5000, 100), 'discharging');
  await stepUntil(clock, () => false, 4500, 100);
  const stopAtMs = clock.nowMs();
  await drive(clock, rt1.stop());
  // what physically flowed out on the AC side, from the simulated inverter's own counter
  const flowedWh = site.inverter.exportedWh - exportedBefore;

  const rows = store1.ledger();
  assert.equal(rows.length, 1, 'settled at the stop, before the next start');
  const [row] = rows;
  assert.equal(row.dispatchId, 'stop-1');
  assert.equal(row.interrupted, false);
  assert.ok(row.endMs <= clock.nowMs() && row.endMs >= stopAtMs, `end ${isoUtc(row.endMs)} at the stop`);
  assert.ok(row.exportedWh <= flowedWh + 1e-6, `booked ${row.exportedWh} Wh, only ${flowedWh} Wh flowed`);
  assert.ok(row.exportedWh >= flowedWh - (7000 / 3600) * 1.5, `booked ${row.exportedWh} Wh of ${flowedWh} Wh (one tick short at most)`);
  const msgs = ledgerMsgs(store1);
  assert.equal(msgs.length, 1);
  assert.equal(msgs[0].reason, 'stopped');
  assert.equal(msgs[0].end, isoUtc(row.endMs));
  const responses = store1.outbox.pending(10_000).filter((m) => m.topic === 'dispatch/response').map((m) => m.payload);
  assert.ok(responses.some((p) => p.id === 'stop-1' && p.status === 'completed' && p.reason === 'stopped'), JSON.stringify(responses));
  store1.close();

  // the next start finds it settled: no second settlement, no `interrupted`
  clock.advance(5000);
  const store2 = open();
  const rt2 = new Runtime({ ports: site.ports(), config, store: store2 });
  await drive(clock, rt2.start());
  await stepUntil(clock, () => false, 3000, 100);
  assert.equal(store2.ledger().length, 1);
  assert.equal(store2.ledger()[0].interrupted, false);
  assert.equal(ledgerMsgs(store2).length, 1, 'one ledger message for the dispatch');
  assert.equal(site.inverter.setpointW, 0, 'the stopped dispatch does not run again');
  await drive(clock, rt2.stop());
});

test('a crash ends the aggregator\'s dispatch: a 90 s dispatch dropped after 11 s and rebuilt at once resumes and is settled once at its end, with the downtime', async (t) => {
  const { clock, site, config, open, submit, ledgerMsgs } = setup(t);
  const life1 = new ProcessLife(clock);
  const store1 = open();
  const rt1 = new Runtime({ ports: life1.ports(site.ports()), config, store: life1.wrap(store1, 'throw') });
  await drive(clock, rt1.start());
  const startMs = clock.nowMs();
  submit(rt1, { id: 'crash-1', powerW: POWER_W, durationS: 90 });
  assert.ok(await stepUntil(clock, () => site.inverter.setpointW === POWER_W, 5000, 100), 'discharging');
  await stepUntil(clock, () => false, 11_000 - (clock.nowMs() - startMs), 100);
  life1.kill();
  store1.db.close();
  const exportedAtKill = site.inverter.exportedWh;

  // rebuilt at once on the same store and devices
  const responses: DispatchResponse[] = [];
  const store2 = open();
  const rt2 = new Runtime({ ports: site.ports(), config, store: store2, onResponse: (r) => responses.push(r) });
  await drive(clock, rt2.start());
  assert.equal(store2.ledger().length, 0, 'not settled at the restart: its window is still open');
  const live = rt2.memorySnapshot().dispatches.find((r) => r.id === 'crash-1');
  assert.ok(live && (live.status === 'active' || live.status === 'curtailed'), `resumed: ${JSON.stringify(live)}`);
  assert.equal(live.endMs, startMs + 90_000, 'same end');
  assert.ok(await stepUntil(clock, () => site.inverter.setpointW === POWER_W, 5000, 100), 'delivering again');

  assert.ok(await stepUntil(clock, () => store2.ledger().length > 0, 90_000, 500), 'settled at its end');
  await stepUntil(clock, () => false, 5000, 500);
  const rows = store2.ledger();
  assert.equal(rows.length, 1);
  const [row] = rows;
  assert.equal(row.status, 'completed');
  assert.equal(row.interrupted, false);
  assert.equal(row.endMs, startMs + 90_000, 'ended at its planned end');
  assert.ok(row.exportedWh > exportedAtKill - 0 && row.exportedWh > (7000 * EFF * 60) / 3600, `energy after the restart counted too: ${row.exportedWh} Wh`);
  const msgs = ledgerMsgs(store2).filter((m) => m.id === 'crash-1');
  assert.equal(msgs.length, 1, 'one ledger message');
  assert.equal(typeof msgs[0].downtimeS, 'number', `downtime stated: ${JSON.stringify(msgs[0])}`);
  assert.ok((msgs[0].downtimeS as number) >= 0 && (msgs[0].downtimeS as number) <= 10);
  assert.equal(store2.dispatch('crash-1')?.downtimeS, msgs[0].downtimeS === undefined ? undefined : store2.dispatch('crash-1')?.downtimeS);
  assert.ok(responses.some((r) => r.id === 'crash-1' && r.status === 'completed' && r.reason === undefined), JSON.stringify(responses));
  await drive(clock, rt2.stop());
});

test('a dispatch cancelled before its start has a ledger message whose end is before its start: now start = end = the cancel time, the same in the database', async (t) => {
  const { clock, config, open, site, submit, ledgerMsgs } = setup(t);
  const store = open();
  const rt = new Runtime({ ports: site.ports(), config, store });
  await drive(clock, rt.start());
  submit(rt, { id: 'early-1', powerW: POWER_W, durationS: 600, startMs: clock.nowMs() + 3600_000 });
  await stepUntil(clock, () => false, 2000, 100);
  const cancelAtMs = clock.nowMs();
  rt.submit({ kind: 'cancel', id: 'early-1', receivedMs: cancelAtMs, source: 'device' } as never);
  assert.ok(await stepUntil(clock, () => store.ledger().length > 0, 3000, 100), 'settled');
  const [row] = store.ledger();
  const [msg] = ledgerMsgs(store);
  assert.ok(row.endMs >= row.startMs, 'database: end not before start');
  assert.ok(Date.parse(msg.end as string) >= Date.parse(msg.start as string), `message: end ${msg.end} not before start ${msg.start}`);
  assert.equal(msg.start, isoUtc(row.startMs), 'start agrees');
  assert.equal(msg.end, isoUtc(row.endMs), 'end agrees');
  assert.ok(Math.abs(row.endMs - cancelAtMs) <= 1000 && row.startMs === row.endMs, 'start = end = the cancel time');
  assert.equal(row.exportedWh, 0);
  await drive(clock, rt.stop());
});
