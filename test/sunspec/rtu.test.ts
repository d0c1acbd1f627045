/**
 * The driver over Modbus RTU: a pseudo-terminal pair from socat stands in for the RS-485 line, the
 * simulated device is served on one end by modbus-serial's ServerSerial, the driver opens the other.
 * Skips (saying why) when socat or the serial port bindings are missing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { SimCar } from '../../hal/sim/car.ts';
import { SimInverter } from '../../hal/sim/inverter.ts';
import { VirtualClock } from '../../hal/sim/virtual-clock.ts';
import { createSimSunspecDevice } from '../../hal/sim/sunspec-server.ts';
import { SunspecInverter } from '../../hal/inverter/sunspec/driver.ts';
import { GRID_ON } from './harness.ts';
import { ptyPair, rtuSkipReason } from '../helpers/pty.ts';

const require = createRequire(import.meta.url);


const skip = rtuSkipReason();

test('RTU over a pseudo-terminal pair at 19200 8E1: discovery, reads, setpoint write, then the line vanishing is a fault', { skip }, async () => {
  const pty = ptyPair('sunspec-rtu');
  const { a, b } = pty;
  const clock = new VirtualClock(Date.UTC(2026, 0, 15, 12));
  const car = new SimCar({ capacityWh: 60000, socPct: 70, maxChargeW: 11000, maxDischargeW: 11000 });
  const inverter = new SimInverter({ ratedW: 11000, efficiency: 0.95 }, car, clock);
  const device = createSimSunspecDevice({ inverter, car, clock });
  let server: { close(cb: (e: Error | null) => void): void } | undefined;
  const driver = new SunspecInverter({
    link: { kind: 'rtu', path: a, baudRate: 19200, parity: 'even', stopBits: 1, dataBits: 8, unitId: 1 },
    timeoutMs: 500,
    retries: 1,
    reversionS: 10,
    efficiency: 0.95,
    clock,
    backoffMinMs: 0,
    backoffMaxMs: 0,
  });
  try {
    await pty.ready();
    const { ServerSerial } = require('modbus-serial');
    await new Promise<void>((resolve, reject) => {
      server = new ServerSerial(device.vector, { path: b, baudRate: 19200, parity: 'even', unitID: 1 });
      (server as unknown as NodeJS.EventEmitter).on('initialized', () => resolve());
      (server as unknown as NodeJS.EventEmitter).on('error', (e: Error) => reject(e));
    });

    await driver.open();
    assert.equal(driver.deviceMap?.base, 40000);
    assert.deepEqual(driver.deviceMap?.models.map((m) => m.id), [1, 701, 702, 704, 713]);
    await driver.setPowerW(-3500);
    assert.equal(inverter.setpointW, -3500);
    inverter.step(1, GRID_ON);
    await driver.refresh();
    assert.equal(driver.state().fault, undefined);
    assert.equal(driver.state().reading?.acPowerW, -3500);
    assert.equal(driver.state().reading?.setpointW, -3500);

    // the device stops answering (the line is cut at the far end)
    await new Promise<void>((resolve) => server!.close(() => resolve()));
    server = undefined;
    await driver.refresh();
    assert.match(driver.state().fault?.code ?? '', /^(timeout|disconnected)$/);
    assert.match(driver.state().fault!.message, /rtu .*ttyA 19200 8E1 unit 1/);
  } finally {
    await driver.close();
    if (server) await new Promise<void>((resolve) => server!.close(() => resolve()));
    device.stop();
    pty.stop();
  }
});
