/** Floors and power limits (invariants 1 and 4). Pure. */
import type { ControlSettings } from '../config/types.ts';
import type { Floors, PowerLimits, Snapshot } from './types.ts';
import { nextLocalTimeMs } from './time.ts';

/** Capacity assumed when neither the car nor the homeowner gives one: small, so energy bounds err safe. */
export const ASSUMED_CAPACITY_WH = 10_000;

export const DEFAULT_EFFICIENCY = 0.9;

export function capacityWh(s: Snapshot, c: ControlSettings): number | undefined {
  return s.vehicle.capacityWh ?? c.vehicle.capacityWh ?? undefined;
}

export function efficiency(s: Snapshot): number {
  const e = s.inverter.efficiency;
  return e !== undefined && e > 0 && e <= 1 ? e : DEFAULT_EFFICIENCY;
}

export interface Departure {
  atMs?: number;
  targetSocPct: number;
}

/**
 * Which departure and target apply. `departureSource: "config"` (default): the homeowner's daily time
 * wins and the car's is used only when the config has none; `"car"`: the car's wins when it sends one.
 */
export function departure(s: Snapshot, c: ControlSettings, nowMs: number): Departure {
  const tz = c.timezone ?? 'UTC';
  const configAt = c.vehicle.departureTime ? nextLocalTimeMs(c.vehicle.departureTime, tz, nowMs) : undefined;
  const carAt = s.vehicle.departureAtMs !== undefined && s.vehicle.departureAtMs > nowMs ? s.vehicle.departureAtMs : undefined;
  if (c.vehicle.departureSource === 'car') {
    return { atMs: carAt ?? configAt, targetSocPct: carAt !== undefined && s.vehicle.targetSocPct !== undefined ? s.vehicle.targetSocPct : c.vehicle.targetSocPct };
  }
  return { atMs: configAt ?? carAt, targetSocPct: configAt === undefined && s.vehicle.targetSocPct !== undefined ? s.vehicle.targetSocPct : c.vehicle.targetSocPct };
}

/** Charge power available for reaching the departure target, W (AC side). */
export function departureChargeW(s: Snapshot, c: ControlSettings): number {
  const candidates = [s.inverter.maxChargeW ?? 0];
  if (s.vehicle.maxChargeW !== undefined) candidates.push(s.vehicle.maxChargeW);
  if (c.vehicle.maxChargeW !== null) candidates.push(c.vehicle.maxChargeW);
  if (c.site.gridImportLimitW !== null) candidates.push(c.site.gridImportLimitW - (s.houseLoadW ?? 0));
  return Math.max(0, Math.min(...candidates));
}

/**
 * The lowest SoC from which the target is still reachable by departure at the charge power available,
 * keeping `departureMarginS` in hand. Undefined without a departure or a capacity.
 */
export function departureFloorPct(s: Snapshot, c: ControlSettings, nowMs: number, dep: Departure): number | undefined {
  const cap = capacityWh(s, c);
  if (dep.atMs === undefined || cap === undefined) return undefined;
  const hours = Math.max(0, (dep.atMs - nowMs) / 1000 - c.vehicle.departureMarginS) / 3600;
  const reachablePct = ((departureChargeW(s, c) * efficiency(s) * hours) / cap) * 100;
  return Math.max(0, Math.min(dep.targetSocPct, dep.targetSocPct - reachablePct));
}

export function floors(s: Snapshot, c: ControlSettings, nowMs: number, dep: Departure): Floors {
  const departureFloor = departureFloorPct(s, c, nowMs, dep);
  const effective = Math.max(c.vehicle.dischargeFloorPct, departureFloor ?? 0, s.vehicle.minSocPct ?? 0);
  return {
    dischargeFloorPct: c.vehicle.dischargeFloorPct,
    backupFloorPct: c.vehicle.backupFloorPct,
    departureFloorPct: departureFloor,
    effectiveFloorPct: Math.min(100, effective),
  };
}

