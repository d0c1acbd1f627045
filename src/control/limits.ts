/**
 * Floors and power limits (invariants 1 and 4). Pure.
 *
 * Unknown is not zero: each computation here says what it assumes when an input is missing, and the
 * assumption keeps energy in the car and the house inside its limits (docs/architecture.md, "What is
 * assumed when inputs are missing"). The snapshot has been through `sanitizeSnapshot`, so a number is
 * finite and in range or undefined; the helpers below still fail closed on a non-finite one.
 */
import type { ControlSettings } from '../config/types.ts';
import type { Floors, PowerLimits, ReasonCode, Snapshot } from './types.ts';
import { nextLocalTimeMs } from './time.ts';

/**
 * Capacity assumed for energy ABOVE the floor when neither the car nor the homeowner gives one: small,
 * so the per-tick floor bound and the energy offered to the aggregator err toward keeping energy in.
 */
export const ASSUMED_CAPACITY_WH = 10_000;

/**
 * Capacity assumed for the energy still NEEDED to reach the departure target when none is known and the
 * config has no `vehicle.assumedCapacityWhForDeparture`: large, since more energy to reach the target
 * means a higher departure floor. 100 kWh is above the usable capacity of nearly every car sold today.
 */
export const ASSUMED_DEPARTURE_CAPACITY_WH = 100_000;

/** House load assumed for the import limit when the config gives none, W. */
export const ASSUMED_HOUSE_LOAD_W = 5000;
/** Age past which a site meter reading is no reading, when the config gives none, s. */
export const HOUSE_LOAD_MAX_AGE_S = 10;

export const DEFAULT_EFFICIENCY = 0.9;

function finite(v: number | null | undefined): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}

/** The car's usable capacity: the car's figure, else the homeowner's; undefined when neither is usable. */
export function capacityWh(s: Snapshot, c: ControlSettings): number | undefined {
  const car = s.vehicle.capacityWh;
  if (finite(car) && car > 0) return car;
  const cfg = c.vehicle.capacityWh;
  return finite(cfg) && cfg > 0 ? cfg : undefined;
}

/** Capacity for the departure floor and `departureAtRisk`: the known one, else the large assumption. */
export function departureCapacityWh(s: Snapshot, c: ControlSettings): number {
  const assumed = c.vehicle.assumedCapacityWhForDeparture;
  return capacityWh(s, c) ?? (finite(assumed) && assumed > 0 ? assumed : ASSUMED_DEPARTURE_CAPACITY_WH);
}

/** Whether a site reading taken at `atMs` is fresh enough to use now (`site.houseLoadMaxAgeS`); no time = fresh. */
function siteFresh(atMs: number | undefined, c: ControlSettings, nowMs: number): boolean {
  if (atMs === undefined) return true;
  const maxAgeS = finite(c.site.houseLoadMaxAgeS) ? c.site.houseLoadMaxAgeS : HOUSE_LOAD_MAX_AGE_S;
  return finite(atMs) && (nowMs - atMs) / 1000 <= maxAgeS;
}

/** PV production when a PV reading is usable now (fresh, no fault), W (>= 0); undefined = not metered. */
export function meteredPvW(s: Snapshot, c: ControlSettings, nowMs: number): number | undefined {
  const w = s.pvPowerW;
  if (!finite(w) || s.pvPowerFault || s.pvPowerAtMs === undefined || !siteFresh(s.pvPowerAtMs, c, nowMs)) return undefined;
  // an inverter's standby draw at night reads a few W negative: that is no production, not a house load
  return Math.max(0, w);
}

/** Grid power when the site meter's reading is usable now, W, positive = import; undefined = not metered. */
export function meteredGridW(s: Snapshot, c: ControlSettings, nowMs: number): number | undefined {
  const w = s.gridPowerW;
  if (!finite(w) || s.houseLoadFault || s.gridPowerAtMs === undefined || !siteFresh(s.gridPowerAtMs, c, nowMs)) return undefined;
  return w;
}

