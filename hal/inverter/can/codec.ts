/**
 * Byte-exact encoding and decoding of the BMS↔inverter CAN frames ("SMA / Pylontech" de-facto protocol,
 * 500 kbit/s, 11-bit ids). The layouts are data (FRAME_LAYOUTS), shared by the encoder, the decoder and
 * `wallbox can decode`, so the three can never disagree. Sources and the points still UNCONFIRMED:
 * docs/can.md and the protocol digest (§2).
 *
 * - Multi-byte fields are little-endian unless the profile says `be` (Battery-Emulator's SMA-LV writes BE;
 *   every other source and real captures are LE).
 * - A physical value is `raw × scale`; the encoder rounds to the nearest step and clamps to what the field can
 *   hold (a limit never wraps into its opposite), the decoder checks the field's plausible range.
 * - 0x35A items are 2-bit codes; which code means "active" and which "OK" varies (diyBMS: 1 = active,
 *   2 = OK; other documents swap them), so the profile says.
 * - Pure: no I/O, no clock. Bad frames come back as a {@link FrameIssue}, never as an exception.
 */
import type { CanFrame } from './channel.ts';

export type FieldType = 'u8' | 'u16' | 's16' | 'ascii' | 'flag' | 'alarm2';

export interface FieldDef {
  /** Key in the values object (and in the decoded JSON). */
  name: string;
  type: FieldType;
  /** First byte. */
  offset: number;
  /** Physical value = raw × scale (numbers only). */
  scale?: number;
  unit?: string;
  /** `flag`: bit number (0 = LSB) in the byte at `offset`; `alarm2`: lowest bit of the 2-bit field (0, 2, 4, 6). */
  bit?: number;
  /** `ascii`: number of bytes. */
  length?: number;
  /** Plausible physical range; a decoded value outside it makes the frame `out_of_range`. */
  range?: [number, number];
}

export interface FrameLayout {
  id: number;
  name: string;
  /** Who sends it. */
  from: 'bms' | 'inverter';
  fields: FieldDef[];
}

/** How many bytes a field occupies. */
export function fieldSize(f: FieldDef): number {
  return f.type === 'u16' || f.type === 's16' ? 2 : f.type === 'ascii' ? (f.length ?? 1) : 1;
}

const flag = (name: string, offset: number, bit: number): FieldDef => ({ name, type: 'flag', offset, bit });
const alarm2 = (name: string, offset: number, bit: number): FieldDef => ({ name, type: 'alarm2', offset, bit });

/** The 0x35A items by byte (bytes 0–3 alarms, 4–7 the same items as warnings), lowest bits first. */
export const ALARM_ITEMS: readonly (readonly string[])[] = [
  ['general', 'lowVoltage', 'highVoltage', 'highTemperature'],
  ['lowTemperature', 'highTemperatureCharge', 'lowTemperatureCharge', 'highCurrent'],
  ['highChargeCurrent', 'contactor', 'shortCircuit', 'bmsInternal'],
  ['cellImbalance'],
];
export type AlarmItem = 'general' | 'lowVoltage' | 'highVoltage' | 'highTemperature' | 'lowTemperature' | 'highTemperatureCharge' | 'lowTemperatureCharge' | 'highCurrent' | 'highChargeCurrent' | 'contactor' | 'shortCircuit' | 'bmsInternal' | 'cellImbalance';

/** 0x359 (Pylon v1.2) bits: byte 0 protections and byte 2 warnings share the bit meanings. */
const PROTECTION_BITS: readonly [string, number][] = [
  ['OverVoltage', 1],
  ['UnderVoltage', 2],
  ['OverTemperature', 3],
  ['UnderTemperature', 4],
  ['DischargeOverCurrent', 7],
];

