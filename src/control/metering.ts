/**
 * Energy metering: turns successive inverter readings into the energy moved between them.
 *
 * PURE: no I/O, no clock, no randomness. The caller keeps the returned state and passes it back with
 * the next reading; the state is plain JSON so it can be checkpointed and restored after a crash.
 *
 * The inverter's lifetime counters (SunSpec 701 TotWhAbs / TotWhInj) are preferred over integrated
 * power because they keep counting between our polls and across our own restarts. They are not
 * trusted blindly: a counter may wrap at its register width, restart from zero when the inverter is
 * replaced or reboots, or be missing altogether. A step that the inverter could not physically have
 * delivered in the interval is never booked; that tick uses integrated power instead, so the ledger
 * never jumps.
 */
import type { EnergyDelta } from './types.ts';

export interface MeterSettings {
  /** One-way AC↔DC conversion efficiency (0 < e <= 1), to turn AC energy into car-side energy. */
  efficiency: number;
  /**
   * Largest AC power the inverter can move in either direction, W. A counter step larger than this
   * power could deliver in the interval (with a margin) is a reset or a glitch, not energy.
   */
  maxPowerW: number;
  /** Value at which the counters wrap back to 0, Wh (e.g. 2^32 for a uint32 Wh register); undefined = never. */
  counterModulusWh?: number;
  /** Smallest step the counters show, Wh (1 for a Wh register, 1000 for one counting kWh). Default 1. */
  counterResolutionWh?: number;
  /**
   * Longest interval over which power is integrated, s. Beyond it (a gap in readings, a restart) the
   * power in between is unknown and is not guessed; only the counters can account for it. Default 10.
   */
  maxIntegrateS?: number;
}

/** What the meter remembers from the previous reading. Plain JSON. */
export interface MeterState {
  atMs?: number;
  /** AC power at the previous reading, W, positive into the car. */
  powerW?: number;
  /** Previous counter values, Wh; undefined when the counter was missing or not yet seen. */
  importedWh?: number;
  exportedWh?: number;
}

/** The part of an inverter reading the meter uses (hal/ports.ts InverterReading fits). */
export interface MeterReading {
  atMs: number;
  /** AC power, W, positive into the car. */
  acPowerW: number;
  /** Lifetime counter of AC energy into the car, Wh; undefined when the device has none. */
  importedWh?: number;
  /** Lifetime counter of AC energy out of the car, Wh; undefined when the device has none. */
  exportedWh?: number;
}

/** How one direction's energy was measured in a tick. */
export type MeterSource =
  | 'counter' // counter difference
  | 'wrap' // counter difference across the modulus
  | 'reset' // counter went backwards: integrated power used, counter re-based
  | 'jump' // counter leapt further than the inverter could deliver: integrated power used, re-based
  | 'baseline' // first value of this counter: integrated power used
  | 'missing' // no counter in this reading: integrated power used
  | 'none'; // no interval (first reading or a repeated one)

export interface MeterTick {
  delta: EnergyDelta;
  state: MeterState;
  /** Interval covered, s. */
  dtS: number;
  imported: MeterSource;
  exported: MeterSource;
}

export const DEFAULT_MAX_INTEGRATE_S = 10;
/** Slack over the rated power before a counter step counts as a jump (rating tolerance, timestamp jitter). */
const PLAUSIBLE_POWER_MARGIN = 1.25;

export function initialMeterState(): MeterState {
  return {};
}

/** Validates settings once, so a bad config is named instead of producing NaN energy. */
export function checkMeterSettings(s: MeterSettings): void {
  if (!(s.efficiency > 0 && s.efficiency <= 1)) throw new Error(`meter efficiency must be in (0, 1], got ${s.efficiency}`);
  if (!(Number.isFinite(s.maxPowerW) && s.maxPowerW > 0)) throw new Error(`meter maxPowerW must be a positive number of W, got ${s.maxPowerW}`);
  if (s.counterModulusWh !== undefined && !(Number.isFinite(s.counterModulusWh) && s.counterModulusWh > 0))
    throw new Error(`meter counterModulusWh must be a positive number of Wh, got ${s.counterModulusWh}`);
  if (s.counterResolutionWh !== undefined && !(Number.isFinite(s.counterResolutionWh) && s.counterResolutionWh > 0))
    throw new Error(`meter counterResolutionWh must be a positive number of Wh, got ${s.counterResolutionWh}`);
  if (s.maxIntegrateS !== undefined && !(s.maxIntegrateS >= 0)) throw new Error(`meter maxIntegrateS must be >= 0 s, got ${s.maxIntegrateS}`);
}

