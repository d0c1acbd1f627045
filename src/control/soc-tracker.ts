/**
 * SoC tracking from metered energy, for cars that send no SoC (every AC ISO 15118-2 session, many
 * ISO 15118-20 ones) or stop sending it. PURE: no I/O, no clock; the runtime calls `updateSocTracker`
 * once per tick with the car-side energy moved since the previous call.
 *
 * A tracked SoC needs a known point (the car's last report, or one the runtime knows otherwise) and a
 * capacity (the car's, else the homeowner's `vehicle.capacityWh`): tracked = anchor + energy / capacity.
 */
import type { SocSource } from './types.ts';

/** The sources this tracker can name; `inverter` is decided elsewhere. */
export type TrackedSocSource = Extract<SocSource, 'vehicle' | 'tracked' | 'none'>;

export interface SocTrackerState {
  /** SoC at the known point, %; undefined until one is known. */
  anchorSocPct?: number;
  /** When the known point was taken (epoch ms). */
  anchorAtMs?: number;
  /** Usable capacity used for tracking, Wh; undefined = unknown (no tracking). */
  capacityWh?: number;
  /** Car-side energy since the known point, signed Wh (positive = into the car). */
  integratedWh: number;
  /** Car-side energy moved either way since the known point, Wh (>= 0): how far the figure may have drifted. */
  throughputWh: number;
  /** Whether the previous update carried a reported SoC. */
  reporting: boolean;
}

export interface SocTrackerInput {
  /** Time of this update (epoch ms). */
  atMs: number;
  /** The SoC the car reports now (VehicleState.socPct), when it sends one. */
  reportedSocPct?: number;
  /** When that figure was last confirmed (VehicleState.socAtMs). */
  reportedAtMs?: number;
  /** Car-side energy moved since the previous update, signed Wh (positive = into the car). */
  carSideWh: number;
  /** Capacity to track with, Wh: the car's reported capacity, else the homeowner's configured one. */
  capacityWh?: number;
  /**
   * A SoC the runtime knows without the car reporting it (e.g. the car ended a charge at its full SoC).
   * It becomes the new known point; the figures that follow are still `tracked`.
   */
  knownSocPct?: number;
}

export interface SocTrackerResult {
  state: SocTrackerState;
  /** The SoC to use, %, in [0, 100]; undefined when source is `none`. */
  socPct?: number;
  /** When `socPct` was measured: the car's report time, or this update for a tracked figure. */
  socAtMs?: number;
  socSource: TrackedSocSource;
  /** The tracked figure even while the car reports (for display and comparison), %. */
  trackedSocPct?: number;
}

export function initialSocTracker(capacityWh?: number): SocTrackerState {
  return { capacityWh: validCapacity(capacityWh), integratedWh: 0, throughputWh: 0, reporting: false };
}

function validSoc(v: number | undefined): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 && v <= 100 ? v : undefined;
}

function validCapacity(v: number | undefined): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : undefined;
}

function clampPct(v: number): number {
  return Math.min(100, Math.max(0, v));
}

/** The tracked SoC of a state, or undefined without a known point and a capacity. */
export function trackedSocPct(s: SocTrackerState): number | undefined {
  if (s.anchorSocPct === undefined || s.capacityWh === undefined) return undefined;
  return clampPct(s.anchorSocPct + (s.integratedWh / s.capacityWh) * 100);
}

/** A battery holds between 0 and 100 %: energy beyond either end did not land in it (the car stopped it). */
function boundedIntegral(s: SocTrackerState, capacityWh: number | undefined, deltaWh: number): number {
  const next = s.integratedWh + deltaWh;
  if (s.anchorSocPct === undefined || capacityWh === undefined) return next;
  const lo = (-s.anchorSocPct / 100) * capacityWh;
  const hi = ((100 - s.anchorSocPct) / 100) * capacityWh;
  return Math.min(hi, Math.max(lo, next));
}

/**
 * One tracking step. A reported SoC re-anchors the tracker when it is new (a different figure, or the
 * first after a gap); a repeated figure keeps the anchor, since a confirmation is not a new measurement
 * and re-anchoring on it would throw away the energy moved since the car last changed its figure.
 */
export function updateSocTracker(prev: SocTrackerState, input: SocTrackerInput): SocTrackerResult {
  const capacityWh = validCapacity(input.capacityWh) ?? prev.capacityWh;
  const delta = Number.isFinite(input.carSideWh) ? input.carSideWh : 0;
  const reported = validSoc(input.reportedSocPct);
  const known = validSoc(input.knownSocPct);
  let state: SocTrackerState;
  if (reported !== undefined) {
    const isNew = !prev.reporting || prev.anchorSocPct !== reported;
    state = isNew
      ? { anchorSocPct: reported, anchorAtMs: input.reportedAtMs ?? input.atMs, capacityWh, integratedWh: 0, throughputWh: 0, reporting: true }
      : { ...prev, capacityWh, integratedWh: boundedIntegral(prev, capacityWh, delta), throughputWh: prev.throughputWh + Math.abs(delta), reporting: true };
    return {
      state,
      socPct: reported,
      socAtMs: input.reportedAtMs ?? input.atMs,
      socSource: 'vehicle',
      trackedSocPct: trackedSocPct(state),
    };
  }
  if (known !== undefined) {
    state = { anchorSocPct: known, anchorAtMs: input.atMs, capacityWh, integratedWh: 0, throughputWh: 0, reporting: false };
  } else {
    state = { ...prev, capacityWh, integratedWh: boundedIntegral(prev, capacityWh, delta), throughputWh: prev.throughputWh + Math.abs(delta), reporting: false };
  }
  const tracked = trackedSocPct(state);
  if (tracked === undefined) return { state, socSource: 'none' };
  return { state, socPct: tracked, socAtMs: input.atMs, socSource: 'tracked', trackedSocPct: tracked };
}

/**
 * Car-side energy between two readings of the session counters (EVerest session_info
 * charged_energy_wh / discharged_energy_wh), signed Wh, positive = into the car. A counter that went
 * backwards (a new session) or is missing on either side counts as nothing moved.
 */
export function sessionCounterDeltaWh(
  prev: { chargedWh?: number; dischargedWh?: number } | undefined,
  cur: { chargedWh?: number; dischargedWh?: number },
): number {
  if (!prev) return 0;
  const step = (a?: number, b?: number) => (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b < a ? 0 : b - a);
  return step(prev.chargedWh, cur.chargedWh) - step(prev.dischargedWh, cur.dischargedWh);
}
