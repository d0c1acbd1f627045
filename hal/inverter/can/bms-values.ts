/**
 * What the emulated battery tells the inverter, from the runtime's command and what is known about the car:
 * the values of every BMS frame (pure: no I/O, no clock).
 *
 * The hybrid inverter decides moment to moment how much it draws from or pushes into "its battery"; the
 * only lever is the advertised limits. So the runtime's setpoint becomes a limit: a charge setpoint of P W
 * (AC) allows a charge current of P × efficiency / V and no discharge; a discharge setpoint allows a
 * discharge current of |P| / efficiency / V and no charge; 0 W allows neither. The discharge floor, the
 * dispatch, the car's limits and every cap are already inside the setpoint (the control core's bounded
 * command), so at or below the effective floor the discharge limit is 0 A.
 *
 * Stopping never uses 0 V: the charge and discharge voltage limits always carry the configured pack's
 * values (Victron reads a 0 V charge voltage as over-voltage and discharges; Deye raises W31 on 0.1 V);
 * a stop is 0 A plus the 0x35C enable bits off.
 */
import type { AlarmItem, FrameValues } from './codec.ts';
import type { CanProfile } from './profiles.ts';

/** The battery as the inverter is told about it (the DC stage's bus, with the car behind it). */
export interface PackConfig {
  /** Nominal bus voltage presented to the inverter, V (0x356 when the inverter does not report its own). */
  voltageV: number;
  /** Charge voltage limit (0x351 bytes 0–1), V: never 0. */
  chargeVoltageV: number;
  /** Discharge cut-off voltage (0x351 bytes 6–7), V: never 0. */
  dischargeVoltageV: number;
  /** Most charge / discharge current ever advertised, A. */
  maxChargeA: number;
  maxDischargeA: number;
  /** State of health sent in 0x355, % (the car does not report one through the bridge). */
  sohPct: number;
  /** Temperature sent in 0x356, °C (the car's own is not available through the bridge). */
  temperatureC: number;
  /** Capacity sent in 0x35F, Ah. */
  capacityAh: number;
}

export interface BmsInputs {
  /** The AC power command in force, W, positive into the car. */
  commandW: number;
  /** The runtime asked for grid-forming (island): the island's load sets the power, up to the pack's discharge limit. */
  gridForming: boolean;
  efficiency: number;
  /** The car's SoC when it is known and fresh; undefined = unknown (the BMS-internal warning is raised). */
  socPct?: number;
  /** SoC to show while unknown: the last known one. */
  lastSocPct?: number;
  /** DC bus voltage the inverter reports (0x305), V; undefined = the pack's nominal. */
  busVoltageV?: number;
  /** Measured DC current into the car, A (positive = charging); undefined = unknown (sent as 0). */
  currentIntoCarA?: number;
  /** Alarm and warning items to raise (0x35A, and their 0x359 counterparts). */
  alarms: ReadonlySet<AlarmItem>;
  warnings: ReadonlySet<AlarmItem>;
  /** Ask for forced charging while charging is commanded (0x35C b5; UNCONFIRMED per inverter, off by default). */
  forceChargeRequest: boolean;
}

export interface BmsLimits {
  chargeCurrentLimitA: number;
  dischargeCurrentLimitA: number;
  chargeEnable: boolean;
  dischargeEnable: boolean;
}

/** The current limits for a command (0.1 A steps, rounded down so the advertised limit never exceeds the command). */
export function limitsFor(inp: Pick<BmsInputs, 'commandW' | 'gridForming' | 'efficiency'>, pack: PackConfig): BmsLimits {
  const v = pack.voltageV;
  let cha = 0;
  let dis = 0;
  // whether the SoC is good enough to move power on is the core's call, already in the setpoint (no discharge
  // on an unknown SoC, charging goes on): the limits follow the setpoint and nothing else
  if (inp.gridForming) dis = pack.maxDischargeA;
  else if (inp.commandW > 0) cha = Math.min(pack.maxChargeA, (inp.commandW * inp.efficiency) / v);
  else if (inp.commandW < 0) dis = Math.min(pack.maxDischargeA, -inp.commandW / inp.efficiency / v);
  cha = floorTenth(cha);
  dis = floorTenth(dis);
  return { chargeCurrentLimitA: cha, dischargeCurrentLimitA: dis, chargeEnable: cha > 0, dischargeEnable: dis > 0 };
}

/** The values of every frame the profile sends, keyed by field name (codec.ts FRAME_LAYOUTS). */
export function bmsValues(inp: BmsInputs, pack: PackConfig, profile: CanProfile): FrameValues {
  const lim = limitsFor(inp, pack);
  const soc = inp.socPct ?? inp.lastSocPct ?? 50;
  const warn = inp.warnings;
  const alarm = inp.alarms;
  const v: FrameValues = {
    chargeVoltageLimitV: pack.chargeVoltageV,
    chargeCurrentLimitA: lim.chargeCurrentLimitA,
    dischargeCurrentLimitA: lim.dischargeCurrentLimitA,
    dischargeVoltageLimitV: pack.dischargeVoltageV,
    socPct: Math.round(Math.max(0, Math.min(100, soc))),
    sohPct: Math.round(pack.sohPct),
    socHiResPct: Math.max(0, Math.min(100, soc)),
    voltageV: inp.busVoltageV ?? pack.voltageV,
    currentA: profile.currentSign * (inp.currentIntoCarA ?? 0),
    temperatureC: pack.temperatureC,
    chargeEnable: lim.chargeEnable,
    dischargeEnable: lim.dischargeEnable,
    forceChargeI: inp.forceChargeRequest && lim.chargeEnable,
    forceChargeII: false,
    fullChargeRequest: false,
    manufacturer: profile.manufacturer,
    batteryType: profile.batteryType,
    bmsVersion: profile.bmsVersion,
    capacityAh: pack.capacityAh,
    moduleCount: profile.moduleCount,
    marker: 'PN',
    online: true,
    // 0x359 (Pylon v1.2): the same conditions as the 0x35A items
    protectionSystemFault: alarm.has('general') || alarm.has('bmsInternal'),
    protectionDischargeOverCurrent: alarm.has('highCurrent'),
    protectionChargeOverCurrent: alarm.has('highChargeCurrent'),
    warningDischargeOverCurrent: warn.has('highCurrent'),
    warningChargeHighCurrent: warn.has('highChargeCurrent'),
    warningInternalCommFail: warn.has('bmsInternal'),
  };
  // cell voltages and temperatures are the car's own BMS's business: no such facts reach this runtime
  for (const n of ['OverVoltage', 'UnderVoltage', 'OverTemperature', 'UnderTemperature']) {
    v[`protection${n}`] = false;
    v[`warning${n}`] = false;
  }
  for (const item of ALL_ITEMS) {
    v[`alarm.${item}`] = alarm.has(item);
    v[`warning.${item}`] = warn.has(item);
  }
  return v;
}

const ALL_ITEMS: AlarmItem[] = ['general', 'lowVoltage', 'highVoltage', 'highTemperature', 'lowTemperature', 'highTemperatureCharge', 'lowTemperatureCharge', 'highCurrent', 'highChargeCurrent', 'contactor', 'shortCircuit', 'bmsInternal', 'cellImbalance'];

function floorTenth(a: number): number {
  return a > 0 ? Math.floor(a * 10 + 1e-9) / 10 : 0;
}
