/**
 * Start-up recovery. The island state kept by the last run is loaded and checked (the core reconciles
 * it with the contactor and the inverter before acting on it), and what the start found is said in an
 * event. Then, after a crash or power cut: a dispatch that was running and whose window is still open
 * resumes (same id, same end, the downtime kept in `downtimeS`); one whose window closed meanwhile is
 * settled from the energy measured (the last checkpoint plus what the inverter's counters moved since),
 * marked interrupted; dispatches that had not started yet are put back, so they still run; the ones
 * whose time passed meanwhile are answered `expired`.
 */
import type { InverterReading, Ports } from '../../hal/ports.ts';
import { deliveredWh } from '../control/dispatch.ts';
import { meterTick, type MeterState } from '../control/metering.ts';
import type { CoreEvent, DispatchRecord, EnergyDelta, IslandPhase, Memory } from '../control/types.ts';
import { isoUtc, type OutboundMessage } from '../contract.ts';
import { ledgerMessage, responseMessage, round1 } from './outgoing.ts';
import type { SnapshotAssembler } from './snapshot.ts';
import type { RuntimeOptions } from './types.ts';

export interface RecoveryContext {
  opts: RuntimeOptions;
  nowMs: number;
  /** The inverter's reading after a fresh poll (undefined when it did not answer). */
  reading: InverterReading | undefined;
  assembler: SnapshotAssembler;
  emit: (e: CoreEvent) => void;
}

/** Settles interrupted dispatches; returns those to put back into the core's memory. */
export function recoverDispatches(ctx: RecoveryContext): DispatchRecord[] {
  const store = ctx.opts.store;
  if (!store?.interruptedDispatches) return [];
  const now = ctx.nowMs;
  const cp = store.loadMeterState?.();
  const reading = ctx.reading;
  let sinceCheckpoint: EnergyDelta = { exportedWh: 0, importedWh: 0, carSideWh: 0 };
  if (cp?.meter && reading) {
    const t = meterTick(cp.meter as MeterState, reading, ctx.assembler.meterSettings());
    sinceCheckpoint = t.delta;
    ctx.assembler.meter = t.state;
  }
  // the energy counters of state `energy` (and Home Assistant's total_increasing sensors) carry on from the
  // last checkpoint, plus what the inverter's own counters moved while the runtime was down
  const kept = cp?.totals;
  if (kept && [kept.importedWh, kept.exportedWh, kept.carSideWh].every((v) => typeof v === 'number' && Number.isFinite(v) && v >= 0)) {
    ctx.assembler.totals.importedWh = kept.importedWh + sinceCheckpoint.importedWh;
    ctx.assembler.totals.exportedWh = kept.exportedWh + sinceCheckpoint.exportedWh;
    ctx.assembler.totals.carSideWh = kept.carSideWh + sinceCheckpoint.carSideWh;
  }
  const restored: DispatchRecord[] = [];
  const msgs: OutboundMessage[] = [];
  for (const u of store.interruptedDispatches()) {
    let rec = u.record;
    if (u.interrupted && !u.started && rec.endMs > now) {
      restored.push(rec);
      continue;
    }
    if (u.interrupted && u.started && rec.endMs > now && (rec.status === 'active' || rec.status === 'curtailed')) {
      // its window is still open (a crash, a watchdog restart, a power blip): it resumes, same id and end,
      // and is settled once at its end by the core, with the time the device was down stated (downtimeS)
      const delta = u.fromCheckpoint ? sinceCheckpoint : { exportedWh: 0, importedWh: 0, carSideWh: 0 };
      const lastSeenMs = u.energyAtMs ?? cp?.atMs ?? now;
      const downS = Math.max(0, (now - lastSeenMs) / 1000);
      rec = {
        ...rec, exportedWh: rec.exportedWh + delta.exportedWh, importedWh: rec.importedWh + delta.importedWh, carSideWh: rec.carSideWh + delta.carSideWh,
        downtimeS: (rec.downtimeS ?? 0) + downS,
      };
      restored.push(rec);
      msgs.push(responseMessage({ id: rec.id, status: rec.status, reason: rec.reason, acceptedW: rec.acceptedW, deliveredWh: deliveredWh(rec), replyTo: rec.replyTo }));
      ctx.emit({ kind: 'dispatch', severity: 'warning', message: `dispatch ${rec.id} resumed after a restart (down ${Math.round(downS)} s; ends ${isoUtc(rec.endMs)} as planned)` });
      continue;
    }
    if (u.interrupted && !u.started) {
      const expired: DispatchRecord = { ...rec, status: 'expired', reason: 'expired', endedMs: now };
      store.recordDispatch(expired, now);
      msgs.push(responseMessage({ id: rec.id, status: 'expired', reason: 'expired', replyTo: rec.replyTo }));
      continue;
    }
    if (u.interrupted) {
      const delta = u.fromCheckpoint && (rec.status === 'active' || rec.status === 'curtailed') ? sinceCheckpoint : { exportedWh: 0, importedWh: 0, carSideWh: 0 };
      rec = {
        ...rec, status: 'completed', reason: 'interrupted', endedMs: Math.min(now, rec.endMs),
        exportedWh: rec.exportedWh + delta.exportedWh, importedWh: rec.importedWh + delta.importedWh, carSideWh: rec.carSideWh + delta.carSideWh,
      };
    }
    const resp = { id: rec.id, status: rec.status, reason: rec.reason, deliveredWh: deliveredWh(rec), replyTo: rec.replyTo };
    store.settleDispatch(rec, [responseMessage(resp), ledgerMessage(rec, u.interrupted)], now, { interrupted: u.interrupted });
    ctx.opts.onSettled?.(rec);
    ctx.emit({ kind: 'dispatch', severity: 'warning', message: `dispatch ${rec.id} settled after a restart: ${round1(rec.exportedWh)} Wh exported, ${round1(rec.importedWh)} Wh imported${u.interrupted ? ' (interrupted)' : ''}` });
  }
  if (msgs.length) ctx.opts.uplink?.publish(msgs);
  ctx.opts.uplink?.drain?.();
  return restored;
}

