/** Outgoing messages built from plans and records: dispatch responses, ledger rows, `state` and `flex`. */
import type { DispatchRecord, DispatchResponse, Plan, Snapshot } from '../control/types.ts';
import { isoUtc, type OutboundMessage, type StatePayload } from '../contract.ts';

export function responseMessage(r: DispatchResponse): OutboundMessage {
  const payload: Record<string, unknown> = { id: r.id, status: r.status };
  if (r.reason !== undefined) payload.reason = r.reason;
  if (r.acceptedW !== undefined) payload.acceptedW = r.acceptedW;
  if (r.deliveredWh !== undefined) payload.deliveredWh = r.deliveredWh;
  return {
    topic: 'dispatch/response', payload, qos: 1, retain: false, class: 'response',
    responseTopic: r.replyTo?.responseTopic, correlationData: r.replyTo?.correlationData,
  };
}

/**
 * When a dispatch delivered, as the ledger states it: from its first active tick to its end. One that
 * never started (cancelled or superseded before its start) delivered nothing, so its span is the moment
 * it ended (start = end), never an end before its start. The store computes the ledger row the same way.
 */
export function ledgerSpan(r: DispatchRecord): { startMs: number; endMs: number } {
  const endedMs = r.endedMs ?? r.endMs;
  const startMs = r.startedMs ?? Math.min(r.startMs, endedMs);
  return { startMs, endMs: Math.max(startMs, endedMs) };
}

export function ledgerMessage(r: DispatchRecord, interrupted = false): OutboundMessage {
  const span = ledgerSpan(r);
  const payload: Record<string, unknown> = {
    id: r.id,
    start: isoUtc(span.startMs),
    end: isoUtc(span.endMs),
    exportedWh: round1(r.exportedWh),
    importedWh: round1(r.importedWh),
    carSideWh: round1(r.carSideWh),
    status: r.status,
  };
  // why it ended other than by its own time: `stopped` (a clean stop), `interrupted` (a crash outlasting it)
  if (r.reason === 'stopped' || r.reason === 'interrupted') payload.reason = r.reason;
  if (interrupted) payload.interrupted = true;
  // seconds the device was down while the dispatch's window was open (it resumed after a restart)
  if (r.downtimeS !== undefined && r.downtimeS > 0) payload.downtimeS = Math.round(r.downtimeS);
  return { topic: 'ledger', payload, qos: 1, retain: false, class: 'ledger' };
}

export function statePayload(p: Plan, s: Snapshot, totals: { importedWh: number; exportedWh: number }, monoMs: number): StatePayload {
  return {
    mode: p.mode,
    grid: gridUp(p, s) ? 'up' : 'down',
    vehicle: {
      connected: s.vehicle.connected,
      socPct: s.vehicle.socPct !== undefined ? round1(s.vehicle.socPct) : null,
      socAgeS: s.vehicle.socAtMs !== undefined ? Math.max(0, Math.round((monoMs - s.vehicle.socAtMs) / 1000)) : null,
      socSource: s.vehicle.socSource,
    },
    powerW: Math.round(s.inverter.powerW ?? 0),
    setpointW: p.setpointW,
    floors: { dischargeFloorPct: p.floors.dischargeFloorPct, effectiveFloorPct: round1(p.floors.effectiveFloorPct), backupFloorPct: p.floors.backupFloorPct },
    dispatchId: p.activeDispatchId ?? null,
    energy: { importedWh: round1(totals.importedWh), exportedWh: round1(totals.exportedWh) },
    backup: { phase: p.backup.phase, hoursLeft: p.backup.hoursLeft !== undefined && Number.isFinite(p.backup.hoursLeft) ? round1(p.backup.hoursLeft) : null, shedTiers: p.backup.shedTiers },
    departure: { at: p.departureAtMs !== undefined ? isoUtc(p.departureAtMs) : null, atRisk: p.departureAtRisk },
    // in fault, the cause after the reason codes, so the aggregator and `status` see why
    reasons: p.mode === 'fault' && p.memory.faultReason ? [...p.reasons, `fault: ${p.memory.faultReason}`] : p.reasons,
    storage: s.storage?.writable === false ? { writable: false, fault: s.storage.fault ?? null } : { writable: true, fault: null },
    site: siteFigures(s, monoMs),
  };
}

/** The site meter's grid and PV figures for `state`: as measured, with their age; null when absent or in fault. */
export function siteFigures(s: Snapshot, monoMs: number): NonNullable<StatePayload['site']> {
  const age = (atMs: number | undefined) => (atMs === undefined ? null : Math.max(0, Math.round((monoMs - atMs) / 1000)));
  const grid = s.gridPowerW !== undefined && !s.houseLoadFault ? s.gridPowerW : undefined;
  const pv = s.pvPowerW !== undefined && !s.pvPowerFault ? s.pvPowerW : undefined;
  return {
    gridPowerW: grid === undefined ? null : Math.round(grid),
    gridAgeS: grid === undefined ? null : age(s.gridPowerAtMs),
    pvPowerW: pv === undefined ? null : Math.round(pv),
    pvAgeS: pv === undefined ? null : age(s.pvPowerAtMs),
  };
}

export function flexPayload(p: Plan): { maxDischargeW: number; maxChargeW: number; dischargeableWh: number; chargeableWh: number; pvForecastWh: number; until: string | null } {
  return {
    maxDischargeW: p.flex.maxDischargeW,
    maxChargeW: p.flex.maxChargeW,
    dischargeableWh: p.flex.dischargeableWh,
    chargeableWh: p.flex.chargeableWh,
    pvForecastWh: p.flex.pvForecastWh,
    until: p.flex.untilMs !== undefined ? isoUtc(p.flex.untilMs) : null,
  };
}

/** The grid as the sense line shows it; without one, as the core's island phase implies (grid loss is its decision). */
export function gridUp(p: Plan, s: Snapshot): boolean {
  if (s.grid.sensePresent !== undefined) return s.grid.sensePresent;
  return !p.backup.active;
}

export function round1(x: number): number {
  return Math.round(x * 10) / 10;
}

export function round100(x: number): number {
  return Math.round(x / 100) * 100;
}