/** The charger's AC power from a usable inverter reading, W, positive into the car; undefined = not known now. */
function chargerAcW(s: Snapshot, c: ControlSettings, nowMs: number): number | undefined {
  const w = s.inverter.powerW;
  if (!finite(w) || s.inverter.fault || s.inverter.atMs === undefined || !siteFresh(s.inverter.atMs, c, nowMs)) return undefined;
  return w;
}

/**
 * The house's own consumption when it is known now (fresh, no fault), W; undefined = not metered. A meter
 * on the house feed reports it (`houseLoadW`); for a grid meter it is derived from the same tick's figures:
 * `house = grid − charger AC + PV` (grid positive = import, charger positive = into the car, PV when a
 * fresh reading exists, else 0: then the figure is the house net of PV, which is what the limits need).
 */
export function meteredHouseLoadW(s: Snapshot, c: ControlSettings, nowMs: number): number | undefined {
  const w = s.houseLoadW;
  if (finite(w) && !s.houseLoadFault && siteFresh(s.houseLoadAtMs, c, nowMs)) return w;
  const grid = meteredGridW(s, c, nowMs);
  const charger = grid === undefined ? undefined : chargerAcW(s, c, nowMs);
  if (grid === undefined || charger === undefined) return undefined;
  return grid - charger + (meteredPvW(s, c, nowMs) ?? 0);
}

/**
 * What the site draws from the grid besides the charger, W (positive = import, negative = PV exporting):
 * house − PV, both measured now; undefined when the house is not metered.
 */
export function meteredSiteNetW(s: Snapshot, c: ControlSettings, nowMs: number): number | undefined {
  const house = meteredHouseLoadW(s, c, nowMs);
  return house === undefined ? undefined : house - (meteredPvW(s, c, nowMs) ?? 0);
}

/**
 * What the site draws besides the charger, counted against the grid import limit, W: house − PV as
 * measured. Unmetered (no meter, a stale or faulty one): the configured `site.assumedHouseLoadW` (PV is
 * then not counted), so charging leaves room for a house that may be drawing that much; never 0.
 */
export function houseLoadForImportW(s: Snapshot, c: ControlSettings, nowMs: number): number {
  const assumed = c.site.assumedHouseLoadW;
  return meteredSiteNetW(s, c, nowMs) ?? (finite(assumed) && assumed >= 0 ? assumed : ASSUMED_HOUSE_LOAD_W);
}

/**
 * What the site draws besides the charger that absorbs discharge before it reaches the grid export limit,
 * W: house − PV as measured (negative when PV already exports: less room for discharge). Unmetered: none,
 * since the house may be drawing nothing and then every watt out of the car is exported.
 */
export function houseLoadForExportW(s: Snapshot, c: ControlSettings, nowMs: number): number {
  return meteredSiteNetW(s, c, nowMs) ?? 0;
}

/** Nominal phase voltage assumed for current limits when the config gives none, V. */
export const NOMINAL_VOLTAGE_V = 230;

/**
 * The per-phase fuse limit on charging, W (AC), or undefined without `site.fuseA`. Each phase the charger
 * is on (`site.chargerPhases`, default all three) may carry `fuseA`; what the rest of the site draws on it
 * is the measured phase current minus the charger's own share (its measured AC power spread over its
 * phases, at the nominal voltage). Without a fresh, fault-free phase reading, the assumed house load is
 * spread evenly over the site's phases instead; with the charger's power unknown, all of the measured
 * current counts as the house's (less room, never more).
 */
