/**
 * Grid-loss policy: which inputs mean "the grid is gone", decided here from named inputs. Pure.
 *
 * - The grid-sense line, when there is one, decides: absent = lost, at once (the line is debounced by the
 *   GPIO driver; speed matters, an unintended island must be left within 2 s, IEEE 1547-2018 8.1).
 * - Without a sense line, an inverter alarm listed in `backup.gridLossAlarms` (SunSpec 701 `Alrm`
 *   symbols, default GRID_DISCONNECT and AC_UNDER_VOLT) means lost once it has held for
 *   `backup.gridLossDebounceS` without a break; before that, power goes to zero.
 * - A grid trip (over/under-voltage, over/under-frequency, or a listed alarm) while the sense line shows the
 *   grid present, or any unlisted trip without a sense line, is a zero-power event on the grid
 *   (`grid_trip`): the inverter's own protection has acted, the grid is still there, the house stays on it.
 * - The grid counts as present (for the reconnect delay) when the sense line shows it; without a line,
 *   when a fresh, fault-free inverter reading that is not grid-forming reports its alarms and none of them
 *   is a grid alarm. A forming inverter measures its own island, and an inverter that does not report
 *   alarms tells nothing: unknown is not present.
 */
import type { ControlSettings } from '../config/types.ts';
import type { Snapshot } from './types.ts';

/** SunSpec 701 `Alrm` symbols that are grid trips (the inverter's own protection acting on the grid). */
export const GRID_TRIP_ALARMS: ReadonlySet<string> = new Set(['GRID_DISCONNECT', 'AC_OVER_VOLT', 'AC_UNDER_VOLT', 'OVER_FREQUENCY', 'UNDER_FREQUENCY']);

export interface GridView {
  /** Sustained loss: the island sequence may start (sense line absent, or a listed alarm held for the debounce). */
  lost: boolean;
  /** Seen present by a trusted source now (the reconnect delay counts only while this holds). */
  present: boolean;
  /** Power must be zero now, and why: `grid_down` (loss, sustained or not yet), `grid_trip` (a trip with the grid there). */
  zeroReason?: 'grid_down' | 'grid_trip';
  /** Which source decided. */
  source: 'sense' | 'inverter' | 'none';
  /** The grid alarms the inverter reports now (for messages). */
  alarms: string[];
  /** Since when a listed alarm has held (carry into the next call). */
  alarmSinceMs?: number;
}

/** True when the inverter reading is within its age limit and the driver reports no fault. */
export function inverterFresh(s: Snapshot, c: ControlSettings, nowMs: number): boolean {
  const at = s.inverter.atMs;
  if (at === undefined || !Number.isFinite(at) || s.inverter.fault !== undefined) return false;
  return (nowMs - at) / 1000 <= c.control.inverterMaxAgeS;
}

export function assessGrid(s: Snapshot, c: ControlSettings, prevAlarmSinceMs: number | undefined, nowMs: number): GridView {
  const listed = new Set(c.backup.gridLossAlarms);
  const fresh = inverterFresh(s, c, nowMs);
  // the alarms of a stale reading are not what the inverter sees now
  const reported = fresh ? s.inverter.alarms : undefined;
  const gridAlarms = (reported ?? []).filter((a) => listed.has(a) || GRID_TRIP_ALARMS.has(a));
  const lossAlarm = (reported ?? []).some((a) => listed.has(a));
  const alarmSinceMs = lossAlarm ? prevAlarmSinceMs ?? nowMs : undefined;

  const sense = s.grid.fault === undefined ? s.grid.sensePresent : undefined;
  if (sense === false) return { lost: true, present: false, zeroReason: 'grid_down', source: 'sense', alarms: gridAlarms, alarmSinceMs };
  if (sense === true)
    return { lost: false, present: true, zeroReason: gridAlarms.length ? 'grid_trip' : undefined, source: 'sense', alarms: gridAlarms, alarmSinceMs };

  if (lossAlarm) {
    const heldS = (nowMs - (alarmSinceMs ?? nowMs)) / 1000;
    return { lost: heldS >= c.backup.gridLossDebounceS, present: false, zeroReason: 'grid_down', source: 'inverter', alarms: gridAlarms, alarmSinceMs };
  }
  if (gridAlarms.length) return { lost: false, present: false, zeroReason: 'grid_trip', source: 'inverter', alarms: gridAlarms, alarmSinceMs };
  const present = reported !== undefined && s.inverter.gridForming === false;
  return { lost: false, present, source: present ? 'inverter' : 'none', alarms: [], alarmSinceMs };
}
