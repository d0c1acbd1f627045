/**
 * SunSpec inverter driver: factory from the `inverter` config section. Keys: docs/sunspec.md.
 */
import type { Clock, InverterPort } from '../../ports.ts';
import { SunspecInverter } from './driver.ts';
import type { ModbusLink } from './transport.ts';
import type { ModbusBuses } from '../../modbus/bus.ts';

export { SunspecInverter } from './driver.ts';
export type { ModbusLink } from './transport.ts';

/** The part of the `inverter` config section this driver reads. */
export interface SunspecInverterConfig {
  /** TCP: {host, port?, unitId?}; RTU: {path, baudRate?, parity?, stopBits?, dataBits?, unitId?}. */
  modbus?: Record<string, unknown>;
  /** SunSpec base register (0-based); absent or null = probe 40000, 0, 50000. */
  base?: number | null;
  timeoutMs?: number;
  retries?: number;
  reversionS?: number;
  /** One-way conversion efficiency reported in the ratings (SunSpec has no such point). */
  efficiency?: number;
  /** Read static scale factors once instead of with every tick's values (less RS-485 bus time). */
  cacheScaleFactors?: boolean;
  [k: string]: unknown;
}

const DEFAULTS = { timeoutMs: 1000, retries: 1, reversionS: 10, efficiency: 0.95 };

/** Read `inverter.modbus` (or the section named by `section`) into a link; throws naming the config key that is wrong. */
export function parseModbusLink(modbus: Record<string, unknown> | undefined, section = 'inverter.modbus'): ModbusLink {
  if (!modbus || typeof modbus !== 'object') throw new Error(`${section} is missing: give {host, port, unitId} for TCP or {path, baudRate, parity, stopBits, unitId} for RTU`);
  const int = (key: string, dflt: number, lo: number, hi: number): number => {
    const v = modbus[key] ?? dflt;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) throw new Error(`${section}.${key} must be an integer ${lo}..${hi}, got ${JSON.stringify(modbus[key])}`);
    return v;
  };
  if (typeof modbus.path === 'string' && modbus.path !== '') {
    const parity = modbus.parity ?? 'none';
    if (parity !== 'none' && parity !== 'even' && parity !== 'odd') throw new Error(`${section}.parity must be "none", "even" or "odd", got ${JSON.stringify(parity)}`);
    const stopBits = int('stopBits', 1, 1, 2) as 1 | 2;
    const dataBits = int('dataBits', 8, 7, 8) as 7 | 8;
    const baudRate = int('baudRate', 9600, 1200, 921600);
    return { kind: 'rtu', path: modbus.path, baudRate, parity, stopBits, dataBits, unitId: int('unitId', 1, 1, 247) };
  }
  if (typeof modbus.host === 'string' && modbus.host !== '') {
    return { kind: 'tcp', host: modbus.host, port: int('port', 502, 1, 65535), unitId: int('unitId', 1, 0, 255) };
  }
  throw new Error(`${section} needs either "host" (Modbus TCP) or "path" (Modbus RTU over RS-485)`);
}

/**
 * The SunSpec inverter port for `inverter.driver = "sunspec"`. Never throws: a bad config makes `open()`
 * reject with the key that is wrong, like any other device that cannot be opened.
 */
export function createSunspecInverter(config: SunspecInverterConfig, clock: Clock, log?: (msg: string) => void, buses?: ModbusBuses): InverterPort {
  let link: ModbusLink;
  let channel;
  try {
    link = parseModbusLink(config.modbus);
    // on a bus shared with the site meter, one connection serves both (hal/modbus/bus.ts)
    channel = buses?.channel(link, { timeoutMs: config.timeoutMs ?? DEFAULTS.timeoutMs, retries: config.retries ?? DEFAULTS.retries }, 'inverter.modbus');
  } catch (e) {
    return badConfig(e instanceof Error ? e.message : String(e));
  }
  const base = config.base;
  if (base !== undefined && base !== null && (typeof base !== 'number' || !Number.isInteger(base) || base < 0 || base > 65533)) {
    return badConfig(`inverter.base must be an integer 0..65533 or null, got ${JSON.stringify(base)}`);
  }
  return new SunspecInverter({
    link,
    channel,
    base: base ?? null,
    timeoutMs: config.timeoutMs ?? DEFAULTS.timeoutMs,
    retries: config.retries ?? DEFAULTS.retries,
    reversionS: config.reversionS ?? DEFAULTS.reversionS,
    efficiency: config.efficiency ?? DEFAULTS.efficiency,
    cacheStaticScaleFactors: config.cacheScaleFactors === true,
    clock,
    log,
  });
}

/** A port whose open() rejects with the config problem; everything else is inert. */
function badConfig(message: string): InverterPort {
  return {
    kind: 'inverter',
    open: () => Promise.reject(new Error(`SunSpec inverter: ${message}`)),
    refresh: async () => undefined,
    state: () => ({ fault: { code: 'open_failed', message, sinceMs: 0 } }),
    setPowerW: async () => undefined,
    setGridForming: async () => undefined,
    close: async () => undefined,
    onChange: () => () => undefined,
  };
}
