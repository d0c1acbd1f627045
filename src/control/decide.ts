/**
 * The control core: one pure function from a snapshot of every input to a plan.
 * No I/O, no clock, no randomness: `nowMs` comes in, the next memory goes out inside the plan.
 * Two clocks (docs/architecture.md, "Two clocks"): `nowMs` is monotonic — every age, duration, debounce and
 * timer runs on it; the calendar (`calendarMs(s, nowMs)`, the snapshot's wall clock) decides departure times
 * and dispatch windows. A step of the wall clock is an event, and a running dispatch keeps its length.
 * Priority, highest first: fault → backup (grid lost) → stale inputs (zero power) → dispatch → charging need → idle.
 */
import type { ControlSettings } from '../config/types.ts';
import { backupStep } from './backup.ts';
import { accountEnergy, advance, boundedPowerW, currentDispatch, intake, prune, updateCurtailment } from './dispatch.ts';
import {
  ASSUMED_CAPACITY_WH, capacityWh, carOffersDischarge, departure, departureCapacityWh, departureChargeW, dischargeRefusal, efficiency, floors,
  houseLoadForExportW, powerLimits,
} from './limits.ts';
import { issuesKey, issuesMessage, sanitizeSnapshot } from './sanitize.ts';
import { assessGrid, inverterFresh, type GridView } from './grid-loss.ts';
import { contactorMayBeOpen, interlock } from './interlock.ts';
import { CHARGE_DEFAULTS, ownCharge, surplusOff } from './surplus.ts';
import { pvSurplusWh } from './pv-forecast.ts';
import { calendarMs } from './time.ts';
import { floorsWithOverrides, overrideChargeReason, overrideEvents, overridesInForce, overridesKey } from './overrides.ts';
import type { CoreEvent, DispatchRecord, DispatchResponse, Memory, Mode, Plan, ReasonCode, RestoredState, Snapshot } from './types.ts';

/** How far above the departure floor the SoC must be, %, before a just-in-time charge is let go (it starts within 0.5 %). */
export const DEPARTURE_LATCH_RELEASE_PCT = 2;
/** Inverter port faults that mean "this command cannot be carried out" (hal/inverter: unrepresentable, not_following). */
const INVERTER_REFUSALS = /\b(unrepresentable|not_following):/;

/**
 * Memory at a start. It starts reconciling (`startup`): nothing is assumed about the contactor, the
 * inverter or the grid until decide() has seen them (docs/architecture.md, start-up reconciliation).
 * `restored` is what the store kept from the previous run; it is reported, and its outage start kept,
 * but the grid's stable time is not carried over (nobody watched the grid while the process was down).
 */
export function initialMemory(nowMs: number, restored?: RestoredState): Memory {
  const island = usableIsland(restored?.island);
  const savedAtMs = restored?.savedAtMs;
  return {
    mode: 'idle',
    modeSinceMs: nowMs,
    island: island ? { ...island } : { phase: 'on-grid', sinceMs: nowMs },
    startup: {
      sinceMs: nowMs, restored: island ? { ...island } : undefined, savedAtMs: typeof savedAtMs === 'number' && Number.isFinite(savedAtMs) ? savedAtMs : undefined,
      unusable: restored?.island !== undefined && island === undefined ? true : undefined,
    },
    loadTiersOn: [],
    tierLoadW: [],
    dispatches: [],
    lastSetpointW: 0,
    departureAtRisk: false,
    chargeLatched: false,
  };
}

interface Health {
  /** Problems that zero the power at once and become a fault if they last `faultAfterS`. */
  soft: string[];
  /** Problems that are a fault at once. */
  hard: string[];
}

function health(s: Snapshot, c: ControlSettings, m: Memory, nowMs: number): Health {
  const soft: string[] = [];
  const hard: string[] = [];
  if (s.estopPressed) hard.push('emergency stop pressed');
  if (s.runtimeFault) hard.push(s.runtimeFault);
  if (s.inverter.fault) soft.push(`inverter: ${s.inverter.fault}`);
  else if (s.inverter.atMs === undefined) soft.push('inverter: no reading yet');
  else if ((nowMs - s.inverter.atMs) / 1000 > c.control.inverterMaxAgeS) soft.push(`inverter: reading ${Math.round((nowMs - s.inverter.atMs) / 1000)} s old`);
  if (s.vehicle.connected) {
    if (s.vehicle.fault) soft.push(`vehicle link: ${s.vehicle.fault}`);
    if (s.vehicle.socAtMs !== undefined && (nowMs - s.vehicle.socAtMs) / 1000 > c.control.socMaxAgeS)
      soft.push(`vehicle: SoC ${Math.round((nowMs - s.vehicle.socAtMs) / 1000)} s old`);
  }
  if (s.grid.fault) soft.push(`grid sense: ${s.grid.fault}`);
  const mismatchS = m.contactorMismatchSinceMs === undefined ? 0 : (nowMs - m.contactorMismatchSinceMs) / 1000;
  if (mismatchS > c.backup.contactorTimeoutS && m.island.phase === 'on-grid')
    hard.push(`grid contactor feedback shows ${s.contactor.feedbackClosed ? 'closed' : 'open'} while commanded ${s.contactor.commandedClosed ? 'closed' : 'open'}`);
  return { soft, hard };
}

