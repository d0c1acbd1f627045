/**
 * Site meter drivers: the factory from the `siteMeter` config section (docs/meter.md, docs/configuration.md).
 *
 * - `"sunspec"`: a SunSpec meter (201–204, 211–214) over Modbus TCP or RTU, `siteMeter.modbus` shaped like
 *   `inverter.modbus` plus `base`; optional PV source `siteMeter.pv.modbus` (a PV inverter's 101–103 or a PV
 *   meter). A meter on the inverter's bus shares its connection (hal/modbus/bus.ts).
 * - `"mqtt"`: `siteMeter.url`, `siteMeter.topic`, `siteMeter.path` (JSON path; none = plain number),
 *   `siteMeter.maxAgeS`, optional `pvTopic`/`pvPath`.
 * - `"sim"`: the simulated site's meter (the caller hands it in).
 *
 * A section that cannot be used gives a port whose `open()` rejects naming the key, like any device that
 * cannot be opened: the runtime runs on, in fault for the meter, and the core uses the assumed house load.
 */
import type { Clock, SiteMeterPort } from '../ports.ts';
import { parseModbusLink } from '../inverter/sunspec/index.ts';
import type { ModbusLink } from '../inverter/sunspec/transport.ts';
import type { ModbusBuses, ModbusChannel } from '../modbus/bus.ts';
import { SunspecMeter, type SunspecDeviceOptions } from './sunspec/driver.ts';
import { MqttMeter } from './mqtt.ts';
import type { SiteMeterConfig } from '../../src/config/types.ts';

export { SunspecMeter } from './sunspec/driver.ts';
export { MqttMeter } from './mqtt.ts';

/** The `siteMeter` config section (null = no meter); its keys are documented in docs/configuration.md. */
export type { SiteMeterConfig };

export const SITE_METER_DEFAULTS = { timeoutMs: 1000, retries: 1, maxAgeS: 10 };

export interface SiteMeterDeps {
  clock: Clock;
  log?: (msg: string) => void;
  /** The runtime's Modbus buses, so a meter on the inverter's RS-485 line shares its connection. */
  buses?: ModbusBuses;
  /** The simulated site's meter, for `driver: "sim"`. */
  simMeter?: SiteMeterPort;
}

/** The site meter port the section names; undefined for `null`. Never throws: see the module comment. */
export function createSiteMeter(section: SiteMeterConfig | null | undefined, deps: SiteMeterDeps): SiteMeterPort | undefined {
  if (section === null || section === undefined) return undefined;
  try {
    switch (section.driver) {
      case 'sim':
        if (!deps.simMeter) throw new Error('siteMeter.driver "sim" needs the simulated site (a simulation config)');
        return deps.simMeter;
      case 'sunspec':
        return sunspecMeter(section, deps);
      case 'mqtt':
        return mqttMeter(section, deps);
      default:
        throw new Error(`siteMeter.driver must be "sunspec", "mqtt" or "sim" (or siteMeter null for none), got ${JSON.stringify((section as { driver?: unknown }).driver)}`);
    }
  } catch (e) {
    return badConfig(e instanceof Error ? e.message : String(e));
  }
}

function base(modbus: Record<string, unknown>, key: string): number | null {
  const b = modbus.base;
  if (b === undefined || b === null) return null;
  if (typeof b !== 'number' || !Number.isInteger(b) || b < 0 || b > 65533) throw new Error(`${key}.base must be an integer 0..65533 or null, got ${JSON.stringify(b)}`);
  return b;
}

function positive(v: unknown, key: string, dflt: number, max: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || v > max) throw new Error(`${key} must be a number above 0 and at most ${max}, got ${JSON.stringify(v)}`);
  return v;
}

function sunspecMeter(s: SiteMeterConfig, deps: SiteMeterDeps): SiteMeterPort {
  const link = parseModbusLink(s.modbus, 'siteMeter.modbus');
  const timeoutMs = positive(s.timeoutMs, 'siteMeter.timeoutMs', SITE_METER_DEFAULTS.timeoutMs, 60000);
  const retries = s.retries ?? SITE_METER_DEFAULTS.retries;
  if (!Number.isInteger(retries) || retries < 0 || retries > 10) throw new Error(`siteMeter.retries must be an integer 0..10, got ${JSON.stringify(s.retries)}`);
  const channel = (l: ModbusLink, key: string): ModbusChannel | undefined => deps.buses?.channel(l, { timeoutMs, retries }, key);
  let pv: SunspecDeviceOptions | undefined;
  if (s.pv) {
    const pvLink = parseModbusLink(s.pv.modbus, 'siteMeter.pv.modbus');
    pv = { link: pvLink, base: base(s.pv.modbus!, 'siteMeter.pv.modbus'), invertSign: s.pv.invertSign === true, channel: channel(pvLink, 'siteMeter.pv.modbus') };
  }
  return new SunspecMeter({
    link,
    channel: channel(link, 'siteMeter.modbus'),
    base: base(s.modbus!, 'siteMeter.modbus'),
    invertSign: s.invertSign === true,
    pv,
    timeoutMs,
    retries,
    clock: deps.clock,
    log: deps.log,
  });
}

function mqttMeter(s: SiteMeterConfig, deps: SiteMeterDeps): SiteMeterPort {
  if (typeof s.url !== 'string' || !/^(mqtts?|wss?|tcp|ssl):\/\//.test(s.url)) throw new Error(`siteMeter.url must be a broker URL such as "mqtt://192.168.1.10:1883", got ${JSON.stringify(s.url)}`);
  if (typeof s.topic !== 'string' || s.topic === '' || /[#+]/.test(s.topic)) throw new Error(`siteMeter.topic must be one topic without wildcards, got ${JSON.stringify(s.topic)}`);
  if (s.pvTopic !== undefined && s.pvTopic !== null && (typeof s.pvTopic !== 'string' || s.pvTopic === '' || /[#+]/.test(s.pvTopic))) throw new Error(`siteMeter.pvTopic must be one topic without wildcards or null, got ${JSON.stringify(s.pvTopic)}`);
  if (s.unit !== undefined && s.unit !== 'W' && s.unit !== 'kW') throw new Error(`siteMeter.unit must be "W" or "kW", got ${JSON.stringify(s.unit)}`);
  try {
    return new MqttMeter({
      url: s.url,
      grid: { topic: s.topic, path: s.path },
      pv: s.pvTopic ? { topic: s.pvTopic, path: s.pvPath } : null,
      currentPaths: s.currentPaths,
      maxAgeS: positive(s.maxAgeS, 'siteMeter.maxAgeS', SITE_METER_DEFAULTS.maxAgeS, 3600),
      invertSign: s.invertSign === true,
      unit: s.unit,
      username: s.username ?? undefined,
      password: s.password ?? undefined,
      clock: deps.clock,
      log: deps.log,
    });
  } catch (e) {
    throw new Error(`siteMeter.path/pvPath/currentPaths: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** A port whose open() rejects with the config problem; its state carries it as a fault. */
function badConfig(message: string): SiteMeterPort {
  return {
    kind: 'site-meter',
    open: () => Promise.reject(new Error(`site meter: ${message}`)),
    refresh: async () => undefined,
    state: () => ({ fault: { code: 'open_failed', message, sinceMs: 0 } }),
    close: async () => undefined,
  };
}
