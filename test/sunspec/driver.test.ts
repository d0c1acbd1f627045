/**
 * The SunSpec driver against the simulated SunSpec server over real Modbus TCP on 127.0.0.1.
 * Time for the driver's backoff and the server's reversion watchdog comes from a virtual clock, so no
 * test waits on the wall clock except the one real-time reversion check (bounded polling).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VirtualClock } from '../../hal/sim/virtual-clock.ts';
import { systemClock } from '../../hal/system-clock.ts';
import { decodeRaw } from '../../hal/inverter/sunspec/codec.ts';
import { SunspecInverter } from '../../hal/inverter/sunspec/driver.ts';
import { createSunspecInverter } from '../../hal/inverter/sunspec/index.ts';
import { freePort } from '../helpers/broker.ts';
import { GRID_ON, rig } from './harness.ts';

const T0 = Date.UTC(2026, 0, 15, 12);

/** Scaled value of a register pair holding an int32 with the given SF. */
function int32At(regs: number[], sf: number): number {
  return (decodeRaw('int32', regs) as number) * 10 ** sf;
}

test('discovery finds the map, identity and ratings; a tick reads in two requests', async () => {
  const r = await rig({ clock: new VirtualClock(T0) });
  try {
    await r.driver.open();
    assert.deepEqual(r.driver.deviceMap?.models.map((m) => [m.id, m.address, m.length]), [
      [1, 40002, 66],
      [701, 40070, 153],
      [702, 40225, 50],
      [704, 40277, 65],
      [713, 40344, 7],
    ]);
    assert.equal(r.driver.deviceMap?.base, 40000);
    assert.equal(r.driver.identity?.manufacturer, 'Wallbox Sim');
    assert.equal(r.driver.identity?.serialNumber, 'SIM0001');
    assert.deepEqual(r.driver.state().ratings, { ratedW: 11000, maxChargeW: 11000, maxDischargeW: 11000, efficiency: 0.95, islandCapable: true });
    assert.equal(r.driver.controlModel, 704);
    assert.equal(r.driver.readPlan.length, 2);
    for (const b of r.driver.readPlan) assert.ok(b.count <= 125);
    const before = r.driver.requestCount;
    await r.driver.refresh();
    assert.equal(r.driver.requestCount - before, 2, 'one refresh = the planned reads, nothing else');
  } finally {
    await r.dispose();
  }
});

test('static scale factors read once (opt-in): fewer registers per tick, the same reading', async () => {
  const clock = new VirtualClock(T0);
  const r = await rig({ clock, driver: { cacheStaticScaleFactors: true } });
  try {
    await r.driver.open();
    const regsPerTick = r.driver.readPlan.reduce((n, b) => n + b.count, 0);
    // the default plan reads 176 registers on this map (121 at 40070 with 701's header, 55 at 40299)
    assert.ok(regsPerTick <= 110, `${regsPerTick} registers per tick`);
    await r.driver.setPowerW(-4321.5);
    r.inverter.step(1, GRID_ON);
    await r.driver.refresh();
    const rd = r.driver.state().reading!;
    assert.equal(r.driver.state().fault, undefined);
    assert.equal(rd.setpointW, -4321.5, 'WSet scaled by the cached WSet_SF');
    assert.ok(Math.abs(rd.acPowerW - r.inverter.acPowerW) <= 0.5, '701 W has 1 W resolution (W_SF 0)');
    assert.equal(rd.frequencyHz, 50, 'Hz scaled by the cached Hz_SF');
    assert.equal(rd.storageSocPct, Math.round(r.car.socPct * 10) / 10);
  } finally {
    await r.dispose();
  }
});

