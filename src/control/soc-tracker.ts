/**
 * One SoC for safety. PURE: no I/O, no clock; the runtime calls `updateSocTracker` once per tick with
 * the car-side energy moved since the previous call.
 *
 * The figure the core gets is the LOWER of the car's last report and what has been metered since that
 * report: a car that reports in whole percent, or that stopped sending while energy kept moving, can
 * never make the floor be undershot by what went out since its figure was taken. For cars that send no
 * SoC (every AC ISO 15118-2 session, many ISO 15118-20 ones) the same sum tracks the SoC from a known
 * point (the car's last report, or one the runtime knows otherwise) and a capacity.
 *
 * Such a figure ages like any input: with time since the car last sent its figure (unmetered drain:
 * the car's 12 V system, preconditioning) and with the energy moved since (metering and conversion error
 * grow with it). Past either bound (`maxAgeMs`, `maxThroughputPct` of the capacity) it is no figure: the
 * SoC is unknown, so no discharge; charging goes on as for a car that sends none.
 */
import type { SocSource } from './types.ts';
import { ASSUMED_CAPACITY_WH } from './limits.ts';

/** The sources this tracker can name; `inverter` is decided elsewhere. */
export type TrackedSocSource = Extract<SocSource, 'vehicle' | 'tracked' | 'none'>;

/** How long a figure stays usable after the car last sent it, by default, ms (4 h of unmetered drain). */
export const SOC_MAX_AGE_MS = 4 * 3600_000;
/** How much energy may move through the charger after it, by default, % of the capacity. */
export const SOC_MAX_THROUGHPUT_PCT = 20;

export interface SocTrackerState {
  /** SoC at the known point, %; undefined until one is known. */
  anchorSocPct?: number;
  /** When the known point was taken (epoch ms). */
  anchorAtMs?: number;
  /** When the car last sent (or repeated) its figure, or the known point was taken (epoch ms): the age runs from here. */
  measuredAtMs?: number;
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
  /** When the car sent that figure (VehicleState.socAtMs). */
  reportedAtMs?: number;
  /** Car-side energy moved since the previous update, signed Wh (positive = into the car). */
  carSideWh: number;
  /** Capacity to track with, Wh: the car's reported capacity, else the homeowner's configured one. */
  capacityWh?: number;
  /**
   * A SoC the runtime knows without the car reporting it (e.g. the power stage's storage SoC).
   * It becomes the new known point; the figures that follow are still `tracked`.
   */
  knownSocPct?: number;
  /**
   * When the vehicle link last heard from the car or its bridge (VehicleState.atMs). A figure is never
   * fresher than the link that carries the car's state: with a silent link it goes stale (invariant 3).
   */
  linkAtMs?: number;
  /** Age after which the figure is no figure, ms (default `SOC_MAX_AGE_MS`). */
  maxAgeMs?: number;
  /** Energy moved after which the figure is no figure, % of the capacity (default `SOC_MAX_THROUGHPUT_PCT`). */
  maxThroughputPct?: number;
}

