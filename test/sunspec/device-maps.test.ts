/**
 * Device maps the driver did not expect, served by the simulated server from the JSON fixtures in
 * test/fixtures/sunspec/: another base, models in another order, unknown vendor models, the legacy
 * model 1 of L = 65, and a device without 704 (power through 124).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { VirtualClock } from '../../hal/sim/virtual-clock.ts';
import { decodeRaw } from '../../hal/inverter/sunspec/codec.ts';
import { parseDeviceMap, startSimSunspecServer } from '../../hal/sim/sunspec-server.ts';
import { GRID_ON, loadDeviceMap, rig } from './harness.ts';

const T0 = Date.UTC(2026, 0, 15, 12);

test('every device map fixture passes the map check; broken maps are refused with the field named', () => {
  const dir = new URL('../fixtures/sunspec/', import.meta.url);
  const files = readdirSync(dir).filter((f) => f.endsWith('-map.json'));
  assert.ok(files.length >= 4);
  for (const f of files) parseDeviceMap(JSON.parse(readFileSync(new URL(f, dir), 'utf8')));
  assert.throws(() => parseDeviceMap({ base: 40000, models: [{ id: 64001 }] }), /models\[0\] is model 64001, which has no definition here/);
  assert.throws(() => parseDeviceMap({ base: 70000, models: [{ id: 1 }] }), /base must be an integer 0\.\.65533/);
  assert.throws(() => parseDeviceMap({ base: 65000, models: [{ id: 701 }, { id: 701 }, { id: 701 }, { id: 701 }] }), /past register 65535/);
});

test('unexpected map (base 0, other order, unknown models, legacy model 1 of L = 65) is discovered and driven', async () => {
  const map = loadDeviceMap('unexpected-map');
  const clock = new VirtualClock(T0);
  const r = await rig({ clock, deviceMap: map });
  try {
    await r.driver.open();
    const found = r.driver.deviceMap!;
    assert.equal(found.base, 0);
    assert.deepEqual(
      found.models.map((m) => [m.id, m.length]),
      map.models.map((m) => [m.id, m.length ?? { 1: 66, 701: 153, 702: 50, 703: 17, 704: 65, 713: 7 }[m.id]]),
    );
    assert.equal(found.models[0].length, 65, 'legacy model 1');
    assert.equal(r.driver.identity?.model, 'SIM-BIDI-11');
    for (const b of r.driver.readPlan) assert.ok(b.count <= 125);

    await r.driver.setPowerW(-6000);
    r.inverter.step(1, GRID_ON);
    await r.driver.refresh();
    const rd = r.driver.state().reading!;
    assert.equal(r.driver.state().fault, undefined);
    assert.equal(rd.acPowerW, -6000);
    assert.equal(rd.setpointW, -6000);
    assert.equal(rd.storageSocPct, Math.round(r.car.socPct * 10) / 10);
    assert.equal(int32(r.server.registers(r.server.addressOf(704, 'WSet'), 2)), 60000);
  } finally {
    await r.dispose();
  }
});

test('no 704: power through 124 InWRte/OutWRte (% of WChaMax), SoC from 802, reversion through InOutWRte_RvrtTms', async () => {
  const clock = new VirtualClock(T0);
  const r = await rig({ clock, deviceMap: loadDeviceMap('storage124-map'), driver: { reversionS: 6 } });
  try {
    await r.driver.open();
    assert.equal(r.driver.deviceMap!.base, 50000);
    assert.equal(r.driver.controlModel, 124);
    const reg = (p: string) => decodeRaw('int16', r.server.registers(r.server.addressOf(124, p), 1));
    assert.equal(r.server.registers(r.server.addressOf(124, 'StorCtl_Mod'), 1)[0], 0b11);

    await r.driver.setPowerW(5500);
    assert.equal(reg('InWRte'), 500, '50.0 % of 11 kW with InOutWRte_SF -1');
    assert.equal(reg('OutWRte'), -500);
    assert.equal(reg('InOutWRte_RvrtTms'), 6);
    assert.equal(r.inverter.setpointW, 5500);

    await r.driver.setPowerW(-2200);
    assert.equal(reg('OutWRte'), 200);
    assert.equal(r.inverter.setpointW, -2200);
    r.inverter.step(1, GRID_ON);
    await r.driver.refresh();
    const rd = r.driver.state().reading!;
    assert.equal(r.driver.state().fault, undefined);
    assert.equal(rd.setpointW, -2200);
    assert.equal(rd.acPowerW, -2200);
    assert.equal(rd.storageSocPct, Math.round(r.car.socPct * 10) / 10, '802 SoC (no 713 on this device)');

    // the battery's present limits (802) narrow the ratings: above 80 % SoC the charge limit tapers
    r.car.socPct = 90;
    await r.driver.refresh();
    assert.equal(r.driver.state().ratings?.maxChargeW, 5500);
    assert.equal(r.driver.state().ratings?.maxDischargeW, 11000);
    await r.driver.setPowerW(8000);
    assert.equal(r.inverter.setpointW, 5500, 'clamped to the battery limit');
    await r.driver.setPowerW(-2200);

    clock.advance(6000);
    assert.equal(r.server.reversions, 1);
    assert.equal(r.inverter.setpointW, 0, 'fell back to 0 W when the writes stopped');
  } finally {
    await r.dispose();
  }
});

test('a device without a required model is refused at open, naming what is missing', async () => {
  const r = await rig({ clock: new VirtualClock(T0), deviceMap: loadDeviceMap('missing-701-map') });
  try {
    await assert.rejects(r.driver.open(), /required SunSpec model 701 missing \(device has 1, 702, 704 at base 40000\)/);
  } finally {
    await r.dispose();
  }
});

test('a device that comes back with another map (firmware update) is rediscovered; one without 701 is a discovery fault', async () => {
  const clock = new VirtualClock(T0);
  const r = await rig({ clock });
  const serve = async (name: string) => {
    await r.server.close();
    r.server = await startSimSunspecServer({ port: r.port, host: '127.0.0.1', inverter: r.inverter, car: r.car, clock, deviceMap: loadDeviceMap(name) });
  };
  const settle = async () => {
    for (let i = 0; i < 10; i++) {
      clock.advance(1000);
      await r.driver.refresh();
      if (!r.driver.state().fault || r.driver.state().fault!.code === 'discovery') return;
    }
  };
  try {
    await r.driver.open();
    await r.driver.setPowerW(2500);
    await serve('unexpected-map');
    await settle();
    assert.equal(r.driver.state().fault, undefined);
    assert.equal(r.driver.deviceMap!.base, 0);
    assert.equal(r.inverter.setpointW, 2500, 'command re-applied on the new map');

    await serve('missing-701-map');
    await settle();
    assert.equal(r.driver.state().fault?.code, 'discovery');
    assert.match(r.driver.state().fault!.message, /required SunSpec model 701 missing/);
  } finally {
    await r.dispose();
  }
});

function int32(regs: number[]): number {
  return decodeRaw('int32', regs) as number;
}
