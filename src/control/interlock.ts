/**
 * The islanding interlock (invariant 5), stated once. Every plan that commands the grid contactor closed
 * while it is commanded open, or while its feedback shows it open, passes through `interlock()`; when it
 * refuses, the contactor stays open and the house waits dark rather than be closed onto the grid.
 *
 * The contactor may be commanded closed only when
 *  (a) the grid has been seen present without a break for `backup.reconnectDelayS` (IEEE 1547-2018 4.10.3
 *      enter-service delay): by the grid-sense line, or without one by the inverter (grid-loss.ts);
 *  (b) an inverter reading no older than `control.inverterMaxAgeS`, from a driver without a fault, and
 *      taken after grid-forming was last commanded off (or after the start), says it is not grid-forming;
 *      an inverter that cannot island at all needs only such a reading (its forming state may be unreported);
 *  (c) the setpoint of this plan and the last one commanded are both 0 W.
 * Pure.
 */
import type { Snapshot } from './types.ts';

export interface InterlockInputs {
  nowMs: number;
  /** Since when the grid has been seen present without a break; undefined = not present now. */
  gridStableSinceMs?: number;
  /** Which source saw it (for the message). */
  gridSource?: 'sense' | 'inverter' | 'none';
  reconnectDelayS: number;
  inverter: Pick<Snapshot['inverter'], 'atMs' | 'gridForming' | 'islandCapable' | 'fault'>;
  inverterMaxAgeS: number;
  /** The reading must be newer than this (the first plan without grid-forming); undefined = no such bound. */
  formingOffAtMs?: number;
  setpointW: number;
  lastSetpointW: number;
}

export interface InterlockResult {
  ok: boolean;
  /** Each condition that does not hold, in words, for reasons and events. */
  missing: string[];
}

export function interlock(i: InterlockInputs): InterlockResult {
  const missing: string[] = [];
  // (a) the grid stable for the reconnect delay
  const stableS = i.gridStableSinceMs === undefined ? undefined : (i.nowMs - i.gridStableSinceMs) / 1000;
  if (stableS === undefined || !Number.isFinite(stableS)) missing.push('grid not seen present');
  else if (stableS < i.reconnectDelayS) missing.push(`grid present only ${Math.floor(stableS)} s of ${i.reconnectDelayS} s`);
  // (b) a fresh reading, after forming was commanded off, that says not forming
  const at = i.inverter.atMs;
  const ageS = at === undefined ? undefined : (i.nowMs - at) / 1000;
  if (i.inverter.fault !== undefined) missing.push(`inverter in fault (${i.inverter.fault})`);
  else if (at === undefined || ageS === undefined || !Number.isFinite(ageS)) missing.push('no inverter reading');
  else if (ageS > i.inverterMaxAgeS) missing.push(`inverter reading ${Math.round(ageS)} s old`);
  else if (i.formingOffAtMs !== undefined && !(at > i.formingOffAtMs)) missing.push('no inverter reading since grid-forming was commanded off');
  else if (i.inverter.gridForming === true) missing.push('inverter still grid-forming');
  else if (i.inverter.gridForming !== false && i.inverter.islandCapable !== false) missing.push('inverter forming state unknown');
  // (c) zero power, now and before
  if (i.setpointW !== 0) missing.push(`setpoint ${i.setpointW} W`);
  if (i.lastSetpointW !== 0) missing.push(`last setpoint ${i.lastSetpointW} W`);
  return { ok: missing.length === 0, missing };
}

/** The contactor is commanded open, or its feedback shows it open: closing it needs the interlock. */
export function contactorMayBeOpen(k: Snapshot['contactor']): boolean {
  return k.installed && (!k.commandedClosed || k.feedbackClosed === false);
}
