/**
 * Charging modes the homeowner chooses (`charge.mode`) and solar surplus charging. Pure: timers run on the
 * monotonic `nowMs` handed in; nothing here reads a clock or a port.
 *
 * Modes (docs/solar.md):
 * - `off`     no charging of its own (dispatches and the backup reserve still charge);
 * - `now`     to the target at full power, from the grid if need be;
 * - `target`  to the target just in time for the departure, from the grid (`vehicle.chargeStrategy`); the
 *             default, what the wallbox did before it knew the site. It still soaks up PV the export limit
 *             would otherwise curtail;
 * - `minpv`   at least `charge.minPowerW` until the target, all the surplus on top (evcc "Min+PV");
 * - `pv`      surplus only; the grid just in time when the departure target needs it (evcc "PV").
 *
 * Surplus charging follows evcc's loadpoint (core/loadpoint_pv.go): it switches on after the surplus has
 * covered the start threshold for `enableDelayS`, off after the site would have imported at the minimum
 * power for `disableDelayS`, never twice within `guardS`; while on it tracks the surplus, never below the
 * minimum a charger can run at (IEC 61851-1: 6 A per phase, 1.4 kW a phase on AC).
 */
import type { ChargeConfig, ChargeMode, ControlSettings } from '../config/types.ts';
import { meteredGridW, meteredHouseLoadW, meteredPvW } from './limits.ts';
import type { CoreEvent, Memory, Snapshot } from './types.ts';

/** Surplus charging's state between calls (`Memory.surplus`). */
export type SurplusMemory = NonNullable<Memory['surplus']>;

/** What the modes and the surplus want this tick. */
export interface OwnCharge {
  /** Charge power wanted, W (>= 0, AC); the caller bounds it by every limit. */
  setpointW: number;
  /** Why (a plan reason), when `setpointW > 0`. */
  reason?: string;
  /** The departure latch (decide.ts `chargingNeed`), after the mode had its say. */
  latched: boolean;
  memory: SurplusMemory;
  events: CoreEvent[];
}

/** The grid's charging need as decide.ts computes it (`chargingNeed`). */
export type Need = { reason?: string; latched: boolean };
/** The same under another `vehicle.chargeStrategy`, and with the departure latch as given (default: as in memory). */
export type NeedFn = (strategy: 'departure' | 'immediate', latched?: boolean) => Need;

/**
 * decide.ts `chargingNeed`'s reasons that depend on the strategy (the ones a mode may drop or recompute).
 * Any other reason stands as decide.ts gave it: the backup reserve (the setting's, or a quick action's) and a boost.
 */
