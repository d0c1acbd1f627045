/**
 * House backup: the islanding sequence (invariant 5), the backup floor (invariant 2) and the planner
 * that sheds load tiers to last `backup.targetHours`. Pure.
 */
import type { ControlSettings } from '../config/types.ts';
import type { CoreEvent, IslandPhase, Memory, Snapshot } from './types.ts';

export interface BackupInputs {
  nowMs: number;
  /** Sustained grid loss by the grid-loss policy (grid-loss.ts): the island sequence may start. */
  gridLost: boolean;
  /** The grid is seen present by a trusted source now (grid-loss.ts); the reconnect delay counts on it. */
  gridPresent: boolean;
  /**
   * The house may be islanded at all: backup enabled, a contactor wired, and an inverter that reports it
   * can island. Otherwise a grid loss is zero power on the grid (grid-loss policy).
   */
  mayIsland: boolean;
  /** Inputs are usable (fresh, no driver error). Unusable → stop serving at once. */
  healthy: boolean;
  /** The plan is a fault: the island is not served (no grid-forming), the phase knowledge is kept. */
  faulted: boolean;
  /** How long the contactor feedback has disagreed with its command, s (0 = agrees or no feedback line). */
  contactorMismatchS: number;
  socPct?: number;
  capacityWh: number;
  efficiency: number;
  /** Load the house draws now, W. */
  loadW?: number;
}

export interface BackupDecision {
  island: Memory['island'];
  loadTiersOn: boolean[];
  tierLoadW: (number | undefined)[];
  lastShedChangeMs?: number;
  pendingShed?: Memory['pendingShed'];
  houseLoadAvgW?: number;
  gridForming: boolean;
  /**
   * Where this phase wants the contactor: closed on the grid and when rejoining. The caller passes a
   * close of an open contactor through the interlock (interlock.ts), whatever the phase says.
   */
  contactorClosed: boolean;
  /** Contactor did not confirm in time: the caller goes to fault. */
  contactorFault?: string;
  hoursLeft?: number;
  hoursWanted?: number;
  events: CoreEvent[];
  reasons: string[];
}

/** Smoothing time constant for the house load estimate, s. */
const LOAD_TAU_S = 300;
/** Restore a shed tier only when the margin exceeds the need by this factor (hysteresis). */
const RESTORE_MARGIN = 1.15;

export function smoothLoad(prevAvg: number | undefined, loadW: number | undefined, dtS: number): number | undefined {
  if (loadW === undefined) return prevAvg;
  if (prevAvg === undefined) return loadW;
  return prevAvg + (loadW - prevAvg) * Math.min(1, Math.max(0, dtS) / LOAD_TAU_S);
}

export function hoursLeft(socPct: number, backupFloorPct: number, capacityWh: number, efficiency: number, loadW: number): number {
  const aboveWh = Math.max(0, ((socPct - backupFloorPct) / 100) * capacityWh);
  if (loadW <= 1) return Infinity;
  return (aboveWh * efficiency) / loadW;
}

function phaseChange(island: Memory['island'], phase: IslandPhase, nowMs: number): Memory['island'] {
  return { ...island, phase, sinceMs: nowMs };
}