/**
 * Trapezoidal integral of a power that moves linearly from p0W to p1W over dtS, split into the part
 * into the car and the part out of it (a sign change is split at the zero crossing).
 */
export function integratePowerWh(p0W: number, p1W: number, dtS: number): { importedWh: number; exportedWh: number } {
  const h = dtS / 3600;
  if (p0W >= 0 && p1W >= 0) return { importedWh: ((p0W + p1W) / 2) * h, exportedWh: 0 };
  if (p0W <= 0 && p1W <= 0) return { importedWh: 0, exportedWh: (-(p0W + p1W) / 2) * h };
  const span = Math.abs(p0W) + Math.abs(p1W);
  const pos = Math.max(p0W, p1W);
  const neg = Math.min(p0W, p1W);
  return { importedWh: ((pos * pos) / (2 * span)) * h, exportedWh: ((neg * neg) / (2 * span)) * h };
}

/** A counter value outside [0, modulus) cannot come from a sane register: treat it as missing. */
function counterOrUndefined(v: number | undefined, modulusWh: number | undefined): number | undefined {
  return v !== undefined && Number.isFinite(v) && v >= 0 && (modulusWh === undefined || v < modulusWh) ? v : undefined;
}

function counterStep(
  prev: number | undefined,
  cur: number | undefined,
  integratedWh: number,
  plausibleWh: number,
  modulusWh: number | undefined,
): { wh: number; source: MeterSource } {
  if (cur === undefined) return { wh: integratedWh, source: 'missing' };
  if (prev === undefined) return { wh: integratedWh, source: 'baseline' };
  const raw = cur - prev;
  if (raw >= 0) return raw <= plausibleWh ? { wh: raw, source: 'counter' } : { wh: integratedWh, source: 'jump' };
  if (modulusWh !== undefined && raw + modulusWh >= 0 && raw + modulusWh <= plausibleWh) return { wh: raw + modulusWh, source: 'wrap' };
  return { wh: integratedWh, source: 'reset' };
}

/**
 * One metering step. A reading not newer than the previous one (a stale, repeated poll) moves nothing
 * and leaves the state as it was.
 */
export function meterTick(state: MeterState, reading: MeterReading, settings: MeterSettings): MeterTick {
  const zero: EnergyDelta = { exportedWh: 0, importedWh: 0, carSideWh: 0 };
  const powerW = Number.isFinite(reading.acPowerW) ? reading.acPowerW : 0;
  const importedNow = counterOrUndefined(reading.importedWh, settings.counterModulusWh);
  const exportedNow = counterOrUndefined(reading.exportedWh, settings.counterModulusWh);
  if (state.atMs !== undefined && !(reading.atMs > state.atMs)) {
    return { delta: zero, state, dtS: 0, imported: 'none', exported: 'none' };
  }
  const next: MeterState = { atMs: reading.atMs, powerW, importedWh: importedNow, exportedWh: exportedNow };
  if (state.atMs === undefined) {
    return { delta: zero, state: next, dtS: 0, imported: 'none', exported: 'none' };
  }
  const dtS = (reading.atMs - state.atMs) / 1000;
  const maxIntegrateS = settings.maxIntegrateS ?? DEFAULT_MAX_INTEGRATE_S;
  const integrated = dtS <= maxIntegrateS ? integratePowerWh(state.powerW ?? 0, powerW, dtS) : { importedWh: 0, exportedWh: 0 };
  const plausibleWh = settings.maxPowerW * PLAUSIBLE_POWER_MARGIN * (dtS / 3600) + (settings.counterResolutionWh ?? 1);
  const imp = counterStep(state.importedWh, importedNow, integrated.importedWh, plausibleWh, settings.counterModulusWh);
  const exp = counterStep(state.exportedWh, exportedNow, integrated.exportedWh, plausibleWh, settings.counterModulusWh);
  const delta: EnergyDelta = {
    importedWh: imp.wh,
    exportedWh: exp.wh,
    carSideWh: imp.wh * settings.efficiency - exp.wh / settings.efficiency,
  };
  return { delta, state: next, dtS, imported: imp.source, exported: exp.source };
}

/** The most a single tick of `dtS` can book in one direction, Wh: the bound a reset can never exceed. */
export function plausibleTickWh(settings: MeterSettings, dtS: number): number {
  return settings.maxPowerW * PLAUSIBLE_POWER_MARGIN * (dtS / 3600) + (settings.counterResolutionWh ?? 1);
}