export interface SocTrackerResult {
  state: SocTrackerState;
  /** The SoC to use for safety, %, in [0, 100]; undefined when source is `none`. */
  socPct?: number;
  /**
   * When `socPct` holds: this update while the figure is within its bounds (it is the car's figure
   * brought up to now by metering), but never later than `linkAtMs`; undefined without a figure.
   */
  socAtMs?: number;
  /** When the car last sent its figure or the known point was taken (for `socAgeS` in state). */
  measuredAtMs?: number;
  socSource: TrackedSocSource;
  /** The tracked figure even while the car reports (for display and comparison), %. */
  trackedSocPct?: number;
  /** Why there is no figure although a known point exists: too old, or too much energy moved since. */
  expired?: 'age' | 'throughput';
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

function validTime(v: number | undefined): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

function clampPct(v: number): number {
  return Math.min(100, Math.max(0, v));
}

/** The tracked SoC of a state, or undefined without a known point and a capacity. */
export function trackedSocPct(s: SocTrackerState, capacityWh: number | undefined = s.capacityWh): number | undefined {
  if (s.anchorSocPct === undefined || capacityWh === undefined) return undefined;
  return clampPct(s.anchorSocPct + (s.integratedWh / capacityWh) * 100);
}

/** A battery holds between 0 and 100 %: energy beyond either end did not land in it (the car stopped it). */
function boundedIntegral(s: SocTrackerState, capacityWh: number | undefined, deltaWh: number): number {
  const next = s.integratedWh + deltaWh;
  if (s.anchorSocPct === undefined || capacityWh === undefined) return next;
  const lo = (-s.anchorSocPct / 100) * capacityWh;
  const hi = ((100 - s.anchorSocPct) / 100) * capacityWh;
  return Math.min(hi, Math.max(lo, next));
}

/** Whether a figure measured at `measuredAtMs`, with `throughputWh` moved since, is past its bounds. */
function expiry(state: SocTrackerState, input: SocTrackerInput): 'age' | 'throughput' | undefined {
  const maxAgeMs = input.maxAgeMs ?? SOC_MAX_AGE_MS;
  const maxPct = input.maxThroughputPct ?? SOC_MAX_THROUGHPUT_PCT;
  // without a capacity the bound is taken on the small assumed one: it runs out sooner, never later
  const cap = state.capacityWh ?? ASSUMED_CAPACITY_WH;
  if (state.measuredAtMs !== undefined && input.atMs - state.measuredAtMs > maxAgeMs) return 'age';
  if (state.throughputWh > (maxPct / 100) * cap) return 'throughput';
  return undefined;
}

/**
 * One tracking step. A reported SoC re-anchors the tracker when it is new (a different figure, or the
 * first after a gap); a repeated figure keeps the anchor, since a confirmation is not a new measurement
 * and re-anchoring on it would throw away the energy moved since the car last changed its figure (a car
 * reporting whole percent keeps "60" while up to 1 % of its capacity leaves).
 */
export function updateSocTracker(prev: SocTrackerState, input: SocTrackerInput): SocTrackerResult {
  const capacityWh = validCapacity(input.capacityWh) ?? prev.capacityWh;
  const delta = Number.isFinite(input.carSideWh) ? input.carSideWh : 0;
  const reported = validSoc(input.reportedSocPct);
  const known = validSoc(input.knownSocPct);
  const reportedAtMs = validTime(input.reportedAtMs) ?? input.atMs;
  const linkAtMs = validTime(input.linkAtMs);
  const freshAtMs = linkAtMs !== undefined ? Math.min(input.atMs, linkAtMs) : input.atMs;
  let state: SocTrackerState;
  if (reported !== undefined) {
    const isNew = !prev.reporting || prev.anchorSocPct !== reported;
    state = isNew
      ? { anchorSocPct: reported, anchorAtMs: reportedAtMs, measuredAtMs: reportedAtMs, capacityWh, integratedWh: 0, throughputWh: 0, reporting: true }
      : {
        ...prev, capacityWh, measuredAtMs: Math.max(prev.measuredAtMs ?? reportedAtMs, reportedAtMs),
        integratedWh: boundedIntegral(prev, capacityWh ?? ASSUMED_CAPACITY_WH, delta), throughputWh: prev.throughputWh + Math.abs(delta), reporting: true,
      };
    const tracked = trackedSocPct(state);
    const expired = expiry(state, input);
    if (expired) return { state, socSource: 'none', measuredAtMs: state.measuredAtMs, trackedSocPct: tracked, expired };
    // what went out since the figure: with the capacity unknown, counted on the small assumed one (more %)
    const safe = trackedSocPct(state, capacityWh ?? ASSUMED_CAPACITY_WH) ?? reported;
    const lower = Math.min(reported, safe);
    return {
      state,
      socPct: lower,
      socAtMs: freshAtMs,
      measuredAtMs: state.measuredAtMs,
      socSource: lower < reported ? 'tracked' : 'vehicle',
      trackedSocPct: tracked,
    };
  }
  if (known !== undefined) {
    state = { anchorSocPct: known, anchorAtMs: input.atMs, measuredAtMs: input.atMs, capacityWh, integratedWh: 0, throughputWh: 0, reporting: false };
  } else {
    state = { ...prev, capacityWh, integratedWh: boundedIntegral(prev, capacityWh, delta), throughputWh: prev.throughputWh + Math.abs(delta), reporting: false };
  }
  const tracked = trackedSocPct(state);
  if (tracked === undefined) return { state, socSource: 'none' };
  const expired = expiry(state, input);
  if (expired) return { state, socSource: 'none', measuredAtMs: state.measuredAtMs, trackedSocPct: tracked, expired };
  return { state, socPct: tracked, socAtMs: freshAtMs, measuredAtMs: state.measuredAtMs, socSource: 'tracked', trackedSocPct: tracked };
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
