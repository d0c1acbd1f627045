/**
 * What physically happened in the simulated home, measured from the devices' own state over virtual
 * time and never from the runtime's plans: a plan can say the contactor is open while a welded contact
 * keeps the house on the grid, or say grid-forming is off while the inverter is still forming.
 *
 * The site reports every change of the grid, the contactor's main contact, the inverter's grid-forming
 * state and the contactor's output line; the monitor turns them into the counters of invariant 5:
 *
 * - `unsafeContactorCloses`: the main contact closed while the inverter was grid-forming (paralleling an
 *   island with the grid: out of phase, equipment damage and a live-line hazard for the utility's crew),
 *   or onto a grid that was down or had been back for less than the reconnect delay (IEEE 1547-2018
 *   §4.10.3 asks a DER to wait before it enters service again; the house contactor follows the same rule).
 *   The grid is judged as it was when the close was commanded, less the grid-sense debounce: a change in
 *   those last milliseconds, or while the contact travels, is one no controller could have seen.
 * - `backfeedS`: seconds the inverter energized the grid side while the grid was down (grid-forming with
 *   the contact closed). A grid-following inverter ceases to energize when it loses the grid (IEEE 1547
 *   §8.1, anti-islanding); the simulated one does so at once, so only a forming inverter backfeeds.
 * - `islandings`: times the house went from the grid to being served by the car alone (grid-forming
 *   with the contact open).
 * - `darkWithGridS`: seconds the grid was there but the house had neither it (contact open) nor the car
 *   (not forming): the price of a needless island or a slow rejoin.
 * - `maxGridLossToContactorOpenMs`: for each grid loss that found the contactor commanded closed and in
 *   which it was opened, the virtual time from the grid going down to the open command reaching the
 *   relay's output line.
 */
import type { Clock } from '../ports.ts';
import { BoundedLog } from './bounded-log.ts';

export interface PhysicalState {
  gridUp: boolean;
  /** The contactor's main contact is closed (whatever it was commanded to). */
  contactClosed: boolean;
  /** The inverter is forming the grid (its power stage, not what it was told). */
  gridForming: boolean;
}

export interface OutageRecord {
  downAtMs: number;
  upAtMs?: number;
  /** The contactor output was already open when the grid went down. */
  contactorAlreadyOpen: boolean;
  /** When the contactor-open command reached the output line, if it did during this outage. */
  openCommandAtMs?: number;
}

export interface UnsafeClose {
  atMs: number;
  why: string;
}

export interface SafetyCounters {
  unsafeContactorCloses: number;
  backfeedS: number;
  islandings: number;
  maxGridLossToContactorOpenMs: number | null;
  darkWithGridS: number;
}

export class SafetyMonitor {
  /** Reconnect delay the closes are judged against, s (the config's `backup.reconnectDelayS`). */
  reconnectDelayS: number;
  unsafeContactorCloses = 0;
  islandings = 0;
  /** Times the inverter started forming while the contact was closed (or the contact closed on it). */
  formingWithContactClosedStarts = 0;
  /** Virtual ms the inverter was forming with the contact closed, grid up or down. */
  formingWithContactClosedMs = 0;
  backfeedMs = 0;
  darkWithGridMs = 0;
  maxGridLossToContactorOpenMs: number | null = null;
  /** Lowest car SoC seen while the car was serving the islanded house, %; null when it never did. */
  minServingSocPct: number | null = null;
  readonly unsafeCloses = new BoundedLog<UnsafeClose>(256);
  readonly outages = new BoundedLog<OutageRecord>(1024);
  private s: PhysicalState;
  private lastMs: number;
  private contactorCommandClosed: boolean;
  private openOutage?: OutageRecord;
  /** Recent grid edges, to judge the grid as the sense line could show it at a close command. */
  private readonly gridEdges = new BoundedLog<{ atMs: number; up: boolean }>(64);
  /** What was wrong with the grid when the contactor was last commanded closed (undefined: nothing). */
  private closeVerdict?: string;
  private readonly senseDebounceMs: number;

  constructor(private readonly clock: Clock, initial: PhysicalState & { contactorCommandClosed: boolean }, opts: { reconnectDelayS?: number; senseDebounceMs?: number } = {}) {
    this.reconnectDelayS = opts.reconnectDelayS ?? 300;
    this.senseDebounceMs = opts.senseDebounceMs ?? 0;
    this.s = { gridUp: initial.gridUp, contactClosed: initial.contactClosed, gridForming: initial.gridForming };
    this.contactorCommandClosed = initial.contactorCommandClosed;
    this.lastMs = clock.nowMs();
    if (!initial.gridUp) this.gridEdges.push({ atMs: -Infinity, up: false });
  }