export const FRAME_LAYOUTS: Readonly<Record<number, FrameLayout>> = {
  0x351: {
    id: 0x351,
    name: 'limits',
    from: 'bms',
    fields: [
      { name: 'chargeVoltageLimitV', type: 'u16', offset: 0, scale: 0.1, unit: 'V', range: [0, 1000] },
      { name: 'chargeCurrentLimitA', type: 's16', offset: 2, scale: 0.1, unit: 'A', range: [0, 3276.7] },
      // sent as a positive magnitude (REC, diyBMS)
      { name: 'dischargeCurrentLimitA', type: 's16', offset: 4, scale: 0.1, unit: 'A', range: [0, 3276.7] },
      { name: 'dischargeVoltageLimitV', type: 'u16', offset: 6, scale: 0.1, unit: 'V', range: [0, 1000] },
    ],
  },
  0x355: {
    id: 0x355,
    name: 'soc',
    from: 'bms',
    fields: [
      { name: 'socPct', type: 'u16', offset: 0, scale: 1, unit: '%', range: [0, 100] },
      { name: 'sohPct', type: 'u16', offset: 2, scale: 1, unit: '%', range: [0, 100] },
      { name: 'socHiResPct', type: 'u16', offset: 4, scale: 0.01, unit: '%', range: [0, 100] },
    ],
  },
  0x356: {
    id: 0x356,
    name: 'measurements',
    from: 'bms',
    fields: [
      { name: 'voltageV', type: 's16', offset: 0, scale: 0.01, unit: 'V', range: [0, 327.67] },
      // sign per profile (currentSign): UNCONFIRMED across inverters
      { name: 'currentA', type: 's16', offset: 2, scale: 0.1, unit: 'A', range: [-3276.8, 3276.7] },
      { name: 'temperatureC', type: 's16', offset: 4, scale: 0.1, unit: '°C', range: [-60, 150] },
    ],
  },
  0x359: {
    id: 0x359,
    name: 'protection',
    from: 'bms',
    fields: [
      ...PROTECTION_BITS.map(([n, b]) => flag(`protection${n}`, 0, b)),
      flag('protectionChargeOverCurrent', 1, 0),
      // Battery-Emulator sets byte 1 b7 for a system fault (UNCONFIRMED against Pylon's document)
      flag('protectionSystemFault', 1, 7),
      ...PROTECTION_BITS.map(([n, b]) => flag(`warning${n}`, 2, b)),
      flag('warningChargeHighCurrent', 3, 0),
      flag('warningInternalCommFail', 3, 3),
      { name: 'moduleCount', type: 'u8', offset: 4, scale: 1, range: [0, 255] },
      { name: 'marker', type: 'ascii', offset: 5, length: 2 },
    ],
  },
  0x35a: {
    id: 0x35a,
    name: 'alarms',
    from: 'bms',
    fields: [
      ...ALARM_ITEMS.flatMap((items, byte) => items.map((n, i) => alarm2(`alarm.${n}`, byte, 2 * i))),
      ...ALARM_ITEMS.flatMap((items, byte) => items.map((n, i) => alarm2(`warning.${n}`, byte + 4, 2 * i))),
      alarm2('online', 7, 2),
    ],
  },
  0x35c: {
    id: 0x35c,
    name: 'requests',
    from: 'bms',
    fields: [flag('chargeEnable', 0, 7), flag('dischargeEnable', 0, 6), flag('forceChargeI', 0, 5), flag('forceChargeII', 0, 4), flag('fullChargeRequest', 0, 3)],
  },
  0x35e: { id: 0x35e, name: 'manufacturer', from: 'bms', fields: [{ name: 'manufacturer', type: 'ascii', offset: 0, length: 8 }] },
  // layout UNCONFIRMED: battery type, BMS version, capacity
  0x35f: {
    id: 0x35f,
    name: 'battery-info',
    from: 'bms',
    fields: [
      { name: 'batteryType', type: 'u16', offset: 0, scale: 1 },
      { name: 'bmsVersion', type: 'u16', offset: 2, scale: 1 },
      { name: 'capacityAh', type: 'u16', offset: 4, scale: 1, unit: 'Ah', range: [0, 65535] },
    ],
  },
  // Pylon and Victron send zeros; a Sunny Island puts its DC voltage and current in bytes 0–3 (voltage scale UNCONFIRMED)
  0x305: {
    id: 0x305,
    name: 'keepalive',
    from: 'inverter',
    fields: [
      { name: 'dcVoltageV', type: 'u16', offset: 0, scale: 0.1, unit: 'V', range: [0, 1000] },
      { name: 'dcCurrentA', type: 's16', offset: 2, scale: 0.1, unit: 'A', range: [-3000, 3000] },
    ],
  },
  0x307: { id: 0x307, name: 'inverter-id', from: 'inverter', fields: [{ name: 'vendor', type: 'ascii', offset: 4, length: 3 }] },
};

