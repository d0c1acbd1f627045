/**
 * The core's entry check: every number in a snapshot is either usable or missing.
 *
 * NaN and ±Infinity compare false with everything, so a single one slips through `x <= floor`,
 * `Math.max` and `Math.min` and turns a guard into a pass (a NaN SoC is "not at the floor"; a NaN
 * minimum makes the floor NaN). The codecs and drivers block most of them, but the safety of the core
 * must not depend on that: decide() runs every snapshot through `sanitizeSnapshot` first, once, and the
 * rest of the core only ever sees finite, in-range numbers or `undefined`.
 *
 * An unusable optional figure becomes `undefined`, which every safety computation already treats as
 * unknown (and unknown keeps energy in the car: docs/architecture.md, "What is assumed when inputs are
 * missing"). An unusable required figure gets the value that moves nothing: an energy delta of 0 Wh, no
 * load tiers. A SoC whose measurement time is unusable is dropped with it: a figure of unknown age is no
 * figure (invariant 3). Pure.
 */
import type { DispatchCommand, Snapshot } from './types.ts';

/** One unusable field: its path in the snapshot and what it held. */
export interface InputIssue {
  path: string;
  value: string;
}

export interface Sanitized {
  snapshot: Snapshot;
  issues: InputIssue[];
}

type Rule = 'any' | 'time' | 'nonNegative' | 'positive' | 'pct' | 'efficiency';

function ok(v: number, rule: Rule): boolean {
  if (!Number.isFinite(v)) return false;
  switch (rule) {
    case 'any':
    case 'time':
      return true;
    case 'nonNegative':
      return v >= 0;
    case 'positive':
      return v > 0;
    case 'pct':
      return v >= 0 && v <= 100;
    case 'efficiency':
      return v > 0 && v <= 1;
  }
}

/** Rules for every numeric field of `Snapshot.vehicle` and `Snapshot.inverter` (a field not listed is any finite number). */
const VEHICLE_RULES: Record<string, Rule> = {
  socPct: 'pct', socAtMs: 'time', capacityWh: 'positive', minSocPct: 'pct', maxSocPct: 'pct', targetSocPct: 'pct',
  departureAtMs: 'time', maxChargeW: 'nonNegative', maxDischargeW: 'nonNegative', chargerExportCapabilityW: 'nonNegative', atMs: 'time',
};
const INVERTER_RULES: Record<string, Rule> = {
  atMs: 'time', powerW: 'any', ratedW: 'nonNegative', maxChargeW: 'nonNegative', maxDischargeW: 'nonNegative', efficiency: 'efficiency',
};

function describe(v: unknown): string {
  return typeof v === 'number' ? String(v) : typeof v;
}

/** Clean the numeric fields of one section: unusable numbers (and non-numbers where a number belongs) become undefined. */
function cleanSection<T extends object>(section: T, rules: Record<string, Rule>, prefix: string, issues: InputIssue[]): T {
  let out: T | undefined;
  const fields = section as Record<string, unknown>;
  // for…in, not Object.entries: this runs every tick and should allocate nothing when all is well
  for (const key in fields) {
    const value = fields[key];
    const rule = rules[key] ?? (typeof value === 'number' ? 'any' : undefined);
    if (rule === undefined || value === undefined) continue;
    if (typeof value === 'number' && ok(value, rule)) continue;
    out ??= { ...section };
    (out as Record<string, unknown>)[key] = undefined;
    issues.push({ path: `${prefix}.${key}`, value: describe(value) });
  }
  return out ?? section;
}

function finiteOr0(v: unknown, path: string, issues: InputIssue[], nonNegative: boolean): number {
  if (typeof v === 'number' && Number.isFinite(v) && (!nonNegative || v >= 0)) return v;
  issues.push({ path, value: describe(v) });
  return 0;
}

function finiteTime(v: number | undefined): boolean {
  return v === undefined || Number.isFinite(v);
}

/**
 * Commands keep their shape; a dispatch with an unusable number is left for intake() to refuse as
 * `invalid` (every command gets its answer), so it is only reported here.
 */
function checkCommand(cmd: DispatchCommand, i: number, issues: InputIssue[]): void {
  if (!Number.isFinite(cmd.receivedMs)) issues.push({ path: `commands[${i}].receivedMs`, value: describe(cmd.receivedMs) });
  if (cmd.kind !== 'dispatch') return;
  const r = cmd.request;
  for (const [k, v] of [['powerW', r.powerW], ['durationS', r.durationS]] as const)
    if (typeof v !== 'number' || !Number.isFinite(v)) issues.push({ path: `commands[${i}].request.${k}`, value: describe(v) });
  for (const [k, v] of [['startMs', r.startMs], ['expiresAtMs', r.expiresAtMs]] as const)
    if (!finiteTime(v)) issues.push({ path: `commands[${i}].request.${k}`, value: describe(v) });
}