const PHASES: ReadonlySet<string> = new Set(['on-grid', 'opening', 'islanded', 'dropped', 'rejoining']);

/** A persisted island state as the store gave it, or undefined when it is not one (unknown phase, a time that is not a number). */
function usableIsland(i: Memory['island'] | undefined): Memory['island'] | undefined {
  if (i === undefined || i === null || typeof i !== 'object' || !PHASES.has(i.phase)) return undefined;
  const time = (t: unknown) => t === undefined || (typeof t === 'number' && Number.isFinite(t));
  if (!(typeof i.sinceMs === 'number' && Number.isFinite(i.sinceMs)) || !time(i.outageStartMs) || !time(i.gridStableSinceMs) || !time(i.rejoinedAtMs)) return undefined;
  return i;
}

const iso = (ms: number) => new Date(ms).toISOString();

/** On the grid, in `fault`: where the contactor goes (an open one closes only through the interlock). */
function faultContactorClosed(s: Snapshot, c: ControlSettings, grid: GridView): boolean {
  // with the grid present the house stays on it: a charger fault must not black out the home
  if (c.control.faultOpensContactor === 'always' || !s.contactor.installed) return !s.contactor.installed;
  return !grid.lost && s.grid.sensePresent !== false;
}

/** The house may be islanded: backup on, a contactor wired, an inverter that says it can island (unknown = no). */
function mayIsland(s: Snapshot, c: ControlSettings): boolean {
  return c.backup.enabled && s.contactor.installed && s.inverter.islandCapable === true;
}

/**
 * Start-up reconciliation: the island phase from what the contactor and the grid show now, the persisted
 * state only for its outage start. Contactor closed + grid present → on-grid; closed + grid lost →
 * opening (or on-grid at zero power when the house cannot island); open + grid present → rejoining (the
 * interlock decides when it closes); open + grid absent or unknown → opening, i.e. islanded through the
 * normal forming rules (or dropped: dark, waiting for the grid, when it cannot island).
 */
function reconcileIsland(s: Snapshot, c: ControlSettings, grid: GridView, restored: Memory['island'] | undefined, nowMs: number): Memory['island'] {
  if (!s.contactor.installed) return { phase: 'on-grid', sinceMs: nowMs };
  const closedNow = s.contactor.feedbackClosed ?? s.contactor.commandedClosed;
  const outageStartMs = restored && restored.phase !== 'on-grid' ? restored.outageStartMs : undefined;
  const canIsland = mayIsland(s, c);
  if (closedNow) {
    if (grid.lost && canIsland) return { phase: 'opening', sinceMs: nowMs, outageStartMs: outageStartMs ?? nowMs };
    return { phase: 'on-grid', sinceMs: nowMs };
  }
  if (grid.present) return { phase: 'rejoining', sinceMs: nowMs, outageStartMs: outageStartMs ?? nowMs };
  return { phase: canIsland ? 'opening' : 'dropped', sinceMs: nowMs, outageStartMs: outageStartMs ?? nowMs };
}

function startupEvent(s: Snapshot, grid: GridView, st: NonNullable<Memory['startup']>, island: Memory['island'], nowMs: number): CoreEvent {
  const k = s.contactor;
  const contactor = !k.installed
    ? 'no grid contactor'
    : `contactor ${(k.feedbackClosed ?? k.commandedClosed) ? 'closed' : 'open'} (${k.feedbackClosed === undefined ? 'by its command, no feedback line' : 'by its feedback'})`;
  const gridWord = grid.lost ? 'absent' : grid.present ? 'present' : 'unknown';
  const inv = `inverter ${s.inverter.gridForming === true ? 'grid-forming' : s.inverter.gridForming === false ? 'not grid-forming' : 'forming state unknown'}${s.inverter.islandCapable === true ? '' : ', cannot island'}`;
  const r = st.restored;
  const saved = st.savedAtMs === undefined ? '' : ` saved ${Math.max(0, Math.round((nowMs - st.savedAtMs) / 1000))} s before`;
  const persisted = r
    ? `persisted: ${r.phase} since ${iso(r.sinceMs)}${r.outageStartMs !== undefined ? `, outage since ${iso(r.outageStartMs)}` : ''}${saved}`
    : st.unusable ? 'persisted: an island state that is not one (ignored)' : 'persisted: nothing';
  const disagrees = (r?.phase ?? 'on-grid') !== island.phase || (k.installed && !(k.feedbackClosed ?? k.commandedClosed));
  return {
    kind: 'startup',
    severity: disagrees ? 'warning' : 'info',
    message: `start-up: found ${contactor}, grid ${gridWord} (${grid.source === 'none' ? 'no source' : grid.source === 'sense' ? 'sense line' : 'inverter'}), ${inv}; ${persisted}; resuming in ${island.phase}`,
  };
}