/** What a profile decides about the encoding; see profiles.ts. */
export interface CodecProfile {
  byteOrder: 'le' | 'be';
  /** 0x35A 2-bit codes. */
  alarmCodes: { active: number; ok: number };
  /** Expected DLC of each BMS frame the profile uses (fields beyond it are left out). */
  dlc: Readonly<Record<number, number>>;
  /** Whether 0x305 carries the inverter's DC voltage and current (Sunny Island). */
  keepaliveCarriesDc: boolean;
}

export type FieldValue = number | boolean | string;
export type FrameValues = Record<string, FieldValue | undefined>;

/** Encode one BMS frame. Throws only on a programming error (a non-finite number, an unknown id). */
export function encodeFrame(id: number, values: FrameValues, p: CodecProfile): Uint8Array {
  const layout = FRAME_LAYOUTS[id];
  const dlc = p.dlc[id];
  if (!layout || dlc === undefined) throw new Error(`frame 0x${id.toString(16)} is not part of this profile`);
  const data = new Uint8Array(dlc);
  if (layout.name === 'alarms') data.fill(0); // every item starts "not supported"; known items get active/OK below
  for (const f of layout.fields) {
    if (f.offset + fieldSize(f) > dlc) continue;
    const v = values[f.name];
    switch (f.type) {
      case 'u8':
      case 'u16':
      case 's16': {
        const x = typeof v === 'number' ? v : 0;
        if (!Number.isFinite(x)) throw new Error(`0x${id.toString(16)} ${f.name}: ${x} is not a finite number`);
        const [lo, hi] = f.type === 'u8' ? [0, 0xff] : f.type === 'u16' ? [0, 0xffff] : [-0x8000, 0x7fff];
        // inside the field's plausible range first (a limit is never negative), then what the bits hold
        const inRange = f.range ? Math.max(f.range[0], Math.min(f.range[1], x)) : x;
        const raw = Math.max(lo, Math.min(hi, Math.round(inRange / (f.scale ?? 1))));
        writeInt(data, f.offset, f.type === 'u8' ? 1 : 2, raw, p.byteOrder);
        break;
      }
      case 'ascii': {
        const s = typeof v === 'string' ? v : '';
        for (let i = 0; i < (f.length ?? 1); i++) {
          const c = i < s.length ? s.charCodeAt(i) : 0x20;
          data[f.offset + i] = c >= 0x20 && c < 0x7f ? c : 0x3f;
        }
        break;
      }
      case 'flag':
        if (v === true) data[f.offset] |= 1 << f.bit!;
        break;
      case 'alarm2': {
        const code = v === true ? p.alarmCodes.active : v === false ? p.alarmCodes.ok : 0;
        data[f.offset] |= (code & 3) << f.bit!;
        break;
      }
    }
  }
  return data;
}

export interface DecodedField {
  name: string;
  value: FieldValue;
  unit?: string;
}

export interface DecodedFrame {
  ok: true;
  id: number;
  name: string;
  from: 'bms' | 'inverter';
  fields: DecodedField[];
  /** Field values by name (the same as `fields`). */
  values: Record<string, FieldValue>;
}

export type IssueCode = 'unknown_id' | 'wrong_dlc' | 'out_of_range' | 'remote' | 'extended';

export interface FrameIssue {
  ok: false;
  id: number;
  name?: string;
  code: IssueCode;
  message: string;
}

/** The DLCs a received frame of `id` may have (BMS frames: the documented variants; inverter frames: 8). */
export function acceptedDlcs(id: number, p: CodecProfile): number[] {
  switch (id) {
    case 0x351:
      return [6, 8]; // Pylon-LV emulators send 6
    case 0x355:
      return [4, 6, 8];
    case 0x356:
      return [6, 8];
    case 0x359:
      return [7, 8];
    case 0x35a:
      return [8];
    case 0x35c:
      return [1, 2];
    case 0x35e:
      return [5, 6, 7, 8]; // some send 5–7
    case 0x35f:
      return [6, 8];
    case 0x305:
    case 0x307:
      return [8];
    default:
      return p.dlc[id] !== undefined ? [p.dlc[id]] : [];
  }
}