export function fuseChargeLimitW(s: Snapshot, c: ControlSettings, nowMs: number): number | undefined {
  const fuseA = c.site.fuseA;
  if (!finite(fuseA) || fuseA <= 0) return undefined;
  const v = finite(c.site.nominalVoltageV) && c.site.nominalVoltageV > 0 ? c.site.nominalVoltageV : NOMINAL_VOLTAGE_V;
  const chargerPhases = c.site.chargerPhases && c.site.chargerPhases.length > 0 ? c.site.chargerPhases : [1, 2, 3];
  const n = chargerPhases.length;
  const currents = s.phaseCurrentsA;
  const fresh = currents !== undefined && currents.length > 0 && !s.houseLoadFault && s.phaseCurrentsAtMs !== undefined && siteFresh(s.phaseCurrentsAtMs, c, nowMs);
  const carA = Math.max(0, chargerAcW(s, c, nowMs) ?? 0) / (v * n);
  let worstHouseA = 0;
  for (const phase of chargerPhases) {
    let houseA: number;
    if (fresh) {
      const measured = currents[phase - 1];
      // a phase the charger is on that the meter does not report: nothing is known about it
      if (!finite(measured)) return 0;
      houseA = Math.max(0, Math.abs(measured) - carA);
    } else {
      const assumed = finite(c.site.assumedHouseLoadW) && c.site.assumedHouseLoadW >= 0 ? c.site.assumedHouseLoadW : ASSUMED_HOUSE_LOAD_W;
      houseA = assumed / (v * (c.site.phases === 1 ? 1 : 3));
    }
    worstHouseA = Math.max(worstHouseA, houseA);
  }
  return Math.max(0, fuseA - worstHouseA) * v * n;
}

/**
 * The per-phase fuse limit on discharging, W (AC), or undefined without `site.fuseA`: with the house drawing
 * nothing, all of the car's power flows out through the fuse on the charger's phases.
 */
export function fuseDischargeLimitW(c: ControlSettings): number | undefined {
  const fuseA = c.site.fuseA;
  if (!finite(fuseA) || fuseA <= 0) return undefined;
  const v = finite(c.site.nominalVoltageV) && c.site.nominalVoltageV > 0 ? c.site.nominalVoltageV : NOMINAL_VOLTAGE_V;
  return fuseA * v * (c.site.chargerPhases && c.site.chargerPhases.length > 0 ? c.site.chargerPhases.length : 3);
}

export function efficiency(s: Snapshot): number {
  const e = s.inverter.efficiency;
  return e !== undefined && e > 0 && e <= 1 ? e : DEFAULT_EFFICIENCY;
}

export interface Departure {
  /** When, by the calendar (wall clock), epoch ms. */
  atMs?: number;
  /** Seconds from this decision to the departure, by the calendar; undefined without a departure. */
  inS?: number;
  targetSocPct: number;
}

/**
 * Which departure and target apply. `departureSource: "config"` (default): the homeowner's daily time
 * wins and the car's is used only when the config has none; `"car"`: the car's wins when it sends one.
 */
export function departure(s: Snapshot, c: ControlSettings, wallMs: number): Departure {
  const tz = c.timezone ?? 'UTC';
  const configAt = c.vehicle.departureTime ? nextLocalTimeMs(c.vehicle.departureTime, tz, wallMs) : undefined;
  const carAt = s.vehicle.departureAtMs !== undefined && s.vehicle.departureAtMs > wallMs ? s.vehicle.departureAtMs : undefined;
  const pick = (atMs: number | undefined, targetSocPct: number): Departure => ({ atMs, inS: atMs === undefined ? undefined : (atMs - wallMs) / 1000, targetSocPct });
  if (c.vehicle.departureSource === 'car') {
    return pick(carAt ?? configAt, carAt !== undefined && s.vehicle.targetSocPct !== undefined ? s.vehicle.targetSocPct : c.vehicle.targetSocPct);
  }
  return pick(configAt ?? carAt, configAt === undefined && s.vehicle.targetSocPct !== undefined ? s.vehicle.targetSocPct : c.vehicle.targetSocPct);
}

/**
 * Charge power available for reaching the departure target, W (AC side). An unknown charge limit of the
 * inverter counts as 0 W (no charging can be planned on it); an unmetered house as `site.assumedHouseLoadW`.
 */