const STRATEGY_REASONS = /^(target|departure|charging \(SoC unknown)/;

/**
 * How far under the grid export limit surplus charging holds the export in `target` mode, W: an export
 * limiter curtails PV at the limit, so the charger takes power until the export sits just below it.
 */
export const EXPORT_LIMIT_HEADROOM_W = 100;

/** Built-in values (config/default.json `charge`); used for a settings object without a `charge` section. */
export const CHARGE_DEFAULTS: ChargeConfig = {
  mode: 'target', minPowerW: 1380, startSurplusW: null, stopImportW: 0, enableDelayS: 60, disableDelayS: 180, guardS: 300,
  residualPowerW: 100, surplusMaxSocPct: 100,
};

export function chargeConfig(c: ControlSettings): ChargeConfig {
  return { ...CHARGE_DEFAULTS, ...(c.charge ?? {}) };
}

/**
 * Power the car could take from the site's surplus now, W (AC, before the residual): what the site exports
 * with the charger's own power taken out. From a grid meter: `charger − grid` (grid positive = import);
 * without one, from a PV reading and a house reading: `PV − house`. Undefined when neither is usable now
 * (then there is no surplus to follow, never "all of it").
 */
export function surplusW(s: Snapshot, c: ControlSettings, nowMs: number): number | undefined {
  const grid = meteredGridW(s, c, nowMs);
  const car = s.inverter.powerW;
  if (grid !== undefined && car !== undefined && Number.isFinite(car)) return car - grid;
  const pv = meteredPvW(s, c, nowMs);
  // the house figure must be the house's own: a direct house reading (not derived from the grid meter)
  const house = s.houseLoadW !== undefined ? meteredHouseLoadW(s, c, nowMs) : undefined;
  if (pv !== undefined && house !== undefined) return pv - house;
  return undefined;
}

const OFF: SurplusMemory = { on: false };

/** Surplus charging switched off now (a dispatch, a fault, unplugged): the guard counts from here. */
export function surplusOff(prev: SurplusMemory | undefined, nowMs: number): SurplusMemory {
  const mode = prev?.mode !== undefined ? { mode: prev.mode } : {};
  if (!prev?.on) return prev?.switchedAtMs !== undefined ? { on: false, switchedAtMs: prev.switchedAtMs, ...mode } : { ...OFF, ...mode };
  return { on: false, switchedAtMs: nowMs, ...mode };
}

/**
 * The car's own charging this tick: the grid need as the mode allows it, then the surplus. The grid need
 * (departure just in time, the target at once, the backup reserve) wins at full power; the surplus adds
 * what the sun gives where the grid is not wanted.
 */
export function ownCharge(
  s: Snapshot, c: ControlSettings, prev: SurplusMemory | undefined, nowMs: number,
  o: { socPct?: number; targetSocPct: number; maxChargeW: number; need: Need; needWith: NeedFn },
): OwnCharge {
  const cfg = chargeConfig(c);
  const mode: ChargeMode = cfg.mode;
  // the grid need under the strategy the mode implies; a reason that does not depend on it (a boost, the reserve) stands
  const strategy = mode === 'now' ? 'immediate' : mode === 'target' ? c.vehicle.chargeStrategy : 'departure';
  // a change of mode drops the latch: a charge the old mode started ("now") does not carry into one that would not start it ("pv")
  const modeChanged = prev?.mode !== undefined && prev.mode !== mode;
  const stands = o.need.reason !== undefined && !STRATEGY_REASONS.test(o.need.reason);
  const need = stands ? o.need : modeChanged ? o.needWith(strategy, false) : strategy === c.vehicle.chargeStrategy ? o.need : o.needWith(strategy);
  const gridAllowed = need.reason !== undefined && gridNeedAllowed(mode, need.reason);
  // a need the mode drops does not latch: the departure latch is for the just-in-time charge only
  const latched = need.reason === undefined || gridAllowed ? need.latched : false;
  const sun = surplusStep(s, c, cfg, prev, nowMs, o);
  const memory = { ...sun.memory, mode };
  if (gridAllowed && o.maxChargeW > 0) return { setpointW: o.maxChargeW, reason: need.reason, latched, memory, events: sun.events };
  return { setpointW: sun.setpointW, reason: sun.setpointW > 0 ? sun.reason : undefined, latched, memory, events: sun.events };
}

/**
 * Which of decide.ts's grid charging reasons each mode keeps. Only the car's own reasons are dropped (the
 * target at once, the just-in-time departure, charging with the SoC unknown); the backup reserve and the
 * homeowner's quick actions (a boost) always charge.
 */
function gridNeedAllowed(mode: ChargeMode, reason: string): boolean {
  const socUnknown = reason.startsWith('charging (SoC unknown');
  if (mode === 'off') return reason !== 'target' && reason !== 'departure' && !socUnknown;
  // pv/minpv: the sun fills the car; the grid only just in time for the departure target
  if (mode === 'pv' || mode === 'minpv') return reason !== 'target' && !socUnknown;
  return true;
}

interface SurplusStep {
  setpointW: number;
  reason: string;
  memory: SurplusMemory;
  events: CoreEvent[];
}

/** The surplus state machine (start/stop thresholds, delays, guard) for one tick. */
export function surplusStep(
  s: Snapshot, c: ControlSettings, cfg: ChargeConfig, prev: SurplusMemory | undefined, nowMs: number,
  o: { socPct?: number; targetSocPct: number; maxChargeW: number },
): SurplusStep {
  const events: CoreEvent[] = [];
  const was = prev ?? OFF;
  const minW = cfg.minPowerW;
  const stop = (why: string): SurplusStep => {
    if (was.on) events.push({ kind: 'surplus', severity: 'info', message: `surplus charging off: ${why}` });
    return { setpointW: 0, reason: 'surplus', memory: surplusOff(was, nowMs), events };
  };
  const mode = cfg.mode;
  if (mode === 'off' || mode === 'now') return stop(`mode ${mode}`);
  if (!s.vehicle.connected) return { setpointW: 0, reason: 'surplus', memory: OFF, events };
  const limitPct = Math.min(cfg.surplusMaxSocPct, s.vehicle.maxSocPct ?? 100);
  if (o.socPct !== undefined && o.socPct >= limitPct) return stop(`SoC ${round(o.socPct)} % at the surplus limit ${limitPct} %`);
  if (!(o.maxChargeW >= minW)) return stop(`the charge limit ${Math.floor(o.maxChargeW)} W is below the minimum ${minW} W`);

  const raw = surplusW(s, c, nowMs);
  // minpv below the target: the minimum at all times, the surplus on top; no timers (it never switches off)
  if (mode === 'minpv' && (o.socPct === undefined || o.socPct < o.targetSocPct)) {
    const avail = raw === undefined ? 0 : raw - cfg.residualPowerW;
    return { setpointW: Math.max(minW, avail), reason: 'minpv', memory: { on: true, switchedAtMs: was.on ? was.switchedAtMs : nowMs }, events };
  }
  if (raw === undefined) return stop('no usable grid or PV reading');

  // what the car should take, the start and the stop conditions, by mode
  let availW: number;
  let startOk: boolean;
  let stopOk: boolean;
  if (mode === 'target') {
    const limit = c.site.gridExportLimitW;
    if (limit === null) return stop('no grid export limit to keep PV under');
    // the export is held just under the limit; PV curtailed at the limit is invisible, so being at the
    // limit with PV producing is the start condition; the stop is the site importing at the minimum
    const holdExportW = Math.max(0, limit - EXPORT_LIMIT_HEADROOM_W);
    const car = s.inverter.powerW ?? 0;
    const exportW = raw - car;
    const pv = meteredPvW(s, c, nowMs);
    availW = raw - holdExportW;
    startOk = exportW >= holdExportW && (pv !== undefined ? pv > 0 : exportW > 0);
    stopOk = minW - raw >= cfg.stopImportW;
  } else {
    availW = raw - cfg.residualPowerW;
    startOk = availW >= (cfg.startSurplusW ?? minW);
    stopOk = minW - availW >= cfg.stopImportW;
  }

  const guardOk = was.switchedAtMs === undefined || nowMs - was.switchedAtMs >= cfg.guardS * 1000;
  if (!was.on) {
    if (!startOk) return { setpointW: 0, reason: 'surplus', memory: was.switchedAtMs !== undefined ? { on: false, switchedAtMs: was.switchedAtMs } : OFF, events };
    const since = was.pendingSinceMs ?? nowMs;
    if (nowMs - since >= cfg.enableDelayS * 1000 && guardOk) {
      events.push({ kind: 'surplus', severity: 'info', message: `surplus charging on: ${Math.round(availW)} W available for ${Math.round((nowMs - since) / 1000)} s` });
      return { setpointW: Math.max(minW, availW), reason: 'surplus', memory: { on: true, switchedAtMs: nowMs }, events };
    }
    return { setpointW: 0, reason: 'surplus', memory: { on: false, pendingSinceMs: since, switchedAtMs: was.switchedAtMs }, events };
  }
  if (!stopOk || availW >= minW) return { setpointW: Math.max(minW, availW), reason: 'surplus', memory: { on: true, switchedAtMs: was.switchedAtMs }, events };
  const since = was.pendingSinceMs ?? nowMs;
  if (nowMs - since >= cfg.disableDelayS * 1000 && guardOk) {
    events.push({ kind: 'surplus', severity: 'info', message: `surplus charging off: the site would import ${Math.round(minW - availW)} W at the minimum ${minW} W for ${Math.round((nowMs - since) / 1000)} s` });
    return { setpointW: 0, reason: 'surplus', memory: { on: false, switchedAtMs: nowMs }, events };
  }
  // waiting out the stop delay or the guard: the minimum, never less (a charger cannot run below it)
  return { setpointW: minW, reason: 'surplus', memory: { on: true, pendingSinceMs: since, switchedAtMs: was.switchedAtMs }, events };
}

function round(x: number): number {
  return Math.round(x * 10) / 10;
}