export function decide(input: Snapshot, c: ControlSettings, m: Memory, nowMs: number): Plan {
  const events: CoreEvent[] = [];
  const reasons: string[] = [];
  const responses: DispatchResponse[] = [];
  const finished: DispatchRecord[] = [];

  // non-finite and out-of-range numbers become "missing", once, here: nothing below sees a NaN
  const sanitized = sanitizeSnapshot(input);
  const s = sanitized.snapshot;
  // the homeowner's quick actions in force (src/control/overrides.ts), ended on the calendar clock: they
  // only tighten the homeowner's limits (a V2G pause, a higher floor) or add a reason to charge
  const ov = overridesInForce(c, s, nowMs);
  c = ov.settings;
  const ovKey = overridesKey(ov.active);
  if (ovKey !== m.overridesKey) events.push(...overrideEvents(m.overridesKey, ov.active, calendarMs(s, nowMs), c.timezone ?? 'UTC'));
  const inputIssues = issuesKey(sanitized.issues);
  if (inputIssues !== undefined && inputIssues !== m.inputIssues) events.push({ kind: 'input', severity: 'warning', message: issuesMessage(sanitized.issues) });
  // storage that cannot write: nothing may run that cannot be settled (invariant 6)
  const storageDown = s.storage?.writable === false;
  if (storageDown && !m.storageDown)
    events.push({ kind: 'storage', severity: 'alarm', message: `storage cannot write (${s.storage?.fault ?? 'cause unknown'}): new dispatches are refused (storage) and a running one is held at zero until it writes again` });
  if (!storageDown && m.storageDown) events.push({ kind: 'storage', severity: 'info', message: 'storage writes again: dispatches are taken again' });

  // --- the calendar, and a step of it -------------------------------------------------------
  const wallMs = calendarMs(s, nowMs);
  const wallOffsetMs = wallMs - nowMs;
  const clockStepMs = m.wallOffsetMs === undefined ? 0 : wallOffsetMs - m.wallOffsetMs;
  const clockStepped = Math.abs(clockStepMs) >= CLOCK_STEP_MIN_MS;
  if (clockStepped)
    events.push({ kind: 'clock', severity: 'warning', message: `the wall clock stepped ${clockStepMs > 0 ? 'forward' : 'back'} by ${formatStep(clockStepMs)}: ages, durations and a running dispatch's length follow the monotonic clock; departure and dispatch times follow the new calendar` });

  // --- inputs and their health -------------------------------------------------------------
  const h = health(s, c, m, nowMs);
  const soc = s.vehicle.connected ? s.vehicle.socPct : undefined;
  const cap = capacityWh(s, c) ?? ASSUMED_CAPACITY_WH;
  const eff = efficiency(s);
  // grid-loss policy (grid-loss.ts): which inputs mean the grid is gone, debounced
  const grid = assessGrid(s, c, m.gridLoss?.alarmSinceMs, nowMs);
  const fresh = inverterFresh(s, c, nowMs);
  const contactorMismatchSinceMs =
    s.contactor.installed && s.contactor.feedbackClosed !== undefined && s.contactor.feedbackClosed !== s.contactor.commandedClosed
      ? m.contactorMismatchSinceMs ?? nowMs
      : undefined;

  const unhealthySinceMs = h.soft.length ? m.unhealthySinceMs ?? nowMs : undefined;
  const softPersisted = unhealthySinceMs !== undefined && (nowMs - unhealthySinceMs) / 1000 >= c.control.faultAfterS;
  const healthy = h.soft.length === 0 && h.hard.length === 0;

  // --- start-up reconciliation ---------------------------------------------------------------
  // until a fresh inverter reading is in, the phase is provisional (picked again each call) and the plan
  // is zero power, no grid-forming, an open contactor left open; then it is picked once, and said
  let startIsland = m.island;
  const reconciling = m.startup !== undefined && !fresh;
  if (m.startup) {
    startIsland = reconcileIsland(s, c, grid, m.startup.restored, nowMs);
    // the grid watched since this start counts; anything from before it does not
    const watched = m.island.gridStableSinceMs;
    if (watched !== undefined && watched >= m.startup.sinceMs && grid.present) startIsland.gridStableSinceMs = watched;
    if (!reconciling) events.push(startupEvent(s, grid, m.startup, startIsland, wallMs));
  }
  const mem: Memory = startIsland === m.island ? m : { ...m, island: startIsland };

  // --- floors, limits, departure -----------------------------------------------------------
  const dep = departure(s, c, wallMs);
  const f = floorsWithOverrides(floors(s, c, nowMs, dep), ov.active);
  const limits = powerLimits(s, c, f, nowMs, mem.island.rejoinedAtMs);
  // Charging for the departure rests only on a departure floor worked out from a known charge power. With the
  // inverter's unknown (before its first reading at every start, or while its data are stale) the floor is
  // the whole target: right for discharging (no discharge on a guess), but it says nothing about whether
  // charging is due, and the just-in-time latch it set held until the target (regression departure-latch-at-start).
  const chargeFloorPct = fresh && Number.isFinite(s.inverter.maxChargeW) ? f.departureFloorPct : undefined;

  // --- fault state (before the island step: a fault is never served an island) --------------------
  const wasFault = m.mode === 'fault';
  let healthySinceMs = healthy ? m.healthySinceMs ?? nowMs : undefined;
  const stillClearing = wasFault && (healthySinceMs === undefined || (nowMs - healthySinceMs) / 1000 < c.control.faultClearS);
  const faultBefore = h.hard.length > 0 || softPersisted || stillClearing;

  // --- backup / islanding ------------------------------------------------------------------
  const loadW = mem.island.phase === 'on-grid' ? s.houseLoadW : s.houseLoadW ?? (s.inverter.powerW !== undefined ? Math.max(0, -s.inverter.powerW) : undefined);
  const mismatchS = contactorMismatchSinceMs === undefined ? 0 : (nowMs - contactorMismatchSinceMs) / 1000;
  const b = backupStep(mem, s, c, {
    nowMs, gridLost: grid.lost, gridPresent: grid.present, mayIsland: mayIsland(s, c), healthy, faulted: faultBefore || reconciling,
    contactorMismatchS: mismatchS, socPct: soc, capacityWh: cap, efficiency: eff, loadW,
  });
  events.push(...b.events);

  let faultReason: string | undefined;
  if (h.hard.length) faultReason = h.hard[0];
  else if (b.contactorFault) faultReason = b.contactorFault;
  else if (softPersisted) faultReason = h.soft[0];
  let inFault = faultReason !== undefined;
  if (!inFault && wasFault) {
    inFault = stillClearing;
    if (inFault) faultReason = m.faultReason;
  }
  if (inFault && !wasFault) events.push({ kind: 'fault', severity: 'alarm', message: `fault: ${faultReason}` });
  if (!inFault && wasFault) events.push({ kind: 'fault', severity: 'info', message: 'fault cleared' });
  if (inFault && faultReason !== undefined && !healthy) healthySinceMs = undefined;

  // a fault keeps the island phase and its times: no grid-forming, the contactor open off the grid, and
  // the way back on the grid is the normal one, through the interlock
  const island = b.island;
  const backupActive = island.phase !== 'on-grid';
  // on the grid phase but the contactor commanded or seen open (after a fault opened it): zero power
  // until it is closed again through the interlock
  const contactorOpenOnGrid = !backupActive && contactorMayBeOpen(s.contactor);

  // grid trip while the grid is present: one event when it starts and when it ends
  const trip = grid.zeroReason === 'grid_trip';
  if (trip && !m.gridLoss?.trip)
    events.push({ kind: 'grid', severity: 'warning', message: `grid trip (${grid.alarms.join(', ')}) with the grid ${grid.source === 'sense' ? 'present on the sense line' : 'not lost'}: zero power, staying on the grid` });
  if (!trip && m.gridLoss?.trip) events.push({ kind: 'grid', severity: 'info', message: 'grid trip over' });

  // --- dispatches --------------------------------------------------------------------------
  // a running dispatch keeps its length across a wall-clock step: its window moves with the calendar, so
  // it neither ends early (step forward) nor runs an hour long (step back); scheduled ones keep their times
  let records = accountEnergy(clockStepped ? shiftRunning(m.dispatches, clockStepMs) : m.dispatches, m.activeDispatchId, s.energy);
  let blockedBy: ReasonCode | undefined;
  if (inFault) blockedBy = s.estopPressed ? 'estop' : 'fault';
  else if (storageDown) blockedBy = 'storage';
  else if (backupActive) blockedBy = 'backup_active';
  else if (grid.zeroReason) blockedBy = grid.zeroReason;
  else if (!c.vehicle.v2gEnabled) blockedBy = 'v2g_disabled';
  else if (!s.vehicle.connected) blockedBy = 'no_vehicle';
  // inputs stale or a device not answering, for less than faultAfterS (or no reading yet at a start): not a
  // fault yet, and an aggregator told "fault" looks for one (regression dispatch-reason-while-stale)
  else if (!healthy) blockedBy = 'stale_data';
  for (const cmd of s.commands) {
    const r = intake(records, cmd, {
      nowMs: wallMs, blockedBy, socPct: soc, effectiveFloorPct: f.effectiveFloorPct, maxSocPct: s.vehicle.maxSocPct ?? 100,
      carOffersDischarge: carOffersDischarge(s, c), dischargeRefusal: dischargeRefusal(s, c), limits,
    });
    records = r.records;
    responses.push(...r.responses);
    finished.push(...r.finished);
  }
  // v2g switched off while a dispatch runs: it stops at once
  if (!c.vehicle.v2gEnabled)
    for (const r of records)
      if (r.status === 'accepted' || r.status === 'active' || r.status === 'curtailed') {
        const cancelled: DispatchRecord = { ...r, status: 'cancelled', reason: 'v2g_disabled', endedMs: wallMs };
        records = records.map((x) => (x === r ? cancelled : x));
        finished.push(cancelled);
        responses.push({ id: r.id, status: 'cancelled', reason: 'v2g_disabled', deliveredWh: Math.round((r.request.powerW < 0 ? r.exportedWh : r.importedWh) * 10) / 10, source: r.source, replyTo: r.replyTo });
      }
  const adv = advance(records, wallMs, blockedBy === 'v2g_disabled' ? undefined : blockedBy);
  records = adv.records;
  responses.push(...adv.responses);
  finished.push(...adv.finished);
  const active = currentDispatch(records, wallMs);
  // a command the inverter reports it cannot represent or does not follow ends that dispatch's delivery
  const refusedNow = s.inverter.fault !== undefined && INVERTER_REFUSALS.test(s.inverter.fault);
  const inverterRefusedId = active === undefined ? undefined : refusedNow ? active.id : m.inverterRefusedId === active.id ? active.id : undefined;
  if (inverterRefusedId !== undefined && m.inverterRefusedId !== inverterRefusedId)
    events.push({ kind: 'dispatch', severity: 'warning', message: `dispatch ${inverterRefusedId}: the inverter cannot hold it (${s.inverter.fault}); zero power for the rest of its window` });

  // --- mode and setpoint -------------------------------------------------------------------
  let mode: Mode;
  let setpointW = 0;
  let gridForming = false;
  let contactorClosed = true;
  let loadTiersOn = b.loadTiersOn;
  // the latch keeps just-in-time charging from flapping at the floor (it starts within 0.5 % of it); once the
  // floor has fallen clearly below the SoC (more charge power than when it started) the need is gone
  const departureNeedGone = soc !== undefined && chargeFloorPct !== undefined && soc > chargeFloorPct + DEPARTURE_LATCH_RELEASE_PCT;
  let chargeLatched = m.chargeLatched && s.vehicle.connected && (soc === undefined || soc < dep.targetSocPct) && !departureNeedGone;
  let blockReason: string | undefined;
  // surplus charging is off unless the car's own charging below keeps it on
  let surplus = surplusOff(m.surplus, nowMs);

  if (inFault) {
    mode = 'fault';
    // on the grid: faultOpensContactor; off it: where the island phase wants it, never closed by 'always'
    contactorClosed = backupActive ? b.contactorClosed && c.control.faultOpensContactor !== 'always' : faultContactorClosed(s, c, grid);
    if (!backupActive) loadTiersOn = loadTiersOn.map(() => true);
    reasons.push(s.estopPressed ? 'estop' : 'fault');
    blockReason = s.estopPressed ? 'estop' : 'fault';
  } else if (backupActive) {
    mode = 'backup';
    gridForming = b.gridForming;
    contactorClosed = b.contactorClosed;
    reasons.push('backup_active', ...b.reasons);
    blockReason = 'backup_active';
  } else {
    contactorClosed = true;
    // the homeowner's departure outranks the aggregator: below the departure floor the car charges
    const departureNeedsCharge = soc !== undefined && chargeFloorPct !== undefined && soc < chargeFloorPct && s.vehicle.connected;
    // a boost or a backup reserve below its level outranks the aggregator as the departure does
    const overrideCharge = overrideChargeReason(ov.active, soc, s.vehicle.connected);
    if (active && storageDown) {
      // its energy could not be recorded: it waits at zero power (curtailed once, reason storage)
      mode = 'idle';
      reasons.push('storage');
      blockReason = 'storage';
    } else if (active && !s.vehicle.connected) {
      // unplugged: the dispatch is curtailed with the reason and the charger idles
      mode = 'idle';
      reasons.push('no_vehicle');
      blockReason = 'no_vehicle';
    } else if (active && departureNeedsCharge && limits.maxChargeW > 0 && active.request.powerW < limits.maxChargeW) {
      setpointW = limits.maxChargeW;
      mode = 'charge';
      chargeLatched = true;
      reasons.push('departure', `dispatch ${active.id} curtailed`);
      blockReason = 'departure';
    } else if (active && overrideCharge && limits.maxChargeW > 0 && active.request.powerW < limits.maxChargeW) {
      setpointW = limits.maxChargeW;
      mode = 'charge';
      reasons.push(overrideCharge, `dispatch ${active.id} curtailed`);
      blockReason = 'homeowner_limit';
    } else if (active && inverterRefusedId === active.id) {
      // the inverter could not hold this dispatch (a setpoint it cannot represent, or one it did not
      // follow): it waits at zero for the rest of its window, curtailed once, rather than flapping
      mode = 'idle';
      reasons.push('inverter_limit');
      blockReason = 'inverter_limit';
    } else if (active) {
      setpointW = boundedPowerW(active.request.powerW, limits);
      mode = active.request.powerW < 0 ? 'discharge' : active.request.powerW > 0 ? 'charge' : 'idle';
      reasons.push(`dispatch ${active.id}`);
    } else {
      const need = overrideCharge ? { reason: overrideCharge, latched: chargeLatched } : chargingNeed(s, c, soc, dep.targetSocPct, dep.atMs, chargeFloorPct, chargeLatched);
      // the charge mode and the solar surplus (surplus.ts): the grid need as the mode allows it, then the sun
      const own = ownCharge(s, c, m.surplus, nowMs, {
        socPct: soc, targetSocPct: dep.targetSocPct, maxChargeW: limits.maxChargeW,
        need, needWith: (strategy, latched = chargeLatched) => chargingNeed(s, { ...c, vehicle: { ...c.vehicle, chargeStrategy: strategy } }, soc, dep.targetSocPct, dep.atMs, chargeFloorPct, latched),
      });
      chargeLatched = own.latched;
      surplus = own.memory;
      events.push(...own.events);
      if (own.setpointW > 0 && limits.maxChargeW > 0) {
        setpointW = Math.min(own.setpointW, limits.maxChargeW);
        mode = 'charge';
        reasons.push(own.reason ?? 'surplus');
      } else mode = 'idle';
    }
    if (grid.zeroReason) {
      setpointW = 0;
      reasons.unshift(grid.zeroReason);
      blockReason = grid.zeroReason;
    } else if (contactorOpenOnGrid) {
      setpointW = 0;
      mode = 'idle';
      reasons.unshift('contactor_open');
      blockReason = 'contactor_open';
    } else if (!healthy) {
      setpointW = 0;
      reasons.unshift('stale_data');
      if (blockReason !== 'inverter_limit') blockReason = 'stale_data';
    }
  }

  // start-up: nothing moves until the inverter has been seen (the contactor is left to the phase and the
  // interlock below, which cannot pass without a fresh reading)
  if (reconciling) {
    setpointW = 0;
    gridForming = false;
    if (!inFault) mode = 'idle';
    reasons.unshift('startup');
    blockReason = 'stale_data';
  }

  // never more than every limit allows, and whole watts rounded toward zero
  setpointW = Math.max(-limits.maxDischargeW, Math.min(limits.maxChargeW, setpointW));
  setpointW = setpointW < 0 ? -Math.floor(-setpointW) : Math.floor(setpointW);
  if (Object.is(setpointW, -0)) setpointW = 0;
  if (setpointW < 0 && limits.dischargeLimitedBy && Math.abs(setpointW) >= limits.maxDischargeW - 0.5 && mode === 'discharge') reasons.push(`limited: ${limits.dischargeLimitedBy}`);

  // the interlock (invariant 5): an open contactor is closed only when (a)–(c) hold, on every path
  const formingOffAtMs = m.lastGridForming === false ? m.formingOffAtMs : nowMs;
  if (contactorClosed && contactorMayBeOpen(s.contactor)) {
    const il = interlock({
      nowMs, gridStableSinceMs: island.gridStableSinceMs, gridSource: grid.source, reconnectDelayS: c.backup.reconnectDelayS,
      inverter: s.inverter, inverterMaxAgeS: c.control.inverterMaxAgeS, formingOffAtMs, setpointW, lastSetpointW: m.lastSetpointW,
    });
    if (!il.ok) {
      contactorClosed = false;
      reasons.push('interlock');
    }
  }

  if (active) {
    const limitReason = blockReason ?? (active.request.powerW < 0 ? limits.dischargeLimitedBy : limits.chargeLimitedBy);
    const cu = updateCurtailment(records, active.id, setpointW, limitReason, fresh ? { nowMs, measuredW: s.inverter.powerW } : undefined);
    records = cu.records;
    responses.push(...cu.responses);
  }

  if (mode !== m.mode) events.push({ kind: 'mode', severity: mode === 'fault' ? 'alarm' : 'info', message: `mode ${m.mode} → ${mode}${reasons.length ? ` (${reasons[0]})` : ''}` });

  // --- what the aggregator may ask for ---------------------------------------------------------
  const canDispatch = !inFault && !reconciling && !storageDown && !backupActive && !grid.zeroReason && !contactorOpenOnGrid && c.vehicle.v2gEnabled && s.vehicle.connected && healthy;
  const maxSoc = s.vehicle.maxSocPct ?? 100;
  const flex = {
    maxDischargeW: canDispatch ? Math.floor(Math.min(limits.maxDischargeW, dischargeRateW(s, c, limits, nowMs))) : 0,
    maxChargeW: canDispatch ? Math.floor(limits.maxChargeW) : 0,
    dischargeableWh: canDispatch && soc !== undefined && carOffersDischarge(s, c) ? Math.max(0, Math.round(((soc - f.effectiveFloorPct) / 100) * cap * eff)) : 0,
    chargeableWh: canDispatch && soc !== undefined ? Math.max(0, Math.round((((maxSoc - soc) / 100) * cap) / eff)) : 0,
    untilMs: dep.atMs,
    pvForecastWh: 0,
  };
  if (c.site.pvForecast && flex.chargeableWh > 0) {
    // the room the sun is expected to fill before `until` is not the aggregator's to fill from the grid;
    // the floors never rest on a forecast (a cloudy day must not cost the departure target or the floor)
    const houseW = b.houseLoadAvgW ?? c.site.assumedHouseLoadW;
    const pvWh = Math.round(forecastCarPvWh(c, wallMs, dep.atMs, houseW, flex.maxChargeW));
    flex.pvForecastWh = Math.min(flex.chargeableWh, pvWh);
    flex.chargeableWh -= flex.pvForecastWh;
  }

  // the same capacity assumption as the departure floor: unknown = large, so the warning errs early
  // without a fresh inverter reading its charge power is unknown, not 0 W: the verdict waits for one
  // (at every start the first decision runs before the first reading)
  const atRisk = fresh ? departureAtRisk(s, c, soc, dep.targetSocPct, dep.inS, nowMs, departureCapacityWh(s, c), eff) : m.departureAtRisk;
  if (atRisk && !m.departureAtRisk) events.push({ kind: 'departure', severity: 'warning', message: `departure target ${dep.targetSocPct} % at risk` });

  const activeId = active && (active.status === 'active' || active.status === 'curtailed') ? active.id : undefined;
  const memory: Memory = {
    mode,
    modeSinceMs: mode === m.mode ? m.modeSinceMs : nowMs,
    unhealthySinceMs,
    healthySinceMs,
    faultReason: inFault ? faultReason : undefined,
    island,
    loadTiersOn,
    tierLoadW: b.tierLoadW,
    lastShedChangeMs: b.lastShedChangeMs,
    pendingShed: b.pendingShed,
    houseLoadAvgW: b.houseLoadAvgW,
    dispatches: prune(records, wallMs),
    activeDispatchId: activeId,
    contactorMismatchSinceMs,
    lastSetpointW: setpointW,
    lastTickMs: nowMs,
    wallOffsetMs,
    storageDown: storageDown || undefined,
    departureAtRisk: atRisk,
    chargeLatched,
    inputIssues,
    inverterRefusedId,
    overridesKey: ovKey,
    startup: reconciling ? m.startup : undefined,
    gridLoss: grid.alarmSinceMs !== undefined || trip ? { alarmSinceMs: grid.alarmSinceMs, trip } : undefined,
    lastGridForming: gridForming,
    formingOffAtMs: gridForming ? undefined : formingOffAtMs,
    surplus,
  };

  return {
    mode,
    setpointW,
    gridForming,
    contactorClosed,
    loadTiersOn,
    floors: f,
    limits,
    activeDispatchId: activeId,
    backup: {
      active: backupActive,
      phase: island.phase,
      hoursLeft: b.hoursLeft,
      hoursWanted: b.hoursWanted,
      shedTiers: loadTiersOn.flatMap((on, i) => (on ? [] : [i + 1])),
      outageStartMs: island.outageStartMs,
    },
    reasons,
    responses,
    events,
    finished,
    flex,
    departureAtMs: dep.atMs,
    departureAtRisk: atRisk,
    memory,
  };
}

