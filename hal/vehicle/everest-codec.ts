/**
 * Decoders for EVerest API payloads (everest_api/<evse>/var/...). Pure: JSON object in, domain fields
 * with units out, plus one issue per field that was present but unusable. Every field is optional, as
 * ISO 15118 and EVerest's types allow; unknown fields are ignored (newer EVerest versions add some).
 */

export interface FieldIssue {
  field: string;
  reason: string;
}

export interface Decoded<T> {
  value: T;
  issues: FieldIssue[];
}

/** var/ev_info (EVerest EVInfo), plus the ISO 15118-20 display-parameter style fields when present. */
export interface EvInfo {
  socPct?: number;
  capacityWh?: number;
  /** The car's charge power limit, W (maximum_power_limit). */
  maxChargeW?: number;
  departureAtMs?: number;
  remainingEnergyWh?: number;
  fullSocPct?: number;
  bulkSocPct?: number;
  targetEnergyRequestWh?: number;
  maxEnergyRequestWh?: number;
  minEnergyRequestWh?: number;
  presentVoltageV?: number;
  presentCurrentA?: number;
  evccId?: string;
  // additions beyond EVInfo: ISO 15118-20 DisplayParameters / BPT names
  minSocPct?: number;
  targetSocPct?: number;
  maxSocPct?: number;
  maxDischargeW?: number;
  minDischargeW?: number;
}

/** var/session_info. */
export interface SessionInfo {
  state?: string;
  chargedWh?: number;
  dischargedWh?: number;
  latestTotalW?: number;
  chargingDurationS?: number;
}

/** var/limits. */
export interface EvseLimits {
  maxCurrentA?: number;
  phases?: number;
}

/** var/hardware_capabilities. */
export interface HardwareCapabilities {
  maxImportA?: number;
  maxExportA?: number;
  importPhases?: number;
  exportPhases?: number;
}

export type ParsedPayload = { ok: true; obj: Record<string, unknown> } | { ok: false; reason: string };

/** Parse a payload into a JSON object, refusing oversize, non-UTF-8, non-JSON and non-object payloads. */
export function parsePayload(payload: Uint8Array, maxBytes: number): ParsedPayload {
  if (payload.length > maxBytes) return { ok: false, reason: `payload of ${payload.length} bytes exceeds ${maxBytes}` };
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(payload);
  } catch {
    return { ok: false, reason: 'payload is not UTF-8' };
  }
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch {
    return { ok: false, reason: 'payload is not JSON' };
  }
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) return { ok: false, reason: 'payload is not a JSON object' };
  return { ok: true, obj: obj as Record<string, unknown> };
}

// RFC 3339 date-time, as EVerest's types declare (format: date-time)
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;

class Reader {
  readonly issues: FieldIssue[] = [];
  constructor(private obj: Record<string, unknown>) {}

  has(key: string): boolean {
    return Object.prototype.hasOwnProperty.call(this.obj, key) && this.obj[key] !== undefined;
  }

  num(key: string, min: number, max: number): number | undefined {
    if (!this.has(key)) return undefined;
    const v = this.obj[key];
    if (typeof v !== 'number' || !Number.isFinite(v)) return this.bad(key, `expected a number, got ${describe(v)}`);
    if (v < min || v > max) return this.bad(key, `${v} outside ${min}..${max}`);
    return v;
  }

  int(key: string, min: number, max: number): number | undefined {
    const v = this.num(key, min, max);
    if (v !== undefined && !Number.isInteger(v)) return this.bad(key, `expected an integer, got ${v}`);
    return v;
  }

  str(key: string, maxLen: number): string | undefined {
    if (!this.has(key)) return undefined;
    const v = this.obj[key];
    if (typeof v !== 'string') return this.bad(key, `expected a string, got ${describe(v)}`);
    if (v.length === 0 || v.length > maxLen) return this.bad(key, `string length ${v.length} outside 1..${maxLen}`);
    return v;
  }

  dateMs(key: string): number | undefined {
    const s = this.str(key, 64);
    if (s === undefined) return undefined;
    if (!RFC3339.test(s)) return this.bad(key, `not an RFC 3339 date-time: ${JSON.stringify(s.slice(0, 40))}`);
    const ms = Date.parse(s);
    if (!Number.isFinite(ms)) return this.bad(key, `not a valid date: ${JSON.stringify(s)}`);
    return ms;
  }

  /** First usable of several names for the same quantity (EVerest has renamed some across versions). */
  firstNum(keys: string[], min: number, max: number, magnitude = false): number | undefined {
    for (const k of keys) {
      if (!this.has(k)) continue;
      const v = this.num(k, magnitude ? -max : min, max);
      if (v !== undefined) return magnitude ? Math.abs(v) : v;
    }
    return undefined;
  }