test('readings: power sign converted at the boundary, energy counters, SoC, state, alarms', async () => {
  const clock = new VirtualClock(T0);
  const r = await rig({ clock });
  try {
    await r.driver.open();
    await r.driver.setPowerW(7000);
    r.inverter.step(3600, GRID_ON);
    clock.advance(1000);
    await r.driver.refresh();
    let rd = r.driver.state().reading!;
    assert.equal(rd.atMs, clock.nowMs());
    assert.equal(rd.acPowerW, Math.round(r.inverter.acPowerW), 'positive = into the car');
    assert.ok(rd.acPowerW > 6000);
    assert.equal(rd.setpointW, 7000);
    assert.equal(rd.importedWh, Math.round(r.inverter.importedWh));
    assert.equal(rd.exportedWh, 0);
    assert.equal(rd.storageSocPct, Math.round(r.car.socPct * 10) / 10);
    assert.equal(rd.state, 'running');
    assert.equal(rd.connected, true);
    assert.equal(rd.gridForming, false);
    assert.equal(rd.frequencyHz, 50);
    assert.equal(rd.acVoltageV, 230);
    assert.deepEqual(rd.alarms, []);

    await r.driver.setPowerW(-4000);
    r.inverter.step(1, GRID_ON);
    r.inverter.alarms.add('OVER_TEMP');
    r.inverter.alarms.add('SOMETHING_VENDOR_SPECIFIC');
    await r.driver.refresh();
    rd = r.driver.state().reading!;
    assert.equal(rd.acPowerW, -4000, 'negative = out of the car');
    assert.equal(rd.setpointW, -4000);
    assert.deepEqual(rd.alarms, ['MANUFACTURER_ALRM', 'OVER_TEMP']);
    assert.equal(r.driver.state().fault, undefined);
  } finally {
    await r.dispose();
  }
});

test('setpoint writes land in 704: WSet negative to charge with WSet_SF, reversion armed, clamp to ratings', async () => {
  const r = await rig({ clock: new VirtualClock(T0), driver: { reversionS: 7 } });
  try {
    await r.driver.open();
    const s = r.server;
    const reg = (p: string, n = 1) => s.registers(s.addressOf(704, p), n);
    assert.deepEqual(reg('WSetRvrt', 2), [0, 0]);
    assert.equal(decodeRaw('uint32', reg('WSetRvrtTms', 2)), 7);
    assert.equal(reg('WSetEnaRvrt')[0], 1);
    assert.equal(reg('WSetEna')[0], 1);
    assert.equal(reg('WSetMod')[0], 1, 'WATTS');
    const sf = decodeRaw('sunssf', reg('WSet_SF')) as number;
    assert.equal(sf, -1);

    await r.driver.setPowerW(4200.04);
    assert.equal(int32At(reg('WSet', 2), sf), -4200, 'charging is negative WSet, in 0.1 W');
    assert.equal(r.inverter.setpointW, 4200);
    await r.driver.setPowerW(-3000.5);
    assert.equal(int32At(reg('WSet', 2), sf), 3000.5);
    assert.equal(r.inverter.setpointW, -3000.5);
    await r.driver.setPowerW(50000);
    assert.equal(int32At(reg('WSet', 2), sf), -11000, 'clamped to the charge rating');
    await r.driver.refresh();
    assert.equal(r.driver.state().reading?.setpointW, 11000);
  } finally {
    await r.dispose();
  }
});

test('reversion: refreshed before the timeout runs out; when writes stop the inverter falls back to 0 W by itself', async () => {
  const clock = new VirtualClock(T0);
  const r = await rig({ clock, driver: { reversionS: 4 } });
  try {
    await r.driver.open();
    await r.driver.setPowerW(5000);
    assert.equal(r.inverter.setpointW, 5000);
    clock.advance(2000);
    const before = r.driver.requestCount;
    await r.driver.refresh(); // half the reversion time has passed: the command is re-written
    assert.equal(r.driver.requestCount - before, 3, 'two reads and the refreshing write');
    clock.advance(3000); // 5 s after the first write, 3 s after the refresh
    assert.equal(r.server.reversions, 0);
    assert.equal(r.inverter.setpointW, 5000);
    // the process stops writing (it died, or hangs): nothing refreshes the command any more
    clock.advance(1000);
    assert.equal(r.server.reversions, 1);
    assert.equal(r.inverter.setpointW, 0, 'WSetRvrt = 0 W in force');
    r.inverter.step(1, GRID_ON);
    assert.equal(r.inverter.acPowerW, 0);
    assert.equal(int32At(r.server.registers(r.server.addressOf(704, 'WSet'), 2), -1), 0);
  } finally {
    await r.dispose();
  }
});

test('reversion on the wall clock: a 1 s reversion time takes the inverter to 0 W after the last write', async () => {
  const r = await rig({ clock: systemClock, driver: { reversionS: 1 } });
  try {
    await r.driver.open();
    await r.driver.setPowerW(-2500);
    assert.equal(r.inverter.setpointW, -2500);
    for (let i = 0; i < 50 && r.server.reversions === 0; i++) await new Promise((res) => setTimeout(res, 100));
    assert.equal(r.server.reversions, 1);
    assert.equal(r.inverter.setpointW, 0);
  } finally {
    await r.dispose();
  }
});

