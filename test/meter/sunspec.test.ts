/**
 * The SunSpec site meter driver against simulated meters served over real Modbus TCP on 127.0.0.1:
 * integer + SF (203, 201) and float (213, 211) models, bases other than 40000, "not implemented" sentinels
 * and NaN, the sign flag, a meter that stops answering (fault, figures withdrawn, then back), a PV inverter
 * (103), and an inverter and a meter sharing one connection (a TCP gateway in front of an RS-485 bus).
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { systemClock } from '../../hal/system-clock.ts';
import { createSimMeterDevice, createSimPvDevice, startSimModbusGateway, type SimMeterReading, type SimModbusDevice } from '../../hal/sim/meter-server.ts';
import { createSimSunspecDevice } from '../../hal/sim/sunspec-server.ts';
import { SimCar } from '../../hal/sim/car.ts';
import { SimInverter } from '../../hal/sim/inverter.ts';
import { SunspecMeter } from '../../hal/meter/sunspec/driver.ts';
import { createSiteMeter } from '../../hal/meter/index.ts';
import { createSunspecInverter } from '../../hal/inverter/sunspec/index.ts';
import { ModbusBuses } from '../../hal/modbus/bus.ts';
import { houseLoadForImportW } from '../../src/control/limits.ts';
import { freePort } from '../helpers/broker.ts';
import { settings, snapshot } from '../helpers/control.ts';

const reading: SimMeterReading = { gridPowerW: 2345, phaseCurrentsA: [12.34, 5.67, 0.5], importedWh: 123_456, exportedWh: 7_890 };
const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

async function serve(devices: Pick<SimModbusDevice, 'unitId' | 'vector'>[]): Promise<number> {
  const port = await freePort();
  const gw = await startSimModbusGateway({ port, devices });
  closers.push(() => gw.close());
  return port;
}

function meter(port: number, o: { unitId?: number; base?: number | null; invertSign?: boolean; timeoutMs?: number } = {}): SunspecMeter {
  const m = new SunspecMeter({
    link: { kind: 'tcp', host: '127.0.0.1', port, unitId: o.unitId ?? 2 },
    base: o.base ?? null,
    invertSign: o.invertSign ?? false,
    timeoutMs: o.timeoutMs ?? 300,
    retries: 0,
    clock: systemClock,
  });
  closers.push(() => m.close());
  return m;
}

describe('models and bases', () => {
  test('203 (wye, integer + SF) at base 40000: W, three phase currents with A_SF = −2, energy counters', async () => {
    const dev = createSimMeterDevice({ model: 203, read: () => reading });
    const m = meter(await serve([dev]));
    const before = systemClock.nowMs();
    await m.open();
    const after = systemClock.nowMs();
    const s = m.state();
    assert.equal(m.model, 203);
    assert.equal(s.fault, undefined);
    assert.equal(s.gridPowerW, 2345);
    assert.deepEqual(s.phaseCurrentsA, [12.34, 5.67, 0.5]);
    assert.equal(s.importedWh, 123_456);
    assert.equal(s.exportedWh, 7_890);
    // stamped by the clock when the answer came, during open()
    assert.ok(s.atMs !== undefined && s.atMs >= before && s.atMs <= after);
  });

  test('213 (wye, float32) at base 0, found by probing', async () => {
    const dev = createSimMeterDevice({ model: 213, base: 0, read: () => ({ ...reading, gridPowerW: -1234.5 }) });
    const m = meter(await serve([dev]));
    await m.open();
    const s = m.state();
    assert.equal(m.model, 213);
    assert.equal(s.gridPowerW, -1234.5);
    // float32 holds 12.34 as 12.340000152587890625
    assert.deepEqual(s.phaseCurrentsA?.map((a) => Math.round(a * 1000) / 1000), [12.34, 5.67, 0.5]);
  });

  test('201 (single phase, integer) at a configured base 1000, which probing would not find', async () => {
    const dev = createSimMeterDevice({ model: 201, base: 1000, read: () => reading });
    const port = await serve([dev]);
    const probing = meter(port);
    // a meter that cannot be found is the port's fault, not a failed start: the charger runs on without it
    await probing.open();
    assert.match(probing.state().fault?.message ?? '', /no SunSpec 'SunS' marker found/);
    assert.equal(probing.state().gridPowerW, undefined);
    const m = meter(port, { base: 1000 });
    await m.open();
    assert.equal(m.model, 201);
    assert.deepEqual(m.state().phaseCurrentsA, [12.34]);
    assert.equal(m.state().gridPowerW, 2345);
  });

  test('211 (single phase, float) at base 50000; a scale factor of +1 on 203 scales up', async () => {
    const f = meter(await serve([createSimMeterDevice({ model: 211, base: 50000, read: () => reading })]));
    await f.open();
    assert.equal(f.model, 211);
    assert.equal(f.state().gridPowerW, 2345);
    const i = meter(await serve([createSimMeterDevice({ model: 203, scaleFactors: { W_SF: 1 }, read: () => ({ ...reading, gridPowerW: 45_670 }) })]));
    await i.open();
    // 45 670 W does not fit an int16 at W_SF 0: the device serves 4567 × 10^1
    assert.equal(i.state().gridPowerW, 45_670);
  });

  test('a device without a meter model is refused with what it has', async () => {
    const car = new SimCar({ capacityWh: 60000, socPct: 70, maxChargeW: 11000, maxDischargeW: 11000 });
    const inv = createSimSunspecDevice({ inverter: new SimInverter({ ratedW: 11000, efficiency: 0.95 }, car, systemClock), car, clock: systemClock, deviceMap: { base: 40000, unitId: 2, models: [{ id: 1 }, { id: 701 }, { id: 702 }, { id: 704 }] } });
    closers.push(async () => inv.stop());
    const m = meter(await serve([inv]));
    await m.open();
    assert.match(m.state().fault?.message ?? '', /no grid meter model \(201, 202, 203, 204, 211, 212, 213, 214\).*device has 1, 701, 702, 704/);
    assert.equal(m.state().gridPowerW, undefined);
  });

  test('a meter that is not there at start: open() resolves with the fault, and a later refresh finds it', async () => {
    const port = await freePort();
    const m = meter(port);
    await m.open();
    assert.ok(m.state().fault, 'nothing listens: a fault');
    assert.match(m.state().fault!.message, new RegExp(`127\\.0\\.0\\.1:${port}`), m.state().fault!.message);
    assert.equal(m.state().gridPowerW, undefined);
    await m.refresh();
    assert.ok(m.state().fault, 'still nothing: still the fault');
    const gw = await startSimModbusGateway({ port, devices: [createSimMeterDevice({ model: 203, read: () => reading })] });
    closers.push(() => gw.close());
    for (let i = 0; i < 50 && m.state().gridPowerW === undefined; i++) {
      await m.refresh();
      if (m.state().gridPowerW === undefined) await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(m.state().gridPowerW, 2345, m.state().fault?.message);
    assert.equal(m.state().fault, undefined);
    assert.equal(m.model, 203);
  });
});

describe('sentinels and sign', () => {
  test('W not implemented (int16 0x8000): a garbage fault and no grid figure', async () => {
    const dev = createSimMeterDevice({ model: 203, read: () => reading });
    const m = meter(await serve([dev]));
    await m.open();
    dev.faults.unimplemented.add('W');
    await m.refresh();
    const s = m.state();
    assert.equal(s.gridPowerW, undefined);
    assert.equal(s.fault?.code, 'garbage');
    assert.match(s.fault!.message, /203 W is not implemented/);
    dev.faults.unimplemented.delete('W');
    await m.refresh();
    assert.equal(m.state().gridPowerW, 2345);
    assert.equal(m.state().fault, undefined);
  });

  test('W_SF not implemented: no magnitude, so no figure', async () => {
    const dev = createSimMeterDevice({ model: 203, read: () => reading });
    const m = meter(await serve([dev]));
    await m.open();
    dev.faults.unimplemented.add('W_SF');
    await m.refresh();
    assert.equal(m.state().gridPowerW, undefined);
    assert.equal(m.state().fault?.code, 'garbage');
  });

  test('float NaN in W: a fault; NaN in one phase current: the set is dropped, W stays', async () => {
    const dev = createSimMeterDevice({ model: 213, read: () => reading });
    const m = meter(await serve([dev]));
    await m.open();
    dev.faults.unimplemented.add('AphB');
    await m.refresh();
    assert.equal(m.state().gridPowerW, 2345);
    assert.equal(m.state().phaseCurrentsA, undefined);
    assert.equal(m.state().fault, undefined);
    // a NaN other than the 0x7FC00000 sentinel (0x7FC00001) is no number either
    const w = dev.addressOf('W');
    dev.faults.overrides.set(w, 0x7fc0).set(w + 1, 0x0001);
    await m.refresh();
    assert.equal(m.state().gridPowerW, undefined);
    assert.equal(m.state().fault?.code, 'garbage');
    // +Infinity (0x7F800000)
    dev.faults.overrides.set(w, 0x7f80).set(w + 1, 0);
    await m.refresh();
    assert.equal(m.state().gridPowerW, undefined);
  });

  test('a device counting export as positive, with invertSign: import positive again, counters swapped back', async () => {
    const dev = createSimMeterDevice({ model: 203, exportPositive: true, read: () => reading });
    const port = await serve([dev]);
    const raw = meter(port);
    await raw.open();
    assert.equal(raw.state().gridPowerW, -2345, 'without the flag the device sign shows');
    const m = meter(port, { invertSign: true });
    await m.open();
    assert.equal(m.state().gridPowerW, 2345);
    assert.equal(m.state().importedWh, 123_456);
    assert.equal(m.state().exportedWh, 7_890);
  });
});

describe('a meter that stops answering', () => {
  test('timeout → fault, figures withdrawn, the core assumes the house load; answers again → figures back', async () => {
    const dev = createSimMeterDevice({ model: 203, read: () => reading });
    const m = meter(await serve([dev]), { timeoutMs: 200 });
    await m.open();
    assert.equal(m.state().gridPowerW, 2345);
    dev.faults.silent = true;
    await m.refresh();
    const s = m.state();
    assert.equal(s.gridPowerW, undefined);
    assert.equal(s.atMs, undefined);
    assert.equal(s.fault?.code, 'timeout');
    assert.match(s.fault!.message, /SunSpec grid meter tcp:\/\/127\.0\.0\.1:\d+ unit 2: no answer within 200 ms/);
    // the core: the fault (and no figure) means the assumed house load, never 0
    const c = settings({ site: { assumedHouseLoadW: 4000 } });
    const now = systemClock.nowMs();
    const snap = snapshot(now, { houseLoadW: undefined, gridPowerW: s.gridPowerW, gridPowerAtMs: s.atMs, houseLoadFault: `${s.fault!.code}: ${s.fault!.message}`, inverter: { powerW: 0, atMs: now } });
    assert.equal(houseLoadForImportW(snap, c, now), 4000);
    dev.faults.silent = false;
    // the transport dropped the connection after the timeout; it comes back on the next poll (backoff 500 ms)
    await new Promise((r) => setTimeout(r, 600));
    await m.refresh();
    assert.equal(m.state().fault, undefined, m.state().fault?.message);
    assert.equal(m.state().gridPowerW, 2345);
  });

  test('an exception answer is a fault naming the exception', async () => {
    const dev = createSimMeterDevice({ model: 213, read: () => reading });
    const m = meter(await serve([dev]));
    await m.open();
    dev.faults.exception = 4;
    await m.refresh();
    assert.equal(m.state().fault?.code, 'exception');
    assert.match(m.state().fault!.message, /exception 4 \(server device failure\)/);
    assert.equal(m.state().gridPowerW, undefined);
  });
});

describe('one bus, several devices', () => {
  test('inverter (unit 1), meter (unit 2) and PV inverter (unit 3) share one TCP connection through ModbusBuses', async () => {
    const car = new SimCar({ capacityWh: 60000, socPct: 70, maxChargeW: 11000, maxDischargeW: 11000 });
    const simInv = new SimInverter({ ratedW: 11000, efficiency: 0.95 }, car, systemClock);
    const invDev = createSimSunspecDevice({ inverter: simInv, car, clock: systemClock });
    closers.push(async () => invDev.stop());
    const meterDev = createSimMeterDevice({ model: 203, unitId: 2, read: () => reading });
    const pvDev = createSimPvDevice({ model: 103, unitId: 3, read: () => 4321 });
    const port = await freePort();
    const gw = await startSimModbusGateway({ port, devices: [invDev, meterDev, pvDev] });
    closers.push(() => gw.close());
    const buses = new ModbusBuses(systemClock);
    const inverter = createSunspecInverter({ modbus: { host: '127.0.0.1', port, unitId: 1 }, timeoutMs: 500, retries: 0 }, systemClock, undefined, buses);
    const siteMeter = createSiteMeter({ driver: 'sunspec', modbus: { host: '127.0.0.1', port, unitId: 2 }, pv: { modbus: { host: '127.0.0.1', port, unitId: 3 } }, timeoutMs: 500, retries: 0 }, { clock: systemClock, buses })!;
    closers.push(() => inverter.close());
    closers.push(() => siteMeter.close());
    await Promise.all([inverter.open(), siteMeter.open()]);
    await Promise.all([inverter.refresh(), siteMeter.refresh(), inverter.setPowerW(3000)]);
    assert.equal(inverter.state().fault, undefined, inverter.state().fault?.message);
    assert.equal(inverter.state().ratings?.ratedW, 11000);
    const s = siteMeter.state();
    assert.equal(s.gridPowerW, 2345);
    assert.equal(s.pvPowerW, 4321);
    assert.equal(s.pvFault, undefined);
    assert.equal(gw.connections, 1, 'one connection for the three devices');
    assert.ok(meterDev.requestCount > 0 && pvDev.requestCount > 0);
    assert.deepEqual(buses.usersOf({ kind: 'tcp', host: '127.0.0.1', port, unitId: 9 }), ['inverter.modbus', 'siteMeter.pv.modbus', 'siteMeter.modbus']);
    // the meter closing does not close the inverter's connection
    await siteMeter.close();
    await inverter.refresh();
    assert.equal(inverter.state().fault, undefined);
    assert.equal(gw.connections, 1);
  });

  test('a meter that stops answering on the shared bus: its own short timeout, the inverter keeps working', async () => {
    const car = new SimCar({ capacityWh: 60000, socPct: 70, maxChargeW: 11000, maxDischargeW: 11000 });
    const simInv = new SimInverter({ ratedW: 11000, efficiency: 0.95 }, car, systemClock);
    const invDev = createSimSunspecDevice({ inverter: simInv, car, clock: systemClock });
    closers.push(async () => invDev.stop());
    const meterDev = createSimMeterDevice({ model: 203, unitId: 2, read: () => reading });
    const port = await serve([invDev, meterDev]);
    const buses = new ModbusBuses(systemClock);
    const inverter = createSunspecInverter({ modbus: { host: '127.0.0.1', port, unitId: 1 }, timeoutMs: 1500, retries: 1 }, systemClock, undefined, buses);
    const siteMeter = createSiteMeter({ driver: 'sunspec', modbus: { host: '127.0.0.1', port, unitId: 2 }, timeoutMs: 150, retries: 0 }, { clock: systemClock, buses })!;
    closers.push(() => inverter.close());
    closers.push(() => siteMeter.close());
    await Promise.all([inverter.open(), siteMeter.open()]);
    meterDev.faults.silent = true;
    for (let i = 0; i < 3; i++) {
      await Promise.all([siteMeter.refresh(), inverter.refresh(), inverter.setPowerW(1000 * (i + 1))]);
      // the meter's own 150 ms timeout, not the inverter's 1500 ms, is what the silent meter costs the line
      assert.match(siteMeter.state().fault?.message ?? '', /no answer within 150 ms/);
      assert.equal(inverter.state().fault, undefined, inverter.state().fault?.message);
    }
    assert.equal(simInv.setpointW, 3000);
  });

  test('a PV inverter that stops answering is a PV fault; the grid figure stays', async () => {
    const meterDev = createSimMeterDevice({ model: 213, unitId: 2, read: () => reading });
    const pvDev = createSimPvDevice({ model: 101, unitId: 3, read: () => 1500 });
    const port = await serve([meterDev, pvDev]);
    const buses = new ModbusBuses(systemClock);
    const m = createSiteMeter({ driver: 'sunspec', modbus: { host: '127.0.0.1', port, unitId: 2 }, pv: { modbus: { host: '127.0.0.1', port, unitId: 3 } }, timeoutMs: 200, retries: 0 }, { clock: systemClock, buses })!;
    closers.push(() => m.close());
    await m.open();
    assert.equal(m.state().pvPowerW, 1500);
    pvDev.faults.silent = true;
    await m.refresh();
    const s = m.state();
    assert.equal(s.pvPowerW, undefined);
    assert.equal(s.pvFault?.code, 'timeout');
    assert.equal(s.fault, undefined);
    // the timeout dropped the shared connection; the grid meter reconnects after the backoff
    await new Promise((r) => setTimeout(r, 600));
    await m.refresh();
    assert.equal(m.state().gridPowerW, 2345);
  });

  test('the bus refuses a second device on the same unit id, and another baud rate on the same serial port', () => {
    const buses = new ModbusBuses(systemClock);
    const rtu = { kind: 'rtu' as const, path: '/dev/ttyUSB0', baudRate: 9600, parity: 'none' as const, stopBits: 1 as const, dataBits: 8 as const, unitId: 1 };
    buses.channel(rtu, { timeoutMs: 500, retries: 1 }, 'inverter.modbus');
    assert.throws(() => buses.channel({ ...rtu }, { timeoutMs: 500, retries: 1 }, 'siteMeter.modbus'), /siteMeter\.modbus: unit 1 on \/dev\/ttyUSB0 is already used by inverter\.modbus/);
    assert.throws(() => buses.channel({ ...rtu, unitId: 2, baudRate: 19200 }, { timeoutMs: 500, retries: 1 }, 'siteMeter.modbus'), /siteMeter\.modbus: \/dev\/ttyUSB0 is already in use at rtu \/dev\/ttyUSB0 9600 8N1/);
    assert.doesNotThrow(() => buses.channel({ ...rtu, unitId: 2 }, { timeoutMs: 500, retries: 1 }, 'siteMeter.modbus'));
  });
});

describe('config', () => {
  test('a bad section gives a port whose open() names the key', async () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ driver: 'sunspec' }, /siteMeter\.modbus is missing/],
      [{ driver: 'sunspec', modbus: { host: 'x', unitId: 300 } }, /siteMeter\.modbus\.unitId must be an integer 0\.\.255, got 300/],
      [{ driver: 'sunspec', modbus: { host: 'x', base: -1 } }, /siteMeter\.modbus\.base must be an integer 0\.\.65533 or null, got -1/],
      [{ driver: 'sunspec', modbus: { host: 'x' }, pv: { modbus: {} } }, /siteMeter\.pv\.modbus needs either "host"/],
      [{ driver: 'mqtt', url: 'http://x', topic: 't' }, /siteMeter\.url must be a broker URL/],
      [{ driver: 'mqtt', url: 'mqtt://x', topic: 'a/#' }, /siteMeter\.topic must be one topic without wildcards/],
      [{ driver: 'mqtt', url: 'mqtt://x', topic: 'a', path: 'a..b' }, /siteMeter\.path\/pvPath\/currentPaths: .*empty key/],
      [{ driver: 'mqtt', url: 'mqtt://x', topic: 'a', maxAgeS: 0 }, /siteMeter\.maxAgeS must be a number above 0/],
      [{ driver: 'sim' }, /needs the simulated site/],
      [{ driver: 'modbus' }, /siteMeter\.driver must be "sunspec", "mqtt" or "sim"/],
    ];
    for (const [section, re] of cases) {
      const p = createSiteMeter(section as never, { clock: systemClock })!;
      await assert.rejects(p.open(), re, JSON.stringify(section));
      assert.equal(p.state().fault?.code, 'open_failed');
    }
    assert.equal(createSiteMeter(null, { clock: systemClock }), undefined);
  });
});