/** How far ahead the PV forecast looks without a departure, ms: the next day's sun. */
const PV_FORECAST_HORIZON_MS = 24 * 3_600_000;

/**
 * PV energy the car is expected to take from `wallMs` until the departure (or the next 24 h), AC Wh, as the
 * charge mode uses the sun (surplus.ts): `pv` and `minpv` take the surplus over the house; `target` only
 * what the export limit would curtail; `now` fills from the grid at once and `off` does not charge.
 */
function forecastCarPvWh(c: ControlSettings, wallMs: number, untilMs: number | undefined, houseW: number, carMaxW: number): number {
  const fc = c.site.pvForecast;
  const mode = c.charge?.mode ?? CHARGE_DEFAULTS.mode;
  if (!fc || mode === 'now' || mode === 'off') return 0;
  const to = untilMs !== undefined && untilMs > wallMs ? untilMs : wallMs + PV_FORECAST_HORIZON_MS;
  if (mode === 'target') {
    // only what the export limiter would throw away
    if (c.site.gridExportLimitW === null) return 0;
    return pvSurplusWh(wallMs, to, fc, houseW + c.site.gridExportLimitW, carMaxW);
  }
  return pvSurplusWh(wallMs, to, fc, houseW, carMaxW);
}

/** Discharge power the car can sustain, for `flex` (the floor bound per tick is not a rate). */
function dischargeRateW(s: Snapshot, c: ControlSettings, limits: PowerLimits, nowMs: number): number {
  const caps = [s.inverter.maxDischargeW ?? 0];
  if (s.vehicle.maxDischargeW !== undefined) caps.push(s.vehicle.maxDischargeW);
  if (c.vehicle.maxDischargeW !== null) caps.push(c.vehicle.maxDischargeW);
  if (s.vehicle.chargerExportCapabilityW !== undefined) caps.push(s.vehicle.chargerExportCapabilityW);
  if (c.site.gridExportLimitW !== null) caps.push(c.site.gridExportLimitW + houseLoadForExportW(s, c, nowMs));
  return limits.maxDischargeW > 0 ? Math.min(...caps) : 0;
}