  private bad(field: string, reason: string): undefined {
    this.issues.push({ field, reason });
    return undefined;
  }
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `a string ${JSON.stringify(v.length > 24 ? v.slice(0, 24) + '…' : v)}`;
  return typeof v === 'object' ? 'an object' : `${typeof v} ${String(v)}`;
}

const MAX_W = 1_000_000;
const MAX_WH = 1_000_000_000;
const MAX_CAPACITY_WH = 1_000_000;
const MAX_A = 2_000;

function strip<T extends object>(o: T): T {
  for (const k of Object.keys(o) as (keyof T)[]) if (o[k] === undefined) delete o[k];
  return o;
}

export function decodeEvInfo(obj: Record<string, unknown>): Decoded<EvInfo> {
  const r = new Reader(obj);
  const value: EvInfo = strip({
    socPct: r.num('soc', 0, 100),
    capacityWh: r.num('battery_capacity', 1, MAX_CAPACITY_WH),
    maxChargeW: r.num('maximum_power_limit', 0, MAX_W),
    departureAtMs: r.dateMs('departure_time'),
    remainingEnergyWh: r.num('remaining_energy_needed', 0, MAX_WH),
    fullSocPct: r.num('battery_full_soc', 0, 100),
    bulkSocPct: r.num('battery_bulk_soc', 0, 100),
    targetEnergyRequestWh: r.num('target_energy_request', 0, MAX_WH),
    maxEnergyRequestWh: r.num('max_energy_request', 0, MAX_WH),
    minEnergyRequestWh: r.num('min_energy_request', -MAX_WH, MAX_WH),
    presentVoltageV: r.num('present_voltage', 0, 2_000),
    presentCurrentA: r.num('present_current', -MAX_A, MAX_A),
    evccId: r.str('evcc_id', 64),
    minSocPct: r.num('minimum_soc', 0, 100),
    targetSocPct: r.num('target_soc', 0, 100),
    maxSocPct: r.num('maximum_soc', 0, 100),
    // ISO 15118-20 sends discharge limits as magnitudes; some bridges sign them negative: keep the magnitude
    maxDischargeW: r.firstNum(['maximum_discharge_power', 'max_discharge_power', 'ac_max_discharge_power'], 0, MAX_W, true),
    minDischargeW: r.firstNum(['minimum_discharge_power', 'min_discharge_power', 'ac_min_discharge_power'], 0, MAX_W, true),
  });
  return { value, issues: r.issues };
}

export function decodeSessionInfo(obj: Record<string, unknown>): Decoded<SessionInfo> {
  const r = new Reader(obj);
  const value: SessionInfo = strip({
    state: r.str('state', 64),
    chargedWh: r.num('charged_energy_wh', 0, MAX_WH),
    dischargedWh: r.num('discharged_energy_wh', 0, MAX_WH),
    latestTotalW: r.num('latest_total_w', -MAX_W, MAX_W),
    chargingDurationS: r.num('charging_duration_s', 0, 10 * 365 * 86400),
  });
  return { value, issues: r.issues };
}

export function decodeLimits(obj: Record<string, unknown>): Decoded<EvseLimits> {
  const r = new Reader(obj);
  const value: EvseLimits = strip({ maxCurrentA: r.num('max_current', 0, MAX_A), phases: r.int('nr_of_phases_available', 1, 3) });
  return { value, issues: r.issues };
}

export function decodeHardwareCapabilities(obj: Record<string, unknown>): Decoded<HardwareCapabilities> {
  const r = new Reader(obj);
  const value: HardwareCapabilities = strip({
    maxImportA: r.num('max_current_A_import', 0, MAX_A),
    maxExportA: r.num('max_current_A_export', 0, MAX_A),
    importPhases: r.int('max_phase_count_import', 1, 3),
    exportPhases: r.int('max_phase_count_export', 1, 3),
  });
  return { value, issues: r.issues };
}

/** session_info states in which no car takes part in a session. */
export const UNPLUGGED_STATES: ReadonlySet<string> = new Set(['Unplugged', 'Disabled']);

/** session_info states of a session with a car plugged in. */
export const PLUGGED_STATES: ReadonlySet<string> = new Set([
  'Preparing', 'AuthRequired', 'WaitingForEnergy', 'Charging', 'ChargingPausedEV', 'ChargingPausedEVSE',
  'Finished', 'FinishedEV', 'FinishedEVSE', 'AuthTimeout',
]);
