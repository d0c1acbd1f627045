/**
 * What the SunSpec driver and its control paths share: a model placed on the device, the errors that
 * become port faults, and encoding scaled points for a write (with a check that the device can hold the
 * value at all).
 */
import { encodePoint, rawRange, type DecodedPoints, type LaidPoint, type ModelLayout } from './codec.ts';
import type { DiscoveredModel } from './discovery.ts';
import { errText } from './transport.ts';

export interface ModelAt extends DiscoveredModel {
  layout: ModelLayout;
}

/** The device sent a value outside what its model allows (port fault `garbage`). */
export class GarbageError extends Error {}

/** A command the device cannot hold with its scale factor (port fault `unrepresentable`). */
export class UnrepresentableError extends Error {}

/**
 * How far the value a device can hold may be from the command before the command counts as one it cannot
 * represent: max(50 W, 5 % of the command). Finer than the command-following tolerance, so a setpoint that
 * passes here and is then followed exactly passes that check too.
 */
export const REPRESENTATION_TOLERANCE = { minW: 50, fraction: 0.05 };

/**
 * The value point `lp` holds after `value` is written with scale factor `sf`, or why it cannot hold it:
 * the raw value falls outside the point's type, or rounding to the point's resolution moves it further
 * than {@link REPRESENTATION_TOLERANCE} (e.g. WSet_SF = +10 turns −11 kW into 0).
 */
export function heldValue(m: ModelAt, lp: LaidPoint, value: number, sf: number): { held: number } | { why: string } {
  const raw = Math.round(value / 10 ** sf);
  const [lo, hi] = rawRange(lp.def.type);
  const where = `${m.id} ${lp.name} (register ${m.address + lp.offset}) with ${lp.def.sf ?? 'no SF'} = ${sf}`;
  if (!Number.isFinite(raw) || raw < lo || raw > hi) return { why: `${where} cannot hold ${value}: it would need the raw value ${raw}, outside ${lo}..${hi}` };
  const held = raw * 10 ** sf;
  const tol = Math.max(REPRESENTATION_TOLERANCE.minW, REPRESENTATION_TOLERANCE.fraction * Math.abs(value));
  if (Math.abs(held - value) > tol) return { why: `${where} cannot hold ${value}: the nearest value it can hold is ${held}` };
  return { held };
}

/**
 * Registers for contiguous points of one model, written in a single FC 16, each scaled by its scale factor
 * from `sfFrom` (the model's last read).
 */
export function encodeWrite(m: ModelAt, pts: readonly (readonly [string, number])[], sfFrom: DecodedPoints | undefined): { address: number; regs: number[] } {
  const lps = pts.map(([n]) => m.layout.byName.get(n)!);
  const first = lps[0].offset;
  const regs: number[] = [];
  let next = first;
  for (let i = 0; i < pts.length; i++) {
    const lp = lps[i];
    if (lp.offset !== next) throw new Error(`internal: points ${pts.map((p) => p[0]).join(', ')} of model ${m.id} are not contiguous`);
    let sf = 0;
    if (lp.def.sf) {
      const raw = sfFrom?.raws[lp.def.sf];
      if (typeof raw !== 'number') throw new GarbageError(`${m.id} ${lp.def.sf} is not implemented; cannot scale ${lp.name}`);
      sf = raw;
    }
    try {
      regs.push(...encodePoint(lp, pts[i][1], sf));
    } catch (e) {
      throw new GarbageError(`${m.id} ${lp.name} = ${pts[i][1]} cannot be encoded: ${errText(e)}`);
    }
    next = lp.offset + lp.def.size;
  }
  return { address: m.address + first, regs };
}

/** What a control path needs from the driver. */
export interface ControlIo {
  /** Read the named points of a model (with their scale factors) in one request; throws on garbage. */
  read(m: ModelAt, names: readonly string[]): Promise<DecodedPoints>;
  /** Write contiguous points of a model in one FC 16, scaled by `sfFrom`. */
  write(m: ModelAt, pts: readonly (readonly [string, number])[], sfFrom: DecodedPoints | undefined): Promise<void>;
  /** Device-side fallback to 0 W after this long without a command refresh, s (whole seconds, >= 1). */
  reversionS: number;
}

/**
 * One way of commanding active power (704 WSet, or 124 InWRte/OutWRte). Power is positive into the car;
 * the path converts to the model's sign at the boundary.
 */
export interface PowerControl {
  readonly model: 704 | 124;
  /** The points a tick reads from the control model. */
  readonly tickPoints: readonly string[];
  /** Arm the device-side watchdog, then put `commandW` in force. */
  setup(commandW: number): Promise<void>;
  /** Put `commandW` in force (and restart the device's reversion timer). */
  write(commandW: number): Promise<void>;
  /** Take the control model's points from a tick read (scale factors for the next write). */
  observe(d: DecodedPoints): void;
  /** The setpoint the device reports in force, W, positive into the car. */
  setpointInForce(): number | undefined;
  /** Why the device's controls no longer look as they were set up (it restarted, or reverted), or undefined. */
  setupLost(): string | undefined;
  /** Why `commandW` cannot be expressed to this device, or undefined when it can. */
  unrepresentable(commandW: number): string | undefined;
}

export function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}