/** Decode any frame of the protocol; everything else (and malformed frames) comes back as an issue. */
export function decodeFrame(frame: CanFrame, p: CodecProfile): DecodedFrame | FrameIssue {
  const hex = `0x${frame.id.toString(16).toUpperCase()}`;
  if (frame.extended) return { ok: false, id: frame.id, code: 'extended', message: `${hex}: a 29-bit id; this protocol uses 11-bit ids` };
  const layout = FRAME_LAYOUTS[frame.id];
  if (!layout) return { ok: false, id: frame.id, code: 'unknown_id', message: `${hex}: not a frame of the BMS protocol` };
  if (frame.rtr) return { ok: false, id: frame.id, name: layout.name, code: 'remote', message: `${hex} ${layout.name}: a remote request, no data` };
  const dlc = frame.data.length;
  const ok = acceptedDlcs(frame.id, p);
  if (!ok.includes(dlc)) return { ok: false, id: frame.id, name: layout.name, code: 'wrong_dlc', message: `${hex} ${layout.name}: DLC ${dlc}, expected ${ok.join(' or ')}` };
  const fields: DecodedField[] = [];
  const values: Record<string, FieldValue> = {};
  const dcKeepalive = frame.id !== 0x305 || p.keepaliveCarriesDc;
  for (const f of layout.fields) {
    if (f.offset + fieldSize(f) > dlc || !dcKeepalive) continue;
    let value: FieldValue;
    switch (f.type) {
      case 'u8':
      case 'u16':
      case 's16': {
        const raw = readInt(frame.data, f.offset, f.type === 'u8' ? 1 : 2, f.type === 's16', p.byteOrder);
        value = round(raw * (f.scale ?? 1), f.scale ?? 1);
        if (f.range && (value < f.range[0] || value > f.range[1])) {
          return { ok: false, id: frame.id, name: layout.name, code: 'out_of_range', message: `${hex} ${layout.name}: ${f.name} = ${value}${f.unit ? ` ${f.unit}` : ''} is outside ${f.range[0]}..${f.range[1]}` };
        }
        break;
      }
      case 'ascii':
        value = String.fromCharCode(...frame.data.subarray(f.offset, f.offset + (f.length ?? 1))).replace(/[^\x20-\x7e]/g, '?').replace(/ +$/, '');
        break;
      case 'flag':
        value = (frame.data[f.offset] & (1 << f.bit!)) !== 0;
        break;
      case 'alarm2': {
        const code = (frame.data[f.offset] >> f.bit!) & 3;
        value = code === p.alarmCodes.active ? 'active' : code === p.alarmCodes.ok ? 'ok' : 'unsupported';
        break;
      }
    }
    fields.push(f.unit ? { name: f.name, value, unit: f.unit } : { name: f.name, value });
    values[f.name] = value;
  }
  return { ok: true, id: frame.id, name: layout.name, from: layout.from, fields, values };
}

function writeInt(data: Uint8Array, offset: number, size: 1 | 2, raw: number, order: 'le' | 'be'): void {
  const u = raw & (size === 1 ? 0xff : 0xffff);
  if (size === 1) data[offset] = u;
  else if (order === 'le') {
    data[offset] = u & 0xff;
    data[offset + 1] = u >> 8;
  } else {
    data[offset] = u >> 8;
    data[offset + 1] = u & 0xff;
  }
}

function readInt(data: Uint8Array, offset: number, size: 1 | 2, signed: boolean, order: 'le' | 'be'): number {
  if (size === 1) return signed && data[offset] >= 0x80 ? data[offset] - 0x100 : data[offset];
  const u = order === 'le' ? data[offset] | (data[offset + 1] << 8) : (data[offset] << 8) | data[offset + 1];
  return signed && u >= 0x8000 ? u - 0x10000 : u;
}

/** Round away binary noise: 4986 × 0.01 is 49.86, not 49.860000000000006. */
function round(x: number, step: number): number {
  const digits = Math.max(0, Math.ceil(-Math.log10(step)));
  return Number(x.toFixed(digits));
}
