/**
 * The BMS profiles as data: which frames, how often, which DLCs, the manufacturer string, the sign of the
 * current and the 0x35A codes. Adding a profile is adding a table here, not code. Sources and the points
 * that are UNCONFIRMED (and therefore overridable from `inverter.can`): docs/can.md.
 */
import type { CodecProfile } from './codec.ts';

export interface CanProfile extends CodecProfile {
  /** Key in `inverter.can.profile`. */
  name: string;
  title: string;
  /** The whole frame set is sent once per period, ms. */
  periodMs: number;
  /** BMS frames sent every period, in this order. */
  frames: readonly number[];
  /** 0x35E: inverters pick their behaviour from it. */
  manufacturer: string;
  /**
   * Sign of the 0x356 current while the battery charges: +1 = positive while charging (diyBMS), −1 = the
   * opposite. UNCONFIRMED across inverters.
   */
  currentSign: 1 | -1;
  /** 0x359 byte 4. */
  moduleCount: number;
  /** 0x35F bytes 0–1 and 2–3 (layout UNCONFIRMED). */
  batteryType: number;
  bmsVersion: number;
  /** Frame ids the inverter sends. */
  keepaliveId: number;
  inverterIdId: number;
}

const COMMON = {
  byteOrder: 'le',
  alarmCodes: { active: 1, ok: 2 },
  keepaliveId: 0x305,
  inverterIdId: 0x307,
  currentSign: 1,
  moduleCount: 1,
  batteryType: 0,
  bmsVersion: 0,
} as const;

export const PROFILES: Readonly<Record<string, CanProfile>> = {
  'pylontech-1.2': {
    ...COMMON,
    name: 'pylontech-1.2',
    title: 'Pylontech v1.2 (0x359 protections, 0x35C requests)',
    periodMs: 1000,
    frames: [0x351, 0x355, 0x356, 0x359, 0x35c, 0x35e],
    dlc: { 0x351: 8, 0x355: 4, 0x356: 6, 0x359: 8, 0x35c: 2, 0x35e: 8 },
    manufacturer: 'PYLON',
    keepaliveCarriesDc: false,
  },
  'pylontech-1.3': {
    ...COMMON,
    name: 'pylontech-1.3',
    title: 'Pylontech v1.3 (0x35A alarms, 0x35F battery info)',
    periodMs: 1000,
    frames: [0x351, 0x355, 0x356, 0x35a, 0x35e, 0x35f],
    dlc: { 0x351: 8, 0x355: 6, 0x356: 6, 0x35a: 8, 0x35e: 8, 0x35f: 8 },
    manufacturer: 'PYLON',
    keepaliveCarriesDc: false,
  },
  sma: {
    ...COMMON,
    name: 'sma',
    title: 'SMA Sunny Island / Sunny Boy Storage (0x35A alarms, 100 ms cycle; 0x305 carries the DC side)',
    periodMs: 100,
    frames: [0x351, 0x355, 0x356, 0x35a, 0x35e, 0x35f],
    dlc: { 0x351: 8, 0x355: 6, 0x356: 6, 0x35a: 8, 0x35e: 8, 0x35f: 8 },
    manufacturer: 'PYLON',
    keepaliveCarriesDc: true,
  },
};

export const PROFILE_NAMES = Object.keys(PROFILES);

/** What `inverter.can` may override in a profile (the UNCONFIRMED points, and the period). */
export interface ProfileOverrides {
  periodMs?: number | null;
  currentSign?: 1 | -1 | null;
  /** `diybms`: 1 = active, 2 = OK; `swapped`: 2 = active, 1 = OK. */
  alarmCodes?: 'diybms' | 'swapped' | null;
  byteOrder?: 'le' | 'be' | null;
  manufacturer?: string | null;
  keepaliveCarriesDc?: boolean | null;
}

/** The named profile with the overrides applied; throws naming the key when the name is unknown or a value is bad. */
export function resolveProfile(name: string, o: ProfileOverrides = {}): CanProfile {
  const base = PROFILES[name];
  if (!base) throw new Error(`inverter.can.profile: "${name}" is not a known profile (one of ${PROFILE_NAMES.join(', ')})`);
  const p: CanProfile = { ...base, dlc: { ...base.dlc }, frames: [...base.frames] };
  if (o.periodMs != null) {
    if (!(Number.isFinite(o.periodMs) && o.periodMs >= 20 && o.periodMs <= 2000)) throw new Error(`inverter.can.periodMs must be 20..2000 ms (the inverter gives up after about 3 s without 0x351), got ${o.periodMs}`);
    p.periodMs = o.periodMs;
  }
  if (o.currentSign != null) p.currentSign = o.currentSign;
  if (o.alarmCodes != null) p.alarmCodes = o.alarmCodes === 'swapped' ? { active: 2, ok: 1 } : { active: 1, ok: 2 };
  if (o.byteOrder != null) p.byteOrder = o.byteOrder;
  if (o.manufacturer != null) {
    if (!/^[\x20-\x7e]{1,8}$/.test(o.manufacturer)) throw new Error(`inverter.can.manufacturer must be 1–8 printable ASCII characters, got ${JSON.stringify(o.manufacturer)}`);
    p.manufacturer = o.manufacturer;
  }
  if (o.keepaliveCarriesDc != null) p.keepaliveCarriesDc = o.keepaliveCarriesDc;
  return p;
}