/**
 * A clean stop (runtime.stop(), what SIGTERM runs) during a dispatch: the power is already at zero, so
 * the dispatch ends now. It is settled here, once, as `completed` with reason `stopped`: the energy it
 * delivered until the stop (the last decision's figure plus what the inverter's last reading moved
 * since), end time = the stop. The next start finds it settled and leaves it alone. Dispatches that
 * had not started yet stay in the store as they are and run after the next start if still due.
 */
export function settleOnStop(ctx: { opts: RuntimeOptions; nowMs: number; memory: Memory; reading: InverterReading | undefined; assembler: SnapshotAssembler; emit: (e: CoreEvent) => void }): DispatchRecord[] {
  const running = ctx.memory.dispatches.filter((r) => r.status === 'active' || r.status === 'curtailed');
  if (!running.length) return [];
  let delta: EnergyDelta = { exportedWh: 0, importedWh: 0, carSideWh: 0 };
  if (ctx.reading) {
    const t = meterTick(ctx.assembler.meter, ctx.reading, ctx.assembler.meterSettings());
    ctx.assembler.meter = t.state;
    delta = t.delta;
    ctx.assembler.totals.importedWh += delta.importedWh;
    ctx.assembler.totals.exportedWh += delta.exportedWh;
    ctx.assembler.totals.carSideWh += delta.carSideWh;
  }
  const store = ctx.opts.store;
  const settled: DispatchRecord[] = [];
  for (const r of running) {
    const d = r.id === ctx.memory.activeDispatchId ? delta : { exportedWh: 0, importedWh: 0, carSideWh: 0 };
    const rec: DispatchRecord = {
      ...r, status: 'completed', reason: 'stopped', endedMs: Math.min(ctx.nowMs, r.endMs),
      exportedWh: r.exportedWh + d.exportedWh, importedWh: r.importedWh + d.importedWh, carSideWh: r.carSideWh + d.carSideWh,
    };
    const resp = { id: rec.id, status: rec.status, reason: rec.reason, deliveredWh: deliveredWh(rec), replyTo: rec.replyTo, source: rec.source };
    ctx.opts.onResponse?.(resp);
    const msgs = [responseMessage(resp), ledgerMessage(rec)];
    if (store) store.settleDispatch(rec, msgs, ctx.nowMs);
    else ctx.opts.uplink?.publish(msgs);
    ctx.opts.onSettled?.(rec);
    settled.push(rec);
    ctx.emit({ kind: 'dispatch', severity: 'info', message: `dispatch ${rec.id} ended by a stop: ${round1(rec.exportedWh)} Wh exported, ${round1(rec.importedWh)} Wh imported` });
  }
  if (store) ctx.opts.uplink?.drain?.();
  return settled;
}