/** Whether the car agreed to give energy back (EVerest discharged a car that never agreed). */
export function carOffersDischarge(s: Snapshot): boolean {
  if (!s.vehicle.connected || s.vehicle.bidirectional === false) return false;
  return s.vehicle.bidirectional === true || (s.vehicle.maxDischargeW ?? 0) > 0;
}

/** Largest discharge that does not cross `floorPct` before the next tick, W (AC side). */
export function floorBoundW(socPct: number, floorPct: number, capWh: number, eff: number, horizonS: number): number {
  const aboveWh = ((socPct - floorPct) / 100) * capWh;
  if (aboveWh <= 0) return 0;
  return (aboveWh * eff * 3600) / horizonS;
}

/** Rejoin ramp: after an outage, power comes back over `rejoinRampS` (enter-service ramp). */
export function rampFactor(c: ControlSettings, rejoinedAtMs: number | undefined, nowMs: number): number {
  if (rejoinedAtMs === undefined || c.backup.rejoinRampS <= 0) return 1;
  return Math.max(0, Math.min(1, (nowMs - rejoinedAtMs) / 1000 / c.backup.rejoinRampS));
}

/** The smallest limit of a list and its name (first one wins a tie). */
function smallest(list: [number, string][]): [number, string] {
  let best = list[0];
  for (const item of list) if (item[0] < best[0]) best = item;
  return [Math.max(0, best[0]), best[1]];
}

/** Every power limit in force now, and which one binds (invariant 4). */
export function powerLimits(s: Snapshot, c: ControlSettings, f: Floors, nowMs: number, rejoinedAtMs: number | undefined): PowerLimits {
  const house = s.houseLoadW ?? 0;
  const ramp = rampFactor(c, rejoinedAtMs, nowMs);
  const charge: [number, string][] = [[s.inverter.maxChargeW ?? 0, 'inverter_limit']];
  if (s.vehicle.maxChargeW !== undefined) charge.push([s.vehicle.maxChargeW, 'vehicle_limit']);
  if (c.vehicle.maxChargeW !== null) charge.push([c.vehicle.maxChargeW, 'homeowner_limit']);
  if (c.site.gridImportLimitW !== null) charge.push([c.site.gridImportLimitW - house, 'grid_limit']);
  if (ramp < 1) charge.push([(s.inverter.maxChargeW ?? 0) * ramp, 'rejoin_ramp']);
  const soc = s.vehicle.socPct;
  if (soc !== undefined && soc >= (s.vehicle.maxSocPct ?? 100)) charge.push([0, 'max_soc']);
  if (!s.vehicle.connected) charge.push([0, 'no_vehicle']);

  const discharge: [number, string][] = [[s.inverter.maxDischargeW ?? 0, 'inverter_limit']];
  if (!carOffersDischarge(s)) discharge.push([0, s.vehicle.connected ? 'not_bidirectional' : 'no_vehicle']);
  if (s.vehicle.maxDischargeW !== undefined) discharge.push([s.vehicle.maxDischargeW, 'vehicle_limit']);
  if (c.vehicle.maxDischargeW !== null) discharge.push([c.vehicle.maxDischargeW, 'homeowner_limit']);
  if (c.site.gridExportLimitW !== null) discharge.push([c.site.gridExportLimitW + house, 'grid_limit']);
  if (ramp < 1) discharge.push([(s.inverter.maxDischargeW ?? 0) * ramp, 'rejoin_ramp']);
  if (soc === undefined) discharge.push([0, 'soc_unknown']);
  else {
    const cap = capacityWh(s, c) ?? ASSUMED_CAPACITY_WH;
    const bound = floorBoundW(soc, f.effectiveFloorPct, cap, efficiency(s), c.control.tickS);
    const departureBinds = f.departureFloorPct !== undefined && f.departureFloorPct >= f.effectiveFloorPct && f.departureFloorPct > f.dischargeFloorPct;
    const reason = departureBinds ? 'departure' : 'floor';
    discharge.push([bound, reason]);
  }

  const [maxChargeW, chargeLimitedBy] = smallest(charge);
  const [maxDischargeW, dischargeLimitedBy] = smallest(discharge);
  return { maxChargeW, maxDischargeW, chargeLimitedBy, dischargeLimitedBy };
}
