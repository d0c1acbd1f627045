/**
 * Start-up that knows where it is (issue 14, point 2) and ports that open late (issue 10): the island
 * state survives a crash in the store, a restart in mid-island neither closes the contactor nor charges
 * until the interlock allows, and a port that cannot be opened is retried with back-off.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VirtualClock } from '../../hal/sim/virtual-clock.ts';
import { SimSite } from '../../hal/sim/site.ts';
import type { RelayPort } from '../../hal/ports.ts';
import { loadConfig } from '../../src/config/load.ts';
import { openStore } from '../../src/store/index.ts';
import { Runtime } from '../../src/runtime.ts';
import type { CoreEvent } from '../../src/control/types.ts';
import { ProcessLife, drive, stepUntil } from './stand-ins.ts';

const T = Date.parse('2026-11-23T18:00:00Z');

test('restart mid-island closes the contactor and starts charging: after a crash while islanded, the new runtime waits for the interlock', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'wallbox-restart-'));
  const clock = new VirtualClock(T);
  const site = new SimSite({
    clock, vehicle: { capacityWh: 60000, socPct: 45, maxChargeW: 11000, maxDischargeW: 11000 },
    inverter: { ratedW: 11000, efficiency: 0.95 }, houseLoadW: 600, sheddableLoadsW: [400],
  });
  const reconnectDelayS = 60;
  const config = loadConfig(null, {
    timezone: 'UTC', uplink: { url: null }, storage: { path: join(dir, 'w.db') },
    vehicle: { departureTime: null, chargeStrategy: 'immediate', targetSocPct: 80 },
    backup: { reconnectDelayS, rejoinRampS: 0 },
  });
  // what the devices saw, from outside the runtime: contactor writes and setpoints, with clock times
  const contactorWrites: { atMs: number; closed: boolean; forming: boolean }[] = [];
  site.lines.contactor.watch((level) => contactorWrites.push({ atMs: clock.nowMs(), closed: level === 1, forming: site.inverter.gridForming }));
  const setpoints: { atMs: number; w: number }[] = [];
  const setPowerW = site.inverter.setPowerW.bind(site.inverter);
  site.inverter.setPowerW = (w: number) => {
    setpoints.push({ atMs: clock.nowMs(), w });
    return setPowerW(w);
  };
  site.startPhysics(1000);
  const events: CoreEvent[] = [];
  const stores: { close(): void }[] = [];
  try {
    // life 1: charging, then the grid goes and the house is islanded
    const life1 = new ProcessLife(clock);
    const store1 = openStore(join(dir, 'w.db'), { timezone: 'UTC' });
    stores.push(store1);
    const rt1 = new Runtime({ ports: life1.ports(site.ports()), config, store: life1.wrap(store1, 'throw') });
    await drive(clock, rt1.start());
    assert.ok(await stepUntil(clock, () => site.inverter.setpointW > 0, 10_000, 100), 'charging before the outage');
    site.setGrid(false);
    assert.ok(await stepUntil(clock, () => site.inverter.gridForming && !site.contactorClosed(), 10_000, 10), 'islanded: contactor open, inverter forming');
    await stepUntil(clock, () => false, 3000, 100);
    assert.equal(rt1.memorySnapshot().island.phase, 'islanded');

    // the process dies in mid-island; the grid comes back while nothing runs
    life1.kill();
    clock.advance(5000);
    site.setGrid(true);
    clock.advance(2000);
    const backAtMs = clock.nowMs();
    assert.ok(site.inverter.gridForming, 'the inverter is still forming: nothing told it otherwise');

    // life 2: a new runtime on the same store and the same devices
    const life2 = new ProcessLife(clock);
    const store2 = openStore(join(dir, 'w.db'), { timezone: 'UTC' });
    stores.push(store2);
    const writesBefore = contactorWrites.length;
    const setpointsBefore = setpoints.length;
    const rt2 = new Runtime({ ports: life2.ports(site.ports()), config, store: store2, onEvent: (e) => events.push(e) });
    await drive(clock, rt2.start());
    // until the grid has been back for the reconnect delay: no close, no charge
    await stepUntil(clock, () => false, (reconnectDelayS - 5) * 1000, 100);
    const closesEarly = contactorWrites.slice(writesBefore).filter((w) => w.closed);
    assert.deepEqual(closesEarly, [], 'the contactor stayed open before the reconnect delay');
    const chargesEarly = setpoints.slice(setpointsBefore).filter((s) => s.w > 0);
    assert.deepEqual(chargesEarly, [], 'no charging before the house is back on the grid');
    const startup = events.find((e) => e.kind === 'startup');
    assert.ok(startup, `an event says what start-up found (events: ${JSON.stringify(events)})`);
    assert.match(startup.message, /islanded/);
    assert.match(startup.message, /forming/);

    // then the interlock lets it rejoin: forming off first, the contactor closed with the inverter not forming
    assert.ok(await stepUntil(clock, () => site.contactorClosed(), 60_000, 100), 'the house rejoined the grid');
    const close = contactorWrites.slice(writesBefore).find((w) => w.closed)!;
    assert.ok(close.atMs - backAtMs >= reconnectDelayS * 1000, `closed ${close.atMs - backAtMs} ms after the grid came back (delay ${reconnectDelayS} s)`);
    assert.equal(close.forming, false, 'the inverter had stopped forming when the contactor closed');
    const firstCharge = setpoints.slice(setpointsBefore).find((s) => s.w > 0);
    assert.ok(!firstCharge || firstCharge.atMs >= close.atMs, 'charging only after the rejoin');
    await drive(clock, rt2.stop());
  } finally {
    site.stopPhysics();
    for (const s of stores) {
      try {
        s.close();
      } catch {
        // a store closed twice
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a port that cannot be opened is retried with back-off (1 s doubling); its fault is in status and clears when it opens', async () => {
  const clock = new VirtualClock(T);
  const site = new SimSite({ clock, vehicle: { capacityWh: 50000, socPct: 85, maxChargeW: 11000, maxDischargeW: 11000 }, inverter: { ratedW: 11000, efficiency: 0.95 }, houseLoadW: 500 });
  const config = loadConfig(null, { timezone: 'UTC', uplink: { url: null }, vehicle: { departureTime: null } });
  const ports = site.ports();
  const inner = ports.relays!;
  const attempts: number[] = [];
  const relays: RelayPort = new Proxy(inner, {
    get: (t, prop) => {
      if (prop === 'open')
        return () => {
          attempts.push(clock.nowMs() - T);
          return attempts.length <= 2 ? Promise.reject(new Error('GPIO 17 (contactor): EBUSY')) : t.open();
        };
      const v = Reflect.get(t, prop, t);
      return typeof v === 'function' ? v.bind(t) : v;
    },
  });
  const events: CoreEvent[] = [];
  const rt = new Runtime({ ports: { ...ports, relays }, config, onEvent: (e) => events.push(e) });
  await drive(clock, rt.start());
  const st = rt.status();
  assert.equal(st.mode, 'fault');
  assert.equal(st.setpointW, 0);
  assert.ok(events.some((e) => /relays failed to open: .*EBUSY/.test(e.message)), JSON.stringify(events));

  assert.ok(await stepUntil(clock, () => attempts.length >= 3, 10_000, 50), `opened again (attempts at ${attempts.join(', ')} ms)`);
  assert.ok(st.portFaults.some((f) => /relays failed to open: GPIO 17 \(contactor\): EBUSY/.test(f)), JSON.stringify(st.portFaults));
  assert.match(st.fault ?? '', /EBUSY/);
  assert.deepEqual(attempts.map((a) => Math.round(a / 100) * 100), [0, 1000, 3000], 'attempts 1 s then 2 s apart');
  await stepUntil(clock, () => false, 500, 50);
  assert.deepEqual(rt.status().portFaults, [], 'the open fault cleared');
  assert.ok(events.some((e) => /relays opened after 3 attempts/.test(e.message)), JSON.stringify(events.map((e) => e.message)));
  // the core leaves fault after control.faultClearS of healthy inputs
  assert.ok(await stepUntil(clock, () => rt.status().mode !== 'fault', (config.control.faultClearS + 3) * 1000, 100), `left fault (${JSON.stringify(rt.status())})`);
  await drive(clock, rt.stop());
});

test('the back-off of a port that keeps failing to open doubles up to 60 s', async () => {
  const clock = new VirtualClock(T);
  const site = new SimSite({ clock, vehicle: { capacityWh: 50000, socPct: 85, maxChargeW: 11000, maxDischargeW: 11000 }, inverter: { ratedW: 11000, efficiency: 0.95 }, houseLoadW: 500 });
  const config = loadConfig(null, { timezone: 'UTC', uplink: { url: null }, vehicle: { departureTime: null } });
  const ports = site.ports();
  const attempts: number[] = [];
  const inverter = new Proxy(ports.inverter, {
    get: (t, prop) => {
      if (prop === 'open')
        return () => {
          attempts.push(clock.nowMs() - T);
          return Promise.reject(new Error('Modbus TCP 127.0.0.1:502: ECONNREFUSED'));
        };
      const v = Reflect.get(t, prop, t);
      return typeof v === 'function' ? v.bind(t) : v;
    },
  });
  const rt = new Runtime({ ports: { ...ports, inverter }, config });
  await drive(clock, rt.start());
  await stepUntil(clock, () => attempts.length >= 9, 400_000, 500);
  const gaps = attempts.slice(1).map((a, i) => Math.round((a - attempts[i]) / 1000));
  assert.deepEqual(gaps, [1, 2, 4, 8, 16, 32, 60, 60]);
  assert.equal(rt.status().mode, 'fault');
  assert.match(rt.status().portFaults.join(' '), /inverter failed to open: .*ECONNREFUSED/);
  await drive(clock, rt.stop());
});

test('a saved island state that cannot be used is named in the start-up event and not acted on', async () => {
  const clock = new VirtualClock(T);
  const site = new SimSite({ clock, vehicle: { capacityWh: 50000, socPct: 85, maxChargeW: 11000, maxDischargeW: 11000 }, inverter: { ratedW: 11000, efficiency: 0.95 }, houseLoadW: 500 });
  const config = loadConfig(null, { timezone: 'UTC', uplink: { url: null }, vehicle: { departureTime: null } });
  const saved: { json: string; atMs: number }[] = [];
  const store = {
    recordDispatch() {}, settleDispatch: () => [], recordEvent() {}, recordSample() {},
    loadIsland: () => ({ json: '{"phase":"floating","sinceMs":1}', atMs: T - 1000 }),
    saveIsland: (json: string, atMs: number) => void saved.push({ json, atMs }),
  };
  const events: CoreEvent[] = [];
  const rt = new Runtime({ ports: site.ports(), config, store, onEvent: (e) => events.push(e) });
  await drive(clock, rt.start());
  // the core's own start-up event may come first (the board's lines are acted on before the devices open)
  const startup = events.filter((e) => e.kind === 'startup').map((e) => e.message).join('\n');
  assert.match(startup, /unknown phase "floating"; starting without it/);
  assert.ok(events.some((e) => e.kind === 'startup' && e.severity === 'warning' && /floating/.test(e.message)), 'a lost island state is a warning');
  assert.equal(rt.memorySnapshot().island.phase, 'on-grid');
  assert.equal(saved.length, 1, 'the island state in force is saved once');
  assert.equal(JSON.parse(saved[0].json).phase, 'on-grid');
  await stepUntil(clock, () => false, 5000, 100);
  assert.equal(saved.length, 1, 'and not again while it does not change');
  await drive(clock, rt.stop());
});

test('a usual start is one start-up event in the event list; the raw findings go to the log', async () => {
  const clock = new VirtualClock(T);
  const site = new SimSite({ clock, vehicle: { capacityWh: 50000, socPct: 85, maxChargeW: 11000, maxDischargeW: 11000 }, inverter: { ratedW: 11000, efficiency: 0.95 }, houseLoadW: 500 });
  const config = loadConfig(null, { timezone: 'UTC', uplink: { url: null }, vehicle: { departureTime: null } });
  const events: CoreEvent[] = [];
  const logs: string[] = [];
  const rt = new Runtime({ ports: site.ports(), config, onEvent: (e) => events.push(e), log: (_l, m) => logs.push(m) });
  await drive(clock, rt.start());
  await stepUntil(clock, () => false, 3000, 100);
  const startup = events.filter((e) => e.kind === 'startup');
  assert.equal(startup.length, 1, startup.map((e) => e.message).join('\n'));
  assert.equal(startup[0]!.severity, 'info');
  assert.match(startup[0]!.message, /resuming in on-grid/);
  assert.ok(logs.some((m) => /^start-up found: no saved island state/.test(m)), logs.join('\n'));
  await drive(clock, rt.stop());
});
