/**
 * CAN BMS inverter driver: its config (`inverter.can`, docs/can.md) and factory. The channel is SocketCAN
 * on the named interface, or the in-memory bus of the simulated home for `interface: "sim"` (hal/sim/can-home.ts).
 */
import type { Clock } from '../../ports.ts';
import type { PackConfig } from './bms-values.ts';
import type { CarFactsSource } from './car-facts.ts';
import type { CanChannel } from './channel.ts';
import { CanBmsInverter } from './driver.ts';
import { resolveProfile, type CanProfile } from './profiles.ts';
import { SocketcanChannel } from './socketcan-channel.ts';

export { CanBmsInverter } from './driver.ts';
export { vehicleLinkFacts } from './car-facts.ts';

/** `inverter.can`, checked. */
export interface CanConfig {
  interface: string;
  profile: CanProfile;
  keepaliveTimeoutS: number;
  ratedW: number;
  islandCapable: boolean;
  followMode: 'limits' | 'setpoint';
  forceChargeRequest: boolean;
  pack: PackConfig;
}

/** The keys of `inverter.can` and of its `pack`; their defaults are in config/default.json, stated once. */
const KEYS = ['interface', 'profile', 'keepaliveTimeoutS', 'periodMs', 'ratedW', 'islandCapable', 'followMode', 'forceChargeRequest', 'currentSign', 'alarmCodes', 'byteOrder', 'manufacturer', 'keepaliveCarriesDc', 'pack'] as const;
const PACK_KEYS = ['voltageV', 'chargeVoltageV', 'dischargeVoltageV', 'maxChargeA', 'maxDischargeA', 'sohPct', 'temperatureC', 'capacityAh'] as const;

/**
 * Read the merged `inverter.can` section (config/default.json under the installer's file, or under a
 * scenario's `inverter.can`). Throws one Error listing every problem, each naming its key: the schema's
 * rules again (a scenario's section has not been through the schema) and the rules between keys.
 */