export function departureChargeW(s: Snapshot, c: ControlSettings, nowMs: number): number {
  const candidates = [finite(s.inverter.maxChargeW) ? s.inverter.maxChargeW : 0];
  if (s.vehicle.maxChargeW !== undefined) candidates.push(finite(s.vehicle.maxChargeW) ? s.vehicle.maxChargeW : 0);
  if (c.vehicle.maxChargeW !== null) candidates.push(c.vehicle.maxChargeW);
  if (c.site.gridImportLimitW !== null) candidates.push(c.site.gridImportLimitW - houseLoadForImportW(s, c, nowMs));
  const fuseW = fuseChargeLimitW(s, c, nowMs);
  if (fuseW !== undefined) candidates.push(fuseW);
  return Math.max(0, Math.min(...candidates));
}

/**
 * The lowest SoC from which the target is still reachable by departure at the charge power available,
 * keeping `departureMarginS` in hand. Undefined without a departure. With the capacity unknown it uses
 * `vehicle.assumedCapacityWhForDeparture` (large): the floor is then higher than the car's real one,
 * never lower, so the departure target is kept.
 */
export function departureFloorPct(s: Snapshot, c: ControlSettings, nowMs: number, dep: Departure): number | undefined {
  if (dep.atMs === undefined || dep.inS === undefined) return undefined;
  const cap = departureCapacityWh(s, c);
  const hours = Math.max(0, dep.inS - c.vehicle.departureMarginS) / 3600;
  const reachablePct = ((departureChargeW(s, c, nowMs) * efficiency(s) * hours) / cap) * 100;
  return Math.max(0, Math.min(dep.targetSocPct, dep.targetSocPct - reachablePct));
}

export function floors(s: Snapshot, c: ControlSettings, nowMs: number, dep: Departure): Floors {
  const departureFloor = departureFloorPct(s, c, nowMs, dep);
  const carMin = s.vehicle.minSocPct;
  // a car minimum that is not a number cannot lower anything: it is ignored, never taken as NaN
  const effective = Math.max(c.vehicle.dischargeFloorPct, departureFloor ?? 0, finite(carMin) ? carMin : 0);
  return {
    dischargeFloorPct: c.vehicle.dischargeFloorPct,
    backupFloorPct: c.vehicle.backupFloorPct,
    departureFloorPct: departureFloor,
    effectiveFloorPct: Math.min(100, effective),
  };
}

/**
 * Why the car may not be discharged, or undefined when it may. The drivers report facts (what the car
 * sent, what the charger can do); consent is decided here. A car that said no (`bidirectional: false`,
 * a discharge limit of 0) is `not_bidirectional`; one that said nothing is `no_consent` unless the
 * homeowner/installer set `vehicle.dischargeWithoutCarConsent`.
 */
export function dischargeRefusal(s: Snapshot, c: ControlSettings): ReasonCode | undefined {
  const v = s.vehicle;
  if (!v.connected) return 'no_vehicle';
  if (v.bidirectional === false) return 'not_bidirectional';
  if (v.bidirectional === true) return undefined;
  if (v.maxDischargeW !== undefined) return finite(v.maxDischargeW) && v.maxDischargeW > 0 ? undefined : 'not_bidirectional';
  return c.vehicle.dischargeWithoutCarConsent === true ? undefined : 'no_consent';
}

/** Whether the car may be discharged at all (see `dischargeRefusal`). */
export function carOffersDischarge(s: Snapshot, c: ControlSettings): boolean {
  return dischargeRefusal(s, c) === undefined;
}

/** Largest discharge that does not cross `floorPct` before the next tick, W (AC side). */
export function floorBoundW(socPct: number, floorPct: number, capWh: number, eff: number, horizonS: number): number {
  const aboveWh = ((socPct - floorPct) / 100) * capWh;
  // `!(x > 0)` and not `x <= 0`: a NaN anywhere above must mean no discharge
  if (!(aboveWh > 0) || !(eff > 0) || !(horizonS > 0)) return 0;
  return (aboveWh * eff * 3600) / horizonS;
}

/** Rejoin ramp: after an outage, power comes back over `rejoinRampS` (enter-service ramp). */
export function rampFactor(c: ControlSettings, rejoinedAtMs: number | undefined, nowMs: number): number {
  if (rejoinedAtMs === undefined || c.backup.rejoinRampS <= 0) return 1;
  return Math.max(0, Math.min(1, (nowMs - rejoinedAtMs) / 1000 / c.backup.rejoinRampS));
}