const PHASES = new Set(['on-grid', 'opening', 'islanded', 'dropped', 'rejoining']);
const ISLAND_TIMES = ['sinceMs', 'outageStartMs', 'gridStableSinceMs', 'rejoinedAtMs'] as const;

/** The island state the last run kept, checked field by field; a bad one is named, not used. */
export function loadIsland(store: RuntimeOptions['store']): { island?: Memory['island']; savedAtMs?: number; json?: string; problem?: string } {
  if (!store?.loadIsland) return {};
  let saved: { json: string; atMs: number } | undefined;
  try {
    saved = store.loadIsland();
  } catch (e) {
    return { problem: `the saved island state could not be read: ${(e as Error)?.message ?? String(e)}` };
  }
  if (!saved) return {};
  let v: unknown;
  try {
    v = JSON.parse(saved.json);
  } catch (e) {
    return { problem: `the saved island state is not JSON: ${(e as Error)?.message ?? String(e)}` };
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { problem: 'the saved island state is not an object' };
  const o = v as Record<string, unknown>;
  if (typeof o.phase !== 'string' || !PHASES.has(o.phase)) return { problem: `the saved island state has an unknown phase ${JSON.stringify(o.phase)}` };
  for (const k of ISLAND_TIMES) {
    const t = o[k];
    if (t === undefined && k !== 'sinceMs') continue;
    if (typeof t !== 'number' || !Number.isFinite(t)) return { problem: `the saved island state's ${k} is not a time (${JSON.stringify(t)})` };
  }
  const island: Memory['island'] = { phase: o.phase as IslandPhase, sinceMs: o.sinceMs as number };
  for (const k of ISLAND_TIMES) if (k !== 'sinceMs' && o[k] !== undefined) island[k] = o[k] as number;
  return { island, savedAtMs: Number.isFinite(saved.atMs) ? saved.atMs : undefined, json: JSON.stringify(island) };
}

/** What a start found, in words: the kept island state against what the contactor and the inverter show. */
export function startupFindings(o: {
  island?: Memory['island'];
  savedAtMs?: number;
  problem?: string;
  ports: Ports;
  nowMs: number;
}): CoreEvent {
  const parts: string[] = [];
  if (o.problem) parts.push(`${o.problem}; starting without it`);
  else if (o.island) parts.push(`saved island phase ${o.island.phase} (since ${isoUtc(o.island.sinceMs)}${o.savedAtMs !== undefined ? `, saved ${isoUtc(o.savedAtMs)}` : ''})`);
  else parts.push('no saved island state');
  const relays = o.ports.relays?.state();
  if (o.ports.relays) {
    const fb = relays?.contactorFeedbackClosed;
    parts.push(`contactor commanded ${relays?.contactorCommandClosed ? 'closed' : 'open'}, feedback ${fb === undefined ? 'unknown' : fb ? 'closed' : 'open'}`);
  } else parts.push('no grid contactor');
  const grid = o.ports.gridSense?.state().present;
  parts.push(`grid ${grid === undefined ? 'unknown' : grid ? 'present' : 'absent'}`);
  const reading = o.ports.inverter.state().reading;
  parts.push(reading ? `inverter ${reading.gridForming ? 'forming the grid' : 'not forming'} (reading ${Math.max(0, Math.round((o.nowMs - reading.atMs) / 1000))} s old)` : 'no inverter reading yet');
  // a start off the grid or forming, a contactor found open, or a saved state that could not be used: worth a warning
  const notable = o.problem !== undefined || (o.island && o.island.phase !== 'on-grid') || reading?.gridForming || relays?.contactorFeedbackClosed === false;
  return { kind: 'startup', severity: notable ? 'warning' : 'info', message: `start-up found: ${parts.join(', ')}` };
}