export function parseCanConfig(can: Record<string, unknown> | undefined): CanConfig {
  const c = can ?? {};
  const problems: string[] = [];
  const num = (v: unknown, key: string, ok: (x: number) => boolean, what: string): number => {
    if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) {
      problems.push(v === undefined ? `inverter.can.${key}: missing` : `inverter.can.${key}: must be ${what}, got ${JSON.stringify(v)}`);
      return NaN;
    }
    return v;
  };
  for (const k of Object.keys(c)) if (!(KEYS as readonly string[]).includes(k)) problems.push(`inverter.can.${k}: not a setting (one of ${KEYS.join(', ')})`);
  // the numbers say themselves when they are missing; the rest here
  for (const k of ['interface', 'profile', 'periodMs', 'islandCapable', 'followMode', 'forceChargeRequest', 'currentSign', 'alarmCodes', 'byteOrder', 'manufacturer', 'keepaliveCarriesDc'] as const) {
    if (!(k in c)) problems.push(`inverter.can.${k}: missing`);
  }
  if (typeof c.pack !== 'object' || c.pack === null || Array.isArray(c.pack)) problems.push(`inverter.can.pack: must be an object, got ${c.pack === undefined ? 'nothing' : JSON.stringify(c.pack)}`);
  else for (const k of Object.keys(c.pack)) if (!(PACK_KEYS as readonly string[]).includes(k)) problems.push(`inverter.can.pack.${k}: not a setting (one of ${PACK_KEYS.join(', ')})`);
  const oneOf = (key: string, allowed: readonly unknown[]) => {
    if (key in c && !allowed.includes(c[key])) problems.push(`inverter.can.${key}: one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}, got ${JSON.stringify(c[key])}`);
  };
  oneOf('currentSign', [1, -1, null]);
  oneOf('alarmCodes', ['diybms', 'swapped', null]);
  oneOf('byteOrder', ['le', 'be', null]);
  oneOf('keepaliveCarriesDc', [true, false, null]);
  oneOf('islandCapable', [true, false]);
  oneOf('forceChargeRequest', [true, false]);
  if (c.periodMs !== undefined && c.periodMs !== null && typeof c.periodMs !== 'number') problems.push(`inverter.can.periodMs: a number of ms or null, got ${JSON.stringify(c.periodMs)}`);
  if (c.manufacturer !== undefined && c.manufacturer !== null && typeof c.manufacturer !== 'string') problems.push(`inverter.can.manufacturer: a string or null, got ${JSON.stringify(c.manufacturer)}`);
  const iface = c.interface;
  if (iface !== undefined && (typeof iface !== 'string' || !/^[A-Za-z0-9_.-]{1,15}$/.test(iface))) problems.push(`inverter.can.interface: must be an interface name such as "can0" (or "sim"), got ${JSON.stringify(iface)}`);
  let profile: CanProfile | undefined;
  try {
    profile = resolveProfile(String(c.profile), {
      periodMs: typeof c.periodMs === 'number' ? c.periodMs : undefined,
      currentSign: c.currentSign as 1 | -1 | null | undefined,
      alarmCodes: c.alarmCodes as 'diybms' | 'swapped' | null | undefined,
      byteOrder: c.byteOrder as 'le' | 'be' | null | undefined,
      manufacturer: typeof c.manufacturer === 'string' ? c.manufacturer : undefined,
      keepaliveCarriesDc: c.keepaliveCarriesDc as boolean | null | undefined,
    });
  } catch (e) {
    problems.push((e as Error).message);
  }
  const p = (c.pack ?? {}) as Record<string, unknown>;
  const positive = (x: number) => x > 0;
  const pack: PackConfig = {
    voltageV: num(p.voltageV, 'pack.voltageV', positive, 'a voltage > 0 V'),
    chargeVoltageV: num(p.chargeVoltageV, 'pack.chargeVoltageV', positive, 'a voltage > 0 V (a stop never uses 0 V)'),
    dischargeVoltageV: num(p.dischargeVoltageV, 'pack.dischargeVoltageV', positive, 'a voltage > 0 V'),
    maxChargeA: num(p.maxChargeA, 'pack.maxChargeA', (x) => x >= 0 && x <= 3276.7, '0..3276.7 A'),
    maxDischargeA: num(p.maxDischargeA, 'pack.maxDischargeA', (x) => x >= 0 && x <= 3276.7, '0..3276.7 A'),
    sohPct: num(p.sohPct, 'pack.sohPct', (x) => x >= 0 && x <= 100, '0..100 %'),
    temperatureC: num(p.temperatureC, 'pack.temperatureC', (x) => x >= -40 && x <= 80, '-40..80 °C'),
    capacityAh: num(p.capacityAh, 'pack.capacityAh', (x) => x > 0 && x <= 65535, '1..65535 Ah'),
  };
  if (Object.values(pack).every(Number.isFinite) && !(pack.dischargeVoltageV < pack.voltageV && pack.voltageV < pack.chargeVoltageV)) {
    problems.push(`inverter.can.pack: dischargeVoltageV (${pack.dischargeVoltageV} V) < voltageV (${pack.voltageV} V) < chargeVoltageV (${pack.chargeVoltageV} V) must hold`);
  }
  if (pack.voltageV > 327.67) problems.push(`inverter.can.pack.voltageV: ${pack.voltageV} V does not fit 0x356 (at most 327.67 V): this protocol is for low-voltage batteries`);
  const followMode = c.followMode;
  if (followMode !== undefined && followMode !== 'limits' && followMode !== 'setpoint') problems.push(`inverter.can.followMode: "limits" or "setpoint", got ${JSON.stringify(followMode)}`);
  const config: CanConfig = {
    interface: String(iface),
    profile: profile!,
    keepaliveTimeoutS: num(c.keepaliveTimeoutS, 'keepaliveTimeoutS', (x) => x >= 1 && x <= 3600, '1..3600 s'),
    ratedW: num(c.ratedW, 'ratedW', (x) => x > 0 && x <= 1_000_000, 'a power > 0 W'),
    islandCapable: c.islandCapable === true,
    followMode: followMode as CanConfig['followMode'],
    forceChargeRequest: c.forceChargeRequest === true,
    pack,
  };
  if (problems.length > 0) throw new Error(problems.join('; '));
  return config;
}

export interface CanDeps {
  clock: Clock;
  /** The car's SoC and DC power (vehicleLinkFacts, or the simulated stage's meter). */
  car: CarFactsSource;
  efficiency: number;
  /** How old the car's SoC may be and still be advertised, ms (control.socMaxAgeS). */
  socMaxAgeMs: number;
  log?: (msg: string) => void;
  /** Replaces SocketCAN (the simulated home's in-memory bus). */
  channel?: () => CanChannel;
}

export function createCanInverter(cfg: CanConfig, deps: CanDeps): CanBmsInverter {
  return new CanBmsInverter({
    channel: deps.channel ?? (() => new SocketcanChannel(cfg.interface, { clock: deps.clock })),
    profile: cfg.profile,
    pack: cfg.pack,
    ratedW: cfg.ratedW,
    efficiency: deps.efficiency,
    islandCapable: cfg.islandCapable,
    keepaliveTimeoutMs: cfg.keepaliveTimeoutS * 1000,
    socMaxAgeMs: deps.socMaxAgeMs,
    car: deps.car,
    clock: deps.clock,
    log: deps.log,
    followMode: cfg.followMode,
    forceChargeRequest: cfg.forceChargeRequest,
  });
}
