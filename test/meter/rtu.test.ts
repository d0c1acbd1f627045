/**
 * An inverter and a meter on one RS-485 line: a pseudo-terminal pair from socat stands in for the wire, a
 * serial Modbus server answers for unit 1 (the simulated inverter) and unit 2 (the simulated meter), and
 * both drivers open the same serial device through ModbusBuses: one port, requests in turn. Skips (saying
 * why) when socat or the serial port bindings are missing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { systemClock } from '../../hal/system-clock.ts';
import { SimCar } from '../../hal/sim/car.ts';
import { SimInverter } from '../../hal/sim/inverter.ts';
import { createSimSunspecDevice } from '../../hal/sim/sunspec-server.ts';
import { createSimMeterDevice, unitRouter } from '../../hal/sim/meter-server.ts';
import { ModbusBuses } from '../../hal/modbus/bus.ts';
import { createSunspecInverter } from '../../hal/inverter/sunspec/index.ts';
import { createSiteMeter } from '../../hal/meter/index.ts';
import { ptyPair, rtuSkipReason } from '../helpers/pty.ts';

const require = createRequire(import.meta.url);


test('inverter (unit 1) and meter (unit 2) share one serial port at 9600 8N1', { skip: rtuSkipReason() }, async () => {
  const pty = ptyPair('meter-rtu');
  const { a, b } = pty;
  const car = new SimCar({ capacityWh: 60000, socPct: 70, maxChargeW: 11000, maxDischargeW: 11000 });
  const simInv = new SimInverter({ ratedW: 11000, efficiency: 0.95 }, car, systemClock);
  const invDev = createSimSunspecDevice({ inverter: simInv, car, clock: systemClock });
  const meterDev = createSimMeterDevice({ model: 203, unitId: 2, read: () => ({ gridPowerW: 3456, phaseCurrentsA: [5, 5, 5], importedWh: 10, exportedWh: 20 }) });
  let server: { close(cb: (e: Error | null) => void): void } | undefined;
  const link = { path: a, baudRate: 9600, parity: 'none' };
  const buses = new ModbusBuses(systemClock);
  const inverter = createSunspecInverter({ modbus: { ...link, unitId: 1 }, timeoutMs: 1000, retries: 0 }, systemClock, undefined, buses);
  const meter = createSiteMeter({ driver: 'sunspec', modbus: { ...link, unitId: 2 }, timeoutMs: 1000, retries: 0 }, { clock: systemClock, buses })!;
  try {
    await pty.ready();
    const { ServerSerial } = require('modbus-serial');
    await new Promise<void>((resolve, reject) => {
      server = new ServerSerial(unitRouter([invDev, meterDev]), { path: b, baudRate: 9600, unitID: 255 });
      (server as unknown as NodeJS.EventEmitter).on('initialized', () => resolve());
      (server as unknown as NodeJS.EventEmitter).on('error', (e: Error) => reject(e));
    });
    // both open at once: one serial port, opened once
    await Promise.all([inverter.open(), meter.open()]);
    for (let i = 0; i < 3; i++) await Promise.all([inverter.refresh(), meter.refresh(), inverter.setPowerW(2000 + i)]);
    assert.equal(inverter.state().fault, undefined, inverter.state().fault?.message);
    assert.equal(meter.state().fault, undefined, meter.state().fault?.message);
    assert.equal(meter.state().gridPowerW, 3456);
    assert.equal(simInv.setpointW, 2002);
    assert.deepEqual(buses.usersOf({ kind: 'rtu', path: a, baudRate: 9600, parity: 'none', stopBits: 1, dataBits: 8, unitId: 0 }), ['inverter.modbus', 'siteMeter.modbus']);
    // the meter closes; the inverter keeps the port
    await meter.close();
    await inverter.refresh();
    assert.equal(inverter.state().fault, undefined);
  } finally {
    await meter.close();
    await inverter.close();
    if (server) await new Promise<void>((resolve) => server!.close(() => resolve()));
    invDev.stop();
    pty.stop();
  }
});