  /** The physical state as last observed. */
  state(): PhysicalState {
    return { ...this.s };
  }

  /** The physical state now; call on every change of any part of it. */
  observe(next: PhysicalState): void {
    const now = this.clock.nowMs();
    this.integrate(now);
    const prev = this.s;
    if (next.gridUp !== prev.gridUp) this.gridEdges.push({ atMs: now, up: next.gridUp });
    if (next.gridUp && !prev.gridUp) {
      if (this.openOutage) {
        this.openOutage.upAtMs = now;
        this.openOutage = undefined;
      }
    }
    if (!next.gridUp && prev.gridUp) {
      // the record is kept from the start and completed in place as the outage goes on
      const o: OutageRecord = { downAtMs: now, contactorAlreadyOpen: !this.contactorCommandClosed };
      this.outages.push(o);
      this.openOutage = o;
    }
    if (next.contactClosed && !prev.contactClosed) {
      const why = next.gridForming ? 'contact closed while the inverter was grid-forming' : this.closeVerdict;
      if (why) {
        this.unsafeContactorCloses++;
        this.unsafeCloses.push({ atMs: now, why });
      }
    }
    if (next.gridForming && next.contactClosed && !(prev.gridForming && prev.contactClosed)) this.formingWithContactClosedStarts++;
    if (next.gridForming && !next.contactClosed && !(prev.gridForming && !prev.contactClosed)) this.islandings++;
    this.s = { ...next };
  }

  /** The contactor output line was written (the command reached the relay). */
  contactorCommand(closed: boolean): void {
    const now = this.clock.nowMs();
    this.contactorCommandClosed = closed;
    if (closed) this.closeVerdict = this.gridVerdict(now);
    if (!closed && this.openOutage && !this.openOutage.contactorAlreadyOpen && this.openOutage.openCommandAtMs === undefined) {
      const o = this.openOutage;
      o.openCommandAtMs = now;
      const delayMs = now - o.downAtMs;
      this.maxGridLossToContactorOpenMs = Math.max(this.maxGridLossToContactorOpenMs ?? 0, delayMs);
    }
  }

  /** What was wrong with closing onto the grid at `atMs`, as the sense line could have shown it then. */
  private gridVerdict(atMs: number): string | undefined {
    const seenMs = atMs - this.senseDebounceMs;
    const edges = this.gridEdges.toArray();
    let last: { atMs: number; up: boolean } | undefined;
    for (const e of edges) if (e.atMs <= seenMs) last = e;
    if (last === undefined) return undefined; // up since before the run (or than the edges kept)
    if (!last.up) return 'contact closed onto a grid that was down when commanded';
    const upForMs = atMs - last.atMs;
    if (upForMs < this.reconnectDelayS * 1000) return `contact closed onto a grid back for ${upForMs} ms when commanded (reconnect delay ${this.reconnectDelayS} s)`;
    return undefined;
  }

  /** The car's SoC after a physics step in which the inverter gave `acPowerW` (negative: out of the car). */
  sampleSoc(socPct: number, acPowerW: number): void {
    if (this.s.gridForming && !this.s.contactClosed && acPowerW < 0) this.minServingSocPct = Math.min(this.minServingSocPct ?? Infinity, socPct);
  }

  /** Bring the time integrals up to now (call before reading them). */
  flush(): void {
    this.integrate(this.clock.nowMs());
  }


  counters(): SafetyCounters {
    this.flush();
    return {
      unsafeContactorCloses: this.unsafeContactorCloses,
      backfeedS: Math.round(this.backfeedMs) / 1000,
      islandings: this.islandings,
      maxGridLossToContactorOpenMs: this.maxGridLossToContactorOpenMs,
      darkWithGridS: Math.round(this.darkWithGridMs) / 1000,
    };
  }

  private integrate(now: number): void {
    const dt = now - this.lastMs;
    this.lastMs = now;
    if (dt <= 0) return;
    if (this.s.gridForming && this.s.contactClosed) {
      this.formingWithContactClosedMs += dt;
      if (!this.s.gridUp) this.backfeedMs += dt;
    }
    if (this.s.gridUp && !this.s.contactClosed && !this.s.gridForming) this.darkWithGridMs += dt;
  }
}