test('reconnect after the server restarts: fault while it is gone, then rediscovery and the command re-applied', async () => {
  const clock = new VirtualClock(T0);
  const r = await rig({ clock });
  try {
    await r.driver.open();
    await r.driver.setPowerW(3000);
    await r.server.close();
    await r.driver.refresh();
    const f = r.driver.state().fault;
    assert.ok(f, 'fault while the device is gone');
    assert.match(f.code, /^(disconnected|timeout)$/);
    assert.match(f.message, /tcp:\/\/127\.0\.0\.1:\d+ unit 1/);
    const staleAt = r.driver.state().reading!.atMs;

    await r.restartServer();
    assert.equal(r.inverter.setpointW, 0, 'a restarted device comes up at 0 W');
    for (let i = 0; i < 20 && r.driver.state().fault; i++) {
      clock.advance(1000);
      await r.driver.refresh();
    }
    assert.equal(r.driver.state().fault, undefined, 'fault cleared once the device answers again');
    assert.equal(r.inverter.setpointW, 3000, 'last command re-applied before the fault cleared');
    assert.ok(r.driver.state().reading!.atMs > staleAt);
    assert.equal(r.server.registers(r.server.addressOf(704, 'WSetEnaRvrt'), 1)[0], 1, 'watchdog re-armed');
  } finally {
    await r.dispose();
  }
});

