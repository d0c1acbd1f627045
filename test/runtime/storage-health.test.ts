/**
 * The store's health reaches the core (invariant 6: nothing runs that cannot be settled): a store that
 * cannot write makes a new dispatch refused with `storage`, and its recovery is decided on at once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtualClock } from '../../hal/sim/virtual-clock.ts';
import { SimSite } from '../../hal/sim/site.ts';
import { loadConfig } from '../../src/config/load.ts';
import { Runtime } from '../../src/runtime.ts';
import type { DispatchResponse } from '../../src/control/types.ts';
import { drive, flush } from './stand-ins.ts';

const T = Date.parse('2026-11-23T18:00:00Z');

test('a store that cannot write: a dispatch is refused with reason storage; writable again, the next one is taken', async () => {
  const clock = new VirtualClock(T);
  const site = new SimSite({ clock, vehicle: { capacityWh: 50000, socPct: 85, maxChargeW: 11000, maxDischargeW: 11000 }, inverter: { ratedW: 11000, efficiency: 0.95 }, houseLoadW: 500 });
  const config = loadConfig(null, { timezone: 'UTC', uplink: { url: null }, vehicle: { departureTime: null } });
  let health: { writable: boolean; fault?: string } = { writable: false, fault: 'SQLITE_FULL: database or disk is full' };
  const listeners: ((h: typeof health) => void)[] = [];
  const store = {
    recordDispatch() {}, settleDispatch: () => [], recordEvent() {}, recordSample() {},
    health: () => health,
    onHealthChange: (fn: (h: typeof health) => void) => {
      listeners.push(fn);
      return () => undefined;
    },
  };
  const responses: DispatchResponse[] = [];
  const rt = new Runtime({ ports: site.ports(), config, store, onResponse: (r) => responses.push(r) });
  await drive(clock, rt.start());
  const submit = (id: string) => {
    const req = { id, powerW: -4000, durationS: 600 };
    rt.submit({ kind: 'dispatch', request: req, body: JSON.stringify(req), receivedMs: clock.nowMs(), source: 'device' });
  };
  submit('s-1');
  await flush();
  assert.deepEqual(responses.map((r) => [r.id, r.status, r.reason]), [['s-1', 'rejected', 'storage']]);
  assert.equal(site.inverter.setpointW, 0);
  health = { writable: true };
  for (const l of listeners) l(health);
  await flush();
  submit('s-2');
  await flush();
  assert.equal(responses.at(-1)?.id, 's-2');
  assert.notEqual(responses.find((r) => r.id === 's-2')?.status, 'rejected', JSON.stringify(responses));
  assert.equal(site.inverter.setpointW, -4000);
  await drive(clock, rt.stop());
});
