/**
 * The shipped simulation profile (`npm start`) reads the site meter through the real SunSpec driver: the
 * simulated inverter and meter are served behind one Modbus TCP port (units 1 and 2), and the inverter
 * and the meter drivers share one connection to it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { PROJECT_ROOT, loadConfig } from '../../src/config/load.ts';
import { buildHardware } from '../../src/wiring.ts';
import { systemClock } from '../../hal/system-clock.ts';
import { freePort } from '../helpers/broker.ts';

test('config/simulation.json: the meter is SunSpec unit 2 behind the inverter\'s port, read through the real driver', async () => {
  const port = await freePort();
  const base = loadConfig(join(PROJECT_ROOT, 'config/simulation.json'));
  const sm = base.siteMeter!;
  const c = {
    ...base, simulation: { ...base.simulation, servePort: port }, inverter: { ...base.inverter, modbus: { ...base.inverter.modbus, port } },
    siteMeter: { ...sm, modbus: { ...sm.modbus, port }, pv: sm.pv ? { ...sm.pv, modbus: { ...sm.pv.modbus, port } } : sm.pv },
  };
  const hw = await buildHardware(c, systemClock, () => {});
  try {
    assert.ok(hw.describe.includes(`site meter: simulated SunSpec 203 served as unit 2 on 127.0.0.1:${port}`), hw.describe.join('\n'));
    assert.ok(hw.describe.includes(`site meter: SunSpec over Modbus TCP 127.0.0.1:${port} unit 2, with a PV source`), hw.describe.join('\n'));
    assert.ok(hw.describe.includes(`PV: simulated SunSpec 103 inverter served as unit 3 on 127.0.0.1:${port}`), hw.describe.join('\n'));
    const meter = hw.ports.siteMeter!;
    await Promise.all([hw.ports.inverter.open(), meter.open()]);
    await hw.ports.inverter.setPowerW(4000);
    hw.site!.step(1);
    await meter.refresh();
    const s = meter.state();
    assert.equal(s.fault, undefined, s.fault?.message);
    // house 600 W (simulation default) + its two load-shed tiers powered (400 + 800 W) + the car at 4000 W,
    // less the simulated roof's PV at this time of day (6 kWp in simulation.json; 0 at night)
    const pvW = hw.site!.pvPowerW();
    const expectedW = 600 + 400 + 800 + 4000 - pvW;
    assert.ok(Math.abs(hw.site!.gridPowerW() - expectedW) < 1, `site ${hw.site!.gridPowerW()} W`);
    // the meter's W is an int16 with a scale factor: within its resolution
    assert.ok(Math.abs(s.gridPowerW! - expectedW) <= 10, `meter ${s.gridPowerW} W, expected ${expectedW} W`);
    if (s.pvPowerW !== undefined) assert.ok(Math.abs(s.pvPowerW - pvW) <= 10, `PV ${s.pvPowerW} W, site ${pvW} W`);
    assert.equal(s.phaseCurrentsA?.length, 3);
    assert.ok(Math.abs(s.phaseCurrentsA![0] - Math.abs(expectedW) / 690) < 0.05, `${s.phaseCurrentsA![0]} A`);
  } finally {
    await hw.ports.siteMeter?.close();
    await hw.ports.inverter.close();
    await hw.close();
  }
});

test('no siteMeter (the default): no meter port, and the banner says what the import limit assumes', async () => {
  const c = loadConfig(null, { inverter: { driver: 'sim' }, vehicleLink: { driver: 'sim' }, gpio: { driver: 'sim' }, siteMeter: null, simulation: { serveInverter: false, serveMeter: false } });
  const hw = await buildHardware(c, systemClock, () => {});
  try {
    assert.equal(hw.ports.siteMeter, undefined);
    assert.ok(hw.describe.includes('site meter: none (the import limit assumes 5000 W of house)'), hw.describe.join('\n'));
  } finally {
    await hw.close();
  }
});