test('timeouts, exception responses and garbage become a fault with the cause; nothing rejects; recovery clears it', async () => {
  const clock = new VirtualClock(T0);
  const r = await rig({ clock });
  const unhandled: unknown[] = [];
  const onUnhandled = (e: unknown) => unhandled.push(e);
  process.on('unhandledRejection', onUnhandled);
  let changes = 0;
  r.driver.onChange(() => changes++);
  const recover = async () => {
    for (let i = 0; i < 10 && r.driver.state().fault; i++) {
      clock.advance(1000);
      await r.driver.refresh();
    }
    assert.equal(r.driver.state().fault, undefined);
  };
  try {
    await r.driver.open();
    const goodAt = r.driver.state().reading!.atMs;

    r.server.faults.silent = true;
    clock.advance(1000);
    await r.driver.refresh();
    let f = r.driver.state().fault!;
    assert.equal(f.code, 'timeout');
    assert.match(f.message, /no answer within 300 ms reading 121 registers at 40070 .*model 701/);
    assert.equal(f.sinceMs, clock.nowMs());
    clock.advance(1000);
    await r.driver.setPowerW(1000);
    assert.equal(r.driver.state().fault?.code, 'timeout');
    assert.equal(r.driver.state().fault?.sinceMs, f.sinceMs, 'first seen, not last seen');
    assert.equal(r.driver.state().reading!.atMs, goodAt, 'the last good reading keeps its old timestamp');
    r.server.faults.silent = false;
    await recover();

    r.server.faults.exception = 4;
    clock.advance(1000);
    await r.driver.refresh();
    f = r.driver.state().fault!;
    assert.equal(f.code, 'exception');
    assert.match(f.message, /exception 4 \(server device failure\) reading 121 registers at 40070 \(model 701/);
    r.server.faults.exception = undefined;
    await recover();

    const invSt = r.server.addressOf(701, 'InvSt');
    r.server.faults.overrides.set(invSt, 42);
    await r.driver.refresh();
    f = r.driver.state().fault!;
    assert.equal(f.code, 'garbage');
    assert.match(f.message, new RegExp(`701 InvSt \\(register ${invSt}\\) = 42: enum value 42 is not one of`));
    r.server.faults.overrides.clear();
    await recover();

    r.server.faults.overrides.set(r.server.addressOf(701, 'W_SF'), 25);
    await r.driver.refresh();
    assert.match(r.driver.state().fault!.message, /W_SF .* scale factor 25 is outside -10\.\.10/);
    r.server.faults.overrides.clear();
    await recover();

    r.server.faults.overrides.set(r.server.addressOf(713, 'SoC'), 1500); // 150.0 % with Pct_SF -1
    await r.driver.refresh();
    assert.equal(r.driver.state().fault?.code, 'garbage');
    assert.match(r.driver.state().fault!.message, /SoC = 150 %/);
    r.server.faults.overrides.clear();
    await recover();

    r.server.faults.overrides.set(r.server.addressOf(701, 'W'), 30000); // far beyond the 11 kW rating
    await r.driver.refresh();
    assert.match(r.driver.state().fault!.message, /701 W \(register \d+\) = 30000 W is beyond/);
    r.server.faults.overrides.clear();
    await recover();

    assert.ok(changes >= 12, 'each fault and each recovery was announced');
    assert.deepEqual(unhandled, []);
  } finally {
    process.off('unhandledRejection', onUnhandled);
    await r.dispose();
  }
});

test('a vanished device: every method resolves, the fault names it; close() still works', async () => {
  const clock = new VirtualClock(T0);
  const r = await rig({ clock });
  try {
    await r.driver.open();
    await r.server.close();
    await r.driver.refresh();
    await r.driver.setPowerW(-2000);
    await r.driver.setGridForming(true);
    clock.advance(5000);
    await r.driver.refresh();
    assert.ok(r.driver.state().fault);
    assert.match(r.driver.state().fault!.code, /^(disconnected|timeout)$/);
  } finally {
    await r.dispose();
  }
});

test('grid-forming through 702 IntIslandCat, reported back through 701 DERMode', async () => {
  const r = await rig({ clock: new VirtualClock(T0) });
  try {
    await r.driver.open();
    await r.driver.setGridForming(true);
    assert.equal(r.inverter.gridForming, true);
    r.inverter.step(1, { gridOnBus: false, islandLoadW: 800 });
    await r.driver.refresh();
    assert.equal(r.driver.state().reading?.gridForming, true);
    assert.equal(r.driver.state().reading?.acPowerW, -800);
    // a restarted device gets the last grid-forming command again, with the power command
    await r.restartServer();
    const cat = r.server.addressOf(702, 'IntIslandCat');
    assert.equal(r.server.registers(cat, 1)[0], 1 << 0, 'fresh device: UNCATEGORIZED');
    for (let i = 0; i < 10 && r.server.registers(cat, 1)[0] !== 1 << 1; i++) await r.driver.refresh();
    assert.equal(r.server.registers(cat, 1)[0], 1 << 1, 'INT_ISL_CAPABLE re-applied');
    await r.driver.setGridForming(false);
    assert.equal(r.inverter.gridForming, false);
    assert.equal(r.server.registers(cat, 1)[0], 1 << 0);
  } finally {
    await r.dispose();
  }
});

test('open() rejects with a clear error: nothing listening, no SunS marker at the configured base, a bad config key', async () => {
  const port = await freePort();
  const none = new SunspecInverter({ link: { kind: 'tcp', host: '127.0.0.1', port, unitId: 1 }, timeoutMs: 300, retries: 0, reversionS: 10, efficiency: 0.95, clock: systemClock });
  await assert.rejects(none.open(), /SunSpec inverter tcp:\/\/127\.0\.0\.1:\d+ unit 1: cannot connect: .*ECONNREFUSED/);

  const r = await rig({ clock: new VirtualClock(T0), driver: { base: 40002 } });
  try {
    await assert.rejects(r.driver.open(), /no SunSpec 'SunS' marker found \(tried 40002: 0x0001 0x0042\)/);
  } finally {
    await r.dispose();
  }

  const bad = createSunspecInverter({ modbus: { host: '127.0.0.1', port: 70000 } }, systemClock);
  await assert.rejects(bad.open(), /inverter\.modbus\.port must be an integer 1\.\.65535/);
  const neither = createSunspecInverter({ modbus: {} }, systemClock);
  await assert.rejects(neither.open(), /needs either "host" \(Modbus TCP\) or "path"/);
});

test('the factory builds a working driver from the inverter config section', async () => {
  const clock = new VirtualClock(T0);
  const r = await rig({ clock });
  const port = createSunspecInverter({ driver: 'sunspec', modbus: { host: '127.0.0.1', port: r.port, unitId: 1 }, timeoutMs: 500, retries: 1, reversionS: 10 }, clock);
  try {
    await port.open();
    await port.setPowerW(1500);
    r.inverter.step(1, GRID_ON);
    await port.refresh();
    assert.equal(port.state().reading?.acPowerW, 1500);
    assert.equal(port.state().ratings?.efficiency, 0.95);
  } finally {
    await port.close();
    await r.dispose();
  }
});
