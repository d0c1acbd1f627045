/** `inverter.driver: "can-bms"` in the config: the real interface (absent here), the simulated one, bad keys. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { VirtualClock } from '../../hal/sim/virtual-clock.ts';
import { ConfigError, loadConfig } from '../../src/config/load.ts';
import { buildHardware } from '../../src/wiring.ts';
import { canSection } from './harness.ts';

const T = Date.parse('2026-11-23T18:00:00Z');
const base = { timezone: 'UTC', uplink: { url: null }, vehicleLink: { driver: 'sim' }, gpio: { driver: 'sim' } };

describe('wiring: inverter.driver "can-bms"', () => {
  it('on can0 (absent here): the hardware builds, and the port\'s open names can0 and how to bring it up', async () => {
    const config = loadConfig(null, { ...base, inverter: { driver: 'can-bms', can: { interface: 'can0', profile: 'pylontech-1.3' } } });
    const logs: string[] = [];
    const hw = await buildHardware(config, new VirtualClock(T), (m) => logs.push(m));
    try {
      assert.ok(hw.describe.some((d) => d === 'inverter: CAN BMS profile pylontech-1.3 on can0'), hw.describe.join('\n'));
      await assert.rejects(hw.ports.inverter.open(), /CAN interface can0: .*ip link set can0 up type can bitrate 500000/);
      // the runtime keeps the port and retries its open; meanwhile nothing it calls rejects
      await hw.ports.inverter.refresh();
      await hw.ports.inverter.setPowerW(1000);
      assert.equal(hw.ports.inverter.state().reading, undefined);
    } finally {
      await hw.ports.inverter.close();
      await hw.close();
    }
  });

  it('on "sim": the simulated hybrid inverter on an in-memory bus moves the simulated car', async () => {
    const clock = new VirtualClock(T);
    const config = loadConfig(null, { ...base, inverter: { driver: 'can-bms', efficiency: 0.95, can: { interface: 'sim', profile: 'sma', ratedW: 11000, pack: { maxChargeA: 250, maxDischargeA: 250 } } } });
    const hw = await buildHardware(config, clock, () => undefined);
    try {
      const inv = hw.ports.inverter;
      await inv.open();
      await inv.setPowerW(-5000);
      const soc0 = hw.site!.car.socPct;
      clock.advance(3000);
      await inv.refresh();
      const r = inv.state().reading!;
      assert.equal(inv.state().fault, undefined);
      // -5000 W AC: 5000 / 0.95 / 51.2 V = 102.79 A, advertised as 102.7 A → 102.7 × 51.2 × 0.95 = 4995.3 W out
      assert.ok(r.acPowerW <= 0 && r.acPowerW >= -5000 && r.acPowerW < -4990, `${r.acPowerW}`);
      assert.ok(hw.site!.car.socPct < soc0);
      assert.ok(hw.site!.inverter.exportedWh > 0, 'the home\'s power stage carried it');
    } finally {
      await hw.ports.inverter.close();
      await hw.close();
    }
  });

  it('inverter.can rules between keys are a config error naming the key', async () => {
    const config = loadConfig(null, { ...base, inverter: { driver: 'can-bms', can: { interface: 'can0', pack: { voltageV: 60, chargeVoltageV: 55.2 } } } });
    await assert.rejects(buildHardware(config, new VirtualClock(T), () => undefined), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.match(e.message, /inverter\.can\.pack: dischargeVoltageV \(46 V\) < voltageV \(60 V\) < chargeVoltageV \(55\.2 V\) must hold/);
      return true;
    });
  });

  it('the schema refuses an unknown profile, a 0 V charge voltage and unknown keys', () => {
    assert.throws(() => loadConfig(null, { ...base, inverter: { driver: 'can-bms', can: { profile: 'byd-hvs' } } }), /inverter\/can\/profile|inverter\.can\.profile/);
    assert.throws(() => loadConfig(null, { ...base, inverter: { driver: 'can-bms', can: { pack: { chargeVoltageV: 0 } } } }), /chargeVoltageV/);
    assert.throws(() => loadConfig(null, { ...base, inverter: { driver: 'can-bms', can: { bitrate: 250000 } } }), /bitrate/);
  });
});

describe('inverter.can without the schema (a scenario file): the same rules, every problem named', () => {
  it('unknown keys, wrong types and values are refused together', async () => {
    const { parseCanConfig } = await import('../../hal/inverter/can/index.ts');
    assert.throws(
      () => parseCanConfig(canSection({ profile: 'pylontech-1.3', bitrate: 500000, currentSign: 2, alarmCodes: 'inverted', periodMs: 'fast', islandCapable: 'yes', pack: { voltageV: 51.2, cellCount: 16 } })),
      (e: Error) => {
        for (const re of [/inverter\.can\.bitrate: not a setting/, /inverter\.can\.pack\.cellCount: not a setting/, /inverter\.can\.currentSign: one of 1, -1, null, got 2/, /inverter\.can\.alarmCodes: one of "diybms", "swapped", null/, /inverter\.can\.periodMs: a number of ms or null/, /inverter\.can\.islandCapable: one of true, false/]) {
          assert.match(e.message, re);
        }
        return true;
      },
    );
    assert.throws(() => parseCanConfig({ profile: 'sma', pack: {} }), (e: Error) => {
      for (const key of ['interface', 'ratedW', 'keepaliveTimeoutS', 'followMode', 'pack.voltageV', 'pack.capacityAh']) assert.ok(e.message.includes(`inverter.can.${key}: missing`), key);
      assert.doesNotMatch(e.message, /got undefined/);
      return true;
    });
    const ok = parseCanConfig(canSection({ profile: 'sma', currentSign: -1, alarmCodes: 'swapped', periodMs: 200 }));
    assert.deepEqual([ok.profile.name, ok.profile.currentSign, ok.profile.alarmCodes, ok.profile.periodMs, ok.interface], ['sma', -1, { active: 2, ok: 1 }, 200, 'can0']);
  });
});