/** A site reading and its measurement time: a non-finite value is dropped; a non-finite time drops both. */
function cleanReading(s: Snapshot, out: Snapshot, valueKey: 'gridPowerW' | 'pvPowerW', atKey: 'gridPowerAtMs' | 'pvPowerAtMs', issues: InputIssue[]): void {
  const v = s[valueKey];
  if (v !== undefined && !(typeof v === 'number' && Number.isFinite(v))) {
    issues.push({ path: valueKey, value: describe(v) });
    out[valueKey] = undefined;
  }
  const at = s[atKey];
  if (at !== undefined && !(typeof at === 'number' && Number.isFinite(at))) {
    issues.push({ path: atKey, value: describe(at) });
    out[atKey] = undefined;
    out[valueKey] = undefined;
  }
}

export function sanitizeSnapshot(s: Snapshot): Sanitized {
  const issues: InputIssue[] = [];
  const vehicle = cleanSection(s.vehicle, VEHICLE_RULES, 'vehicle', issues);
  // a SoC whose measurement time is unusable has an unknown age: it is no SoC (invariant 3)
  if (vehicle.socPct !== undefined && s.vehicle.socAtMs !== undefined && vehicle.socAtMs === undefined) vehicle.socPct = undefined;
  const inverter = cleanSection(s.inverter, INVERTER_RULES, 'inverter', issues);
  const energy = {
    exportedWh: finiteOr0(s.energy?.exportedWh, 'energy.exportedWh', issues, true),
    importedWh: finiteOr0(s.energy?.importedWh, 'energy.importedWh', issues, true),
    carSideWh: finiteOr0(s.energy?.carSideWh, 'energy.carSideWh', issues, false),
  };
  const out: Snapshot = { ...s, vehicle, inverter, energy };
  if (s.wallMs !== undefined && !(typeof s.wallMs === 'number' && Number.isFinite(s.wallMs))) {
    // an unreadable calendar: the monotonic time stands in for it (the clocks agreed at start)
    issues.push({ path: 'wallMs', value: describe(s.wallMs) });
    out.wallMs = undefined;
  }
  if (s.houseLoadW !== undefined && !(typeof s.houseLoadW === 'number' && Number.isFinite(s.houseLoadW))) {
    issues.push({ path: 'houseLoadW', value: describe(s.houseLoadW) });
    out.houseLoadW = undefined;
  }
  if (s.houseLoadAtMs !== undefined && !Number.isFinite(s.houseLoadAtMs)) {
    issues.push({ path: 'houseLoadAtMs', value: describe(s.houseLoadAtMs) });
    // a reading of unknown age is no reading
    out.houseLoadAtMs = undefined;
    out.houseLoadW = undefined;
  }
  // site meter figures: an unusable value is no value; a value of unknown age is no value either
  cleanReading(s, out, 'gridPowerW', 'gridPowerAtMs', issues);
  cleanReading(s, out, 'pvPowerW', 'pvPowerAtMs', issues);
  if (s.phaseCurrentsA !== undefined && !(Array.isArray(s.phaseCurrentsA) && s.phaseCurrentsA.every((a) => typeof a === 'number' && Number.isFinite(a)))) {
    // one unreadable phase makes the set unusable: a fuse check over the other phases alone would pass too much
    issues.push({ path: 'phaseCurrentsA', value: Array.isArray(s.phaseCurrentsA) ? `[${s.phaseCurrentsA.map(describe).join(', ')}]` : describe(s.phaseCurrentsA) });
    out.phaseCurrentsA = undefined;
  }
  if (s.phaseCurrentsAtMs !== undefined && !Number.isFinite(s.phaseCurrentsAtMs)) {
    issues.push({ path: 'phaseCurrentsAtMs', value: describe(s.phaseCurrentsAtMs) });
    out.phaseCurrentsAtMs = undefined;
    out.phaseCurrentsA = undefined;
  }
  if (!(Number.isInteger(s.loadTierCount) && s.loadTierCount >= 0)) {
    issues.push({ path: 'loadTierCount', value: describe(s.loadTierCount) });
    out.loadTierCount = 0;
  }
  (s.commands ?? []).forEach((cmd, i) => checkCommand(cmd, i, issues));
  if (!Array.isArray(s.commands)) out.commands = [];
  return { snapshot: out, issues };
}

/** A stable key of the issues (their paths), for reporting a change once rather than every tick. */
export function issuesKey(issues: InputIssue[]): string | undefined {
  const paths = issues.filter((i) => !i.path.startsWith('commands[')).map((i) => i.path);
  return paths.length ? paths.join(', ') : undefined;
}

export function issuesMessage(issues: InputIssue[]): string {
  return `unusable input taken as missing: ${issues.map((i) => `${i.path} = ${i.value}`).join(', ')}`;
}