/**
 * The smallest limit of a list and its name (first one wins a tie). Fails closed: a limit that is not a
 * finite number is a limit of 0 W, never "no limit" (NaN compares false with everything).
 */
export function smallest(list: [number, string][]): [number, string] {
  let best: [number, string] = [Number.POSITIVE_INFINITY, list[0]?.[1] ?? 'unknown'];
  for (const [w, name] of list) {
    const v = Number.isFinite(w) ? w : 0;
    if (v < best[0]) best = [v, name];
  }
  // an empty list has no limit to name: nothing is allowed
  if (!Number.isFinite(best[0])) return [0, best[1]];
  return [Math.max(0, best[0]), best[1]];
}

/** Every power limit in force now, and which one binds (invariant 4). */
export function powerLimits(s: Snapshot, c: ControlSettings, f: Floors, nowMs: number, rejoinedAtMs: number | undefined): PowerLimits {
  const ramp = rampFactor(c, rejoinedAtMs, nowMs);
  // an unknown inverter limit is 0 W: nothing is commanded on a rating nobody reported
  const invCharge = s.inverter.maxChargeW ?? 0;
  const invDischarge = s.inverter.maxDischargeW ?? 0;
  const charge: [number, string][] = [[invCharge, 'inverter_limit']];
  // the car's limits are on its side (DC); every limit here is AC at the connection point, with the same
  // efficiency model as the metering and the simulator: AC in = car side / efficiency, AC out = car side x efficiency
  if (s.vehicle.maxChargeW !== undefined) charge.push([s.vehicle.maxChargeW / efficiency(s), 'vehicle_limit']);
  if (c.vehicle.maxChargeW !== null) charge.push([c.vehicle.maxChargeW, 'homeowner_limit']);
  if (c.site.gridImportLimitW !== null) charge.push([c.site.gridImportLimitW - houseLoadForImportW(s, c, nowMs), 'grid_limit']);
  // the main fuse, per phase, with the house's current as measured (a house-load step cuts the car at the next tick)
  const fuseChargeW = fuseChargeLimitW(s, c, nowMs);
  if (fuseChargeW !== undefined) charge.push([fuseChargeW, 'grid_limit']);
  if (ramp < 1) charge.push([invCharge * ramp, 'rejoin_ramp']);
  const soc = s.vehicle.socPct;
  if (soc !== undefined && soc >= (s.vehicle.maxSocPct ?? 100)) charge.push([0, 'max_soc']);
  if (!s.vehicle.connected) charge.push([0, 'no_vehicle']);

  const discharge: [number, string][] = [[invDischarge, 'inverter_limit']];
  const refusal = dischargeRefusal(s, c);
  if (refusal) discharge.push([0, refusal]);
  if (s.vehicle.maxDischargeW !== undefined) discharge.push([s.vehicle.maxDischargeW * efficiency(s), 'vehicle_limit']);
  // the charger's export capability is a fact about the charger: it bounds whatever consent was given
  if (s.vehicle.chargerExportCapabilityW !== undefined) discharge.push([s.vehicle.chargerExportCapabilityW, 'inverter_limit']);
  if (c.vehicle.maxDischargeW !== null) discharge.push([c.vehicle.maxDischargeW, 'homeowner_limit']);
  if (c.site.gridExportLimitW !== null) discharge.push([c.site.gridExportLimitW + houseLoadForExportW(s, c, nowMs), 'grid_limit']);
  const fuseDischargeW = fuseDischargeLimitW(c);
  if (fuseDischargeW !== undefined) discharge.push([fuseDischargeW, 'grid_limit']);
  if (ramp < 1) discharge.push([invDischarge * ramp, 'rejoin_ramp']);
  if (soc === undefined || !finite(soc)) discharge.push([0, 'soc_unknown']);
  else {
    // small assumed capacity: less energy above the floor, a smaller step per tick
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
