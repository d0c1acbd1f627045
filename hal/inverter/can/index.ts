/**
 * CAN BMS inverter driver: its config (`inverter.can`, docs/can.md) and factory. The channel is SocketCAN
 * on the named interface, or the in-memory bus of the simulated home for `interface: "sim"` (hal/sim/can-home.ts).
 */
import type { Clock } from '../../ports.ts';
import type { PackConfig } from './bms-values.ts';
import type { CarFactsSource } from './car-facts.ts';
import type { CanChannel } from './channel.ts';
import { CanBmsInverter } from './driver.ts';
import { PROFILE_NAMES, resolveProfile, type CanProfile } from './profiles.ts';
import { SocketcanChannel } from './socketcan-channel.ts';

export { CanBmsInverter } from './driver.ts';
export { vehicleLinkFacts } from './car-facts.ts';

/** `inverter.can` after defaults and checks. */
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

export const CAN_DEFAULTS = {
  interface: 'can0',
  profile: 'pylontech-1.2',
  keepaliveTimeoutS: 10,
  ratedW: 5000,
  islandCapable: false,
  followMode: 'limits',
  forceChargeRequest: false,
  pack: { voltageV: 51.2, chargeVoltageV: 55.2, dischargeVoltageV: 46.0, maxChargeA: 100, maxDischargeA: 100, sohPct: 100, temperatureC: 25, capacityAh: 100 } satisfies PackConfig,
} as const;

/**
 * Read `inverter.can` over the defaults. Throws one Error listing every problem, each naming its key
 * (the schema checks types and ranges; these are the rules between keys).
 */
export function parseCanConfig(can: Record<string, unknown> | undefined): CanConfig {
  const c = can ?? {};
  const problems: string[] = [];
  const num = (v: unknown, key: string, dflt: number, ok: (x: number) => boolean, what: string): number => {
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) {
      problems.push(`inverter.can.${key}: must be ${what}, got ${JSON.stringify(v)}`);
      return dflt;
    }
    return v;
  };
  // the daemon's config has passed the schema; a scenario's inverter.can has not: the same rules here
  const KEYS = ['interface', 'profile', 'keepaliveTimeoutS', 'periodMs', 'ratedW', 'islandCapable', 'followMode', 'forceChargeRequest', 'currentSign', 'alarmCodes', 'byteOrder', 'manufacturer', 'keepaliveCarriesDc', 'pack'];
  const PACK_KEYS = Object.keys(CAN_DEFAULTS.pack);
  for (const k of Object.keys(c)) if (!KEYS.includes(k)) problems.push(`inverter.can.${k}: not a setting (one of ${KEYS.join(', ')})`);
  if (c.pack !== undefined && (typeof c.pack !== 'object' || c.pack === null || Array.isArray(c.pack))) problems.push('inverter.can.pack: must be an object');
  else for (const k of Object.keys((c.pack ?? {}) as object)) if (!PACK_KEYS.includes(k)) problems.push(`inverter.can.pack.${k}: not a setting (one of ${PACK_KEYS.join(', ')})`);
  const oneOf = (key: string, allowed: readonly unknown[]) => {
    if (c[key] !== undefined && !allowed.includes(c[key])) problems.push(`inverter.can.${key}: one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}, got ${JSON.stringify(c[key])}`);
  };
  oneOf('currentSign', [1, -1, null]);
  oneOf('alarmCodes', ['diybms', 'swapped', null]);
  oneOf('byteOrder', ['le', 'be', null]);
  oneOf('keepaliveCarriesDc', [true, false, null]);
  oneOf('islandCapable', [true, false]);
  oneOf('forceChargeRequest', [true, false]);
  if (c.periodMs !== undefined && c.periodMs !== null && typeof c.periodMs !== 'number') problems.push(`inverter.can.periodMs: a number of ms or null, got ${JSON.stringify(c.periodMs)}`);
  if (c.manufacturer !== undefined && c.manufacturer !== null && typeof c.manufacturer !== 'string') problems.push(`inverter.can.manufacturer: a string or null, got ${JSON.stringify(c.manufacturer)}`);
  const iface = c.interface ?? CAN_DEFAULTS.interface;
  if (typeof iface !== 'string' || !/^[A-Za-z0-9_.-]{1,15}$/.test(iface)) problems.push(`inverter.can.interface: must be an interface name such as "can0" (or "sim"), got ${JSON.stringify(iface)}`);
  let profile: CanProfile | undefined;
  try {
    profile = resolveProfile(typeof c.profile === 'string' ? c.profile : CAN_DEFAULTS.profile, {
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
  if (c.profile !== undefined && typeof c.profile !== 'string') problems.push(`inverter.can.profile: one of ${PROFILE_NAMES.join(', ')}`);
  const p = (c.pack ?? {}) as Record<string, unknown>;
  const d = CAN_DEFAULTS.pack;
  const positive = (x: number) => x > 0;
  const pack: PackConfig = {
    voltageV: num(p.voltageV, 'pack.voltageV', d.voltageV, positive, 'a voltage > 0 V'),
    chargeVoltageV: num(p.chargeVoltageV, 'pack.chargeVoltageV', d.chargeVoltageV, positive, 'a voltage > 0 V (a stop never uses 0 V)'),
    dischargeVoltageV: num(p.dischargeVoltageV, 'pack.dischargeVoltageV', d.dischargeVoltageV, positive, 'a voltage > 0 V'),
    maxChargeA: num(p.maxChargeA, 'pack.maxChargeA', d.maxChargeA, (x) => x >= 0 && x <= 3276.7, '0..3276.7 A'),
    maxDischargeA: num(p.maxDischargeA, 'pack.maxDischargeA', d.maxDischargeA, (x) => x >= 0 && x <= 3276.7, '0..3276.7 A'),
    sohPct: num(p.sohPct, 'pack.sohPct', d.sohPct, (x) => x >= 0 && x <= 100, '0..100 %'),
    temperatureC: num(p.temperatureC, 'pack.temperatureC', d.temperatureC, (x) => x >= -40 && x <= 80, '-40..80 °C'),
    capacityAh: num(p.capacityAh, 'pack.capacityAh', d.capacityAh, (x) => x > 0 && x <= 65535, '1..65535 Ah'),
  };
  if (!(pack.dischargeVoltageV < pack.voltageV && pack.voltageV < pack.chargeVoltageV)) {
    problems.push(`inverter.can.pack: dischargeVoltageV (${pack.dischargeVoltageV} V) < voltageV (${pack.voltageV} V) < chargeVoltageV (${pack.chargeVoltageV} V) must hold`);
  }
  if (pack.voltageV > 327.67) problems.push(`inverter.can.pack.voltageV: ${pack.voltageV} V does not fit 0x356 (at most 327.67 V): this protocol is for low-voltage batteries`);
  const followMode = c.followMode ?? CAN_DEFAULTS.followMode;
  if (followMode !== 'limits' && followMode !== 'setpoint') problems.push(`inverter.can.followMode: "limits" or "setpoint", got ${JSON.stringify(followMode)}`);
  const config: CanConfig = {
    interface: String(iface),
    profile: profile!,
    keepaliveTimeoutS: num(c.keepaliveTimeoutS, 'keepaliveTimeoutS', CAN_DEFAULTS.keepaliveTimeoutS, (x) => x >= 1 && x <= 3600, '1..3600 s'),
    ratedW: num(c.ratedW, 'ratedW', CAN_DEFAULTS.ratedW, (x) => x > 0 && x <= 1_000_000, 'a power > 0 W'),
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