/** Decide the island phase, contactor, grid-forming and load tiers for this call. */
export function backupStep(mem: Memory, s: Snapshot, c: ControlSettings, inp: BackupInputs): BackupDecision {
  const now = inp.nowMs;
  const events: CoreEvent[] = [];
  const reasons: string[] = [];
  let island = { ...mem.island };
  let tiers = mem.loadTiersOn.length === s.loadTierCount ? [...mem.loadTiersOn] : Array.from({ length: s.loadTierCount }, () => true);
  let tierLoadW = mem.tierLoadW.length === s.loadTierCount ? [...mem.tierLoadW] : Array.from({ length: s.loadTierCount }, () => undefined as number | undefined);
  let lastShedChangeMs = mem.lastShedChangeMs;
  let pendingShed = mem.pendingShed;
  let contactorFault: string | undefined;
  const dtS = mem.lastTickMs === undefined ? 0 : (now - mem.lastTickMs) / 1000;
  let houseLoadAvgW = smoothLoad(mem.houseLoadAvgW, inp.loadW, dtS);

  // the grid must be seen continuously present for the reconnect delay before rejoining
  island.gridStableSinceMs = inp.gridPresent ? island.gridStableSinceMs ?? now : undefined;
  const stableS = island.gridStableSinceMs === undefined ? 0 : (now - island.gridStableSinceMs) / 1000;
  const gridBack = island.gridStableSinceMs !== undefined && stableS >= c.backup.reconnectDelayS;

  if (pendingShed && inp.loadW !== undefined) {
    tierLoadW[pendingShed.tier] = Math.max(0, pendingShed.loadBeforeW - inp.loadW);
    houseLoadAvgW = inp.loadW;
    pendingShed = undefined;
  }

  const feedback = s.contactor.feedbackClosed;
  const phaseAgeS = (now - island.sinceMs) / 1000;

  switch (island.phase) {
    case 'on-grid': {
      if (inp.gridLost && inp.mayIsland) {
        island = { ...phaseChange(island, 'opening', now), outageStartMs: now };
        tiers = tiers.map(() => false);
        events.push({ kind: 'grid', severity: 'alarm', message: 'grid lost: setpoint to zero, opening the grid contactor' });
      }
      break;
    }
    case 'opening': {
      if (feedback === false) {
        island = phaseChange(island, 'islanded', now);
        lastShedChangeMs = now;
        events.push({
          kind: 'backup', severity: 'warning',
          message: inp.faulted || !inp.healthy ? 'grid contactor confirmed open: the house waits (no grid-forming while inputs are not usable)' : 'grid contactor confirmed open: grid-forming, serving the house from the car',
        });
      } else if (gridBack && feedback === undefined) {
        // no feedback line, so never confirmed open, and the grid is back: rejoin through the interlock. With a
        // feedback line still showing closed the contactor gets its full time to open: one that never does is
        // welded, and that is a fault even when the grid came back meanwhile (the next outage could not island)
        island = phaseChange(island, 'rejoining', now);
        events.push({ kind: 'grid', severity: 'info', message: `grid stable for ${c.backup.reconnectDelayS} s: rejoining` });
      } else if (phaseAgeS > c.backup.contactorTimeoutS) {
        contactorFault = feedback === undefined ? 'no contactor feedback line: cannot confirm the house is off the grid' : `grid contactor still closed ${c.backup.contactorTimeoutS} s after the open command`;
      }
      break;
    }
    case 'islanded':
    case 'dropped': {
      if (gridBack) {
        island = phaseChange(island, 'rejoining', now);
        events.push({ kind: 'grid', severity: 'info', message: `grid stable for ${c.backup.reconnectDelayS} s: leaving grid-forming to rejoin` });
        break;
      }
      // islanded is entered only with the feedback showing open; dropped may have no feedback line
      if (island.phase === 'islanded' ? feedback !== false : feedback === true) contactorFault = `grid contactor feedback shows closed while ${island.phase === 'islanded' ? 'islanded' : 'off the grid'}`;
      break;
    }
    case 'rejoining': {
      if (inp.gridLost && !inp.gridPresent) {
        // an inverter that cannot island: the house stays off the grid, dark, and waits for it
        island = phaseChange(island, inp.mayIsland ? 'opening' : 'dropped', now);
        events.push({ kind: 'grid', severity: 'warning', message: 'grid lost again while rejoining' });
        break;
      }
      // without a feedback line the command is all there is to go by
      if ((feedback ?? s.contactor.commandedClosed) && s.contactor.commandedClosed) {
        island = { phase: 'on-grid', sinceMs: now, rejoinedAtMs: now, gridStableSinceMs: island.gridStableSinceMs };
        tiers = tiers.map(() => true);
        events.push({ kind: 'grid', severity: 'info', message: 'back on the grid' });
      } else if (s.contactor.commandedClosed && inp.contactorMismatchS > c.backup.contactorTimeoutS) {
        contactorFault = 'grid contactor did not confirm closed when rejoining';
      }
      break;
    }
  }

  // drop the house rather than drain the car below the backup floor before the next look (invariant 2)
  if (island.phase === 'islanded') {
    const loadW = inp.loadW ?? houseLoadAvgW ?? 0;
    const marginPct = inp.socPct === undefined ? 0 : ((loadW * c.control.tickS) / 3600 / inp.efficiency / inp.capacityWh) * 100;
    if (inp.socPct === undefined || inp.socPct <= c.vehicle.backupFloorPct + marginPct) {
      island = phaseChange(island, 'dropped', now);
      tiers = tiers.map(() => false);
      events.push({ kind: 'backup', severity: 'alarm', message: inp.socPct === undefined ? 'car SoC unknown: the house cannot be served above the backup floor, house dropped' : `car at the backup floor (${c.vehicle.backupFloorPct} %): house dropped` });
    }
  }

  let hLeft: number | undefined;
  let hWanted: number | undefined;
  if (island.phase === 'islanded' && inp.socPct !== undefined && island.outageStartMs !== undefined) {
    const loadW = houseLoadAvgW ?? inp.loadW ?? 0;
    hLeft = hoursLeft(inp.socPct, c.vehicle.backupFloorPct, inp.capacityWh, inp.efficiency, loadW);
    hWanted = Math.max(0, c.backup.targetHours - (now - island.outageStartMs) / 3_600_000);
    const dwellOk = lastShedChangeMs === undefined || (now - lastShedChangeMs) / 1000 >= c.backup.shedDwellS;
    const staggerOk = lastShedChangeMs === undefined || (now - lastShedChangeMs) / 1000 >= c.backup.loadRestoreStaggerS;
    const onIdx = tiers.findIndex((on) => on);
    if (hLeft < hWanted && onIdx >= 0 && dwellOk) {
      // shed the least important tier still on (tier 1 first)
      tiers[onIdx] = false;
      pendingShed = { tier: onIdx, loadBeforeW: inp.loadW ?? loadW };
      lastShedChangeMs = now;
      events.push({ kind: 'backup', severity: 'warning', message: `shedding load tier ${onIdx + 1}: ${hLeft.toFixed(1)} h left, ${hWanted.toFixed(1)} h wanted` });
    } else if (staggerOk) {
      // restore the most important tier that is off, when the margin allows it (unknown load: try and learn)
      let offIdx = -1;
      for (let i = tiers.length - 1; i >= 0; i--) if (!tiers[i]) { offIdx = i; break; }
      if (offIdx >= 0) {
        const extraW = tierLoadW[offIdx];
        const withTier = extraW === undefined ? hLeft : hoursLeft(inp.socPct, c.vehicle.backupFloorPct, inp.capacityWh, inp.efficiency, loadW + extraW);
        const restoreOk = extraW === undefined ? hLeft >= hWanted * RESTORE_MARGIN : withTier >= hWanted * RESTORE_MARGIN && dwellOk;
        if (restoreOk) {
          tiers[offIdx] = true;
          lastShedChangeMs = now;
          events.push({ kind: 'backup', severity: 'info', message: `load tier ${offIdx + 1} back on` });
        }
      }
    }
  }

  const islandedNow = island.phase === 'islanded';
  const gridForming = islandedNow && inp.healthy && !inp.faulted && feedback === false;
  if (islandedNow && !inp.healthy) reasons.push('stale_data');
  if (island.phase === 'dropped') reasons.push(inp.mayIsland ? 'backup_floor' : 'grid_down');
  // rejoin: grid-forming is off from the first rejoining plan; the interlock (interlock.ts) lets the
  // contactor close only on a reading taken after that, which says the inverter is not forming
  const contactorClosed = island.phase === 'on-grid' || island.phase === 'rejoining';
  return {
    island, loadTiersOn: tiers, tierLoadW, lastShedChangeMs, pendingShed, houseLoadAvgW, gridForming, contactorClosed,
    contactorFault, hoursLeft: hLeft, hoursWanted: hWanted, events, reasons,
  };
}
