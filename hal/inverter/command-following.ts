/**
 * Command following: does the power stage do what it was told? Driver-independent and pure (no I/O, no
 * clock: times come in as arguments), so every inverter driver (SunSpec, CAN) reports the same facts.
 *
 * The rule (docs/sunspec.md, "Command following"):
 * - tolerance = max(5 % of the rating, 300 W);
 * - a new setpoint is given time to settle: 5 s plus the time a ramp of 20 % of the rating per second
 *   takes to cover the step (a full swing from −11 kW to +11 kW: 5 s + 10 s);
 * - after that, a reading further than the tolerance from the setpoint is not following, with the cause:
 *   `wrong_sign` (power flows the other way), `nothing` (commanded power, measured none) or `far_off`;
 *   a reading within the tolerance is following at any time, settling or not;
 * - while the inverter forms the grid, its power is set by the island's load, not by the setpoint: no check.
 *
 * The checker states facts; what to do about them (zero power, curtail the dispatch) is the core's decision.
 */

export interface FollowingSettings {
  /** Tolerance floor, W. */
  minToleranceW: number;
  /** Tolerance as a fraction of the rating. */
  toleranceFraction: number;
  /** Time every new setpoint gets before it is checked, ms. */
  settleMs: number;
  /** Ramp rate the power stage is allowed, as a fraction of the rating per second. */
  rampFractionPerS: number;
}

export const DEFAULT_FOLLOWING: FollowingSettings = { minToleranceW: 300, toleranceFraction: 0.05, settleMs: 5000, rampFractionPerS: 0.2 };

export interface FollowingState {
  /** The setpoint in force at the device, W, positive into the car; undefined = none written yet. */
  commandW?: number;
  /** Readings taken before this time are not judged (epoch ms). */
  settleUntilMs: number;
}

export type FollowingCause = 'wrong_sign' | 'nothing' | 'far_off';

export type FollowingVerdict =
  | { following: true }
  | { following: false; cause: FollowingCause; commandW: number; measuredW: number; toleranceW: number; message: string };

export const INITIAL_FOLLOWING: FollowingState = { settleUntilMs: -Infinity };

export function followingToleranceW(ratedW: number, s: FollowingSettings = DEFAULT_FOLLOWING): number {
  return Math.max(s.minToleranceW, s.toleranceFraction * Math.max(0, ratedW));
}

/**
 * A setpoint reached the device at `atMs`. The same value again (a watchdog refresh) does not restart the
 * settle time; a new value does, for 5 s plus its ramp.
 */
export function commandWritten(st: FollowingState, commandW: number, atMs: number, ratedW: number, s: FollowingSettings = DEFAULT_FOLLOWING): FollowingState {
  if (st.commandW === commandW) return st;
  const fromW = st.commandW ?? 0;
  const rampWPerS = s.rampFractionPerS * Math.max(0, ratedW);
  const rampMs = rampWPerS > 0 ? (Math.abs(commandW - fromW) / rampWPerS) * 1000 : 0;
  return { commandW, settleUntilMs: atMs + s.settleMs + rampMs };
}

/** The device's commands were reset (it restarted): nothing is known to be in force until the next write. */
export function commandUnknown(): FollowingState {
  return INITIAL_FOLLOWING;
}

/**
 * Judge one reading. Undefined when there is nothing to judge: no setpoint written, the inverter is forming
 * the grid, or the reading is off but the setpoint is still settling.
 */
export function judgeFollowing(
  st: FollowingState,
  reading: { acPowerW: number; atMs: number; gridForming: boolean },
  ratedW: number,
  s: FollowingSettings = DEFAULT_FOLLOWING,
): FollowingVerdict | undefined {
  const c = st.commandW;
  if (c === undefined || reading.gridForming) return undefined;
  const m = reading.acPowerW;
  const tol = followingToleranceW(ratedW, s);
  // within the tolerance is following at any time, also while settling (a fault on the last setpoint clears)
  if (Math.abs(m - c) <= tol) return { following: true };
  if (reading.atMs < st.settleUntilMs) return undefined;
  let cause: FollowingCause = 'far_off';
  if (Math.abs(c) > tol && Math.abs(m) > tol && Math.sign(m) !== Math.sign(c)) cause = 'wrong_sign';
  else if (Math.abs(c) > tol && Math.abs(m) <= tol) cause = 'nothing';
  const what = { wrong_sign: 'power flows the wrong way', nothing: 'no power flows', far_off: 'power is far from the setpoint' }[cause];
  return {
    following: false,
    cause,
    commandW: c,
    measuredW: m,
    toleranceW: tol,
    message: `not following its setpoint: commanded ${fmtW(c)}, measured ${fmtW(m)} (${what}; tolerance ±${Math.round(tol)} W)`,
  };
}

function fmtW(w: number): string {
  return `${Math.round(w)} W${w > 0 ? ' (charging)' : w < 0 ? ' (discharging)' : ''}`;
}