type PowerLimits = Plan['limits'];

function chargingNeed(
  s: Snapshot, c: ControlSettings, soc: number | undefined, targetPct: number, departureAtMs: number | undefined,
  departureFloorPct: number | undefined, latched: boolean,
): { reason?: string; latched: boolean } {
  if (!s.vehicle.connected) return { latched: false };
  const maxSoc = s.vehicle.maxSocPct ?? 100;
  if (soc === undefined) return { reason: 'charging (SoC unknown: the car ends it)', latched };
  if (soc >= maxSoc) return { latched: false };
  if (c.backup.enabled && soc < c.vehicle.backupFloorPct) return { reason: 'backup_reserve', latched };
  if (soc >= targetPct) return { latched: false };
  if (c.vehicle.chargeStrategy === 'immediate' || departureAtMs === undefined) return { reason: 'target', latched: true };
  // just in time: start when the departure floor catches up with the SoC, then hold until the target
  if (latched || (departureFloorPct !== undefined && soc <= departureFloorPct + 0.5)) return { reason: 'departure', latched: true };
  return { latched: false };
}

function departureAtRisk(
  s: Snapshot, c: ControlSettings, soc: number | undefined, targetPct: number, departureInS: number | undefined, nowMs: number, cap: number, eff: number,
): boolean {
  if (soc === undefined || departureInS === undefined || !s.vehicle.connected || soc >= targetPct) return false;
  const hours = Math.max(0, departureInS) / 3600;
  const reachablePct = ((departureChargeW(s, c, nowMs) * eff * hours) / cap) * 100;
  return soc + reachablePct < targetPct - 0.5;
}

/**
 * A change of `wallMs − nowMs` this large between two decisions is a step of the wall clock (NTP stepping,
 * a board without an RTC setting its date, a person fixing it), not drift: NTP slews drift away at most
 * 0.5 ms/s (adjtime), far below this over one tick.
 */
export const CLOCK_STEP_MIN_MS = 2000;

function formatStep(ms: number): string {
  const s = Math.round(Math.abs(ms) / 1000);
  return s >= 3600 ? `${(s / 3600).toFixed(s % 3600 ? 2 : 0)} h (${s} s)` : `${s} s`;
}

/** The running dispatch (started, not finished) with its window moved by a wall-clock step. */
function shiftRunning(records: DispatchRecord[], stepMs: number): DispatchRecord[] {
  return records.map((r) =>
    (r.status === 'active' || r.status === 'curtailed') && r.startedMs !== undefined
      ? { ...r, startMs: r.startMs + stepMs, endMs: r.endMs + stepMs, startedMs: r.startedMs + stepMs }
      : r,
  );
}
