/** The dispatch lifecycle of contract §1.1, as pure state transitions over a list of records. */
import type { DispatchCommand, DispatchRecord, DispatchResponse, EnergyDelta, PowerLimits, ReasonCode } from './types.ts';
import { TERMINAL_STATUSES } from './types.ts';

/** Finished dispatches are remembered this long, so a re-delivered id still gets its answer. */
export const KEEP_FINISHED_MS = 48 * 3600_000;
export const MAX_RECORDS = 1000;

export interface IntakeContext {
  nowMs: number;
  /** Why no dispatch can be taken now, if anything forbids it (fault, backup_active, v2g_disabled, ...). */
  blockedBy?: ReasonCode;
  socPct?: number;
  effectiveFloorPct: number;
  maxSocPct: number;
  carOffersDischarge: boolean;
  /** Why the car may not be discharged (`no_consent`, `not_bidirectional`, ...); overrides `carOffersDischarge`. */
  dischargeRefusal?: ReasonCode;
  limits: PowerLimits;
}

/** What is wrong with a request's numbers, if anything (the codec checks these too; the core does not rely on it). */
function invalidField(cmd: DispatchCommand): string | undefined {
  if (!Number.isFinite(cmd.receivedMs)) return 'receivedMs';
  if (cmd.kind !== 'dispatch') return undefined;
  const r = cmd.request;
  if (typeof r.powerW !== 'number' || !Number.isFinite(r.powerW)) return 'powerW';
  if (typeof r.durationS !== 'number' || !Number.isFinite(r.durationS) || r.durationS <= 0) return 'durationS';
  if (r.startMs !== undefined && !Number.isFinite(r.startMs)) return 'start';
  if (r.expiresAtMs !== undefined && !Number.isFinite(r.expiresAtMs)) return 'expiresAt';
  return undefined;
}

export function isTerminal(r: DispatchRecord): boolean {
  return TERMINAL_STATUSES.has(r.status);
}

export function deliveredWh(r: DispatchRecord): number {
  return round1(r.request.powerW < 0 ? r.exportedWh : r.importedWh);
}

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}

export function responseFor(r: DispatchRecord): DispatchResponse {
  const out: DispatchResponse = { id: r.id, status: r.status, source: r.source };
  if (r.reason !== undefined) out.reason = r.reason;
  if (r.acceptedW !== undefined && r.status !== 'rejected') out.acceptedW = r.acceptedW;
  if (r.status === 'completed' || r.status === 'cancelled' || r.status === 'superseded' || (r.status === 'curtailed' && r.startedMs !== undefined))
    out.deliveredWh = deliveredWh(r);
  if (r.replyTo) out.replyTo = r.replyTo;
  return out;
}

/** What the device would do for `powerW` under `limits`, W. */
export function boundedPowerW(powerW: number, limits: PowerLimits): number {
  return powerW < 0 ? -Math.min(-powerW, limits.maxDischargeW) : Math.min(powerW, limits.maxChargeW);
}

function overlaps(a: { startMs: number; endMs: number }, b: { startMs: number; endMs: number }): boolean {
  return a.startMs < b.endMs && b.startMs < a.endMs;
}

export interface IntakeResult {
  records: DispatchRecord[];
  responses: DispatchResponse[];
  finished: DispatchRecord[];
}

/** Take one command from the aggregator. Never throws; every command gets exactly one answer. */
export function intake(records: DispatchRecord[], cmd: DispatchCommand, ctx: IntakeContext): IntakeResult {
  const responses: DispatchResponse[] = [];
  const finished: DispatchRecord[] = [];
  const now = ctx.nowMs;
  const existing = records.find((r) => r.id === (cmd.kind === 'cancel' ? cmd.id : cmd.request.id));
  const bad = invalidField(cmd);
  if (bad !== undefined && !(existing && cmd.kind === 'cancel')) {
    // a number no codec should have let through: refused, and nothing of it is kept
    responses.push({ id: cmd.kind === 'cancel' ? cmd.id : cmd.request.id, status: 'rejected', reason: 'invalid', source: cmd.source, replyTo: cmd.replyTo });
    return { records, responses, finished };
  }

  if (cmd.kind === 'cancel') {
    if (!existing) {
      responses.push({ id: cmd.id, status: 'rejected', reason: 'unknown_id', source: cmd.source, replyTo: cmd.replyTo });
      return { records, responses, finished };
    }
    if (isTerminal(existing)) {
      // nothing left to cancel: its final status, saying so
      responses.push({ ...responseFor(existing), reason: 'already_finished', replyTo: cmd.replyTo ?? existing.replyTo });
      return { records, responses, finished };
    }
    const cancelled: DispatchRecord = { ...existing, status: 'cancelled', reason: undefined, endedMs: now };
    finished.push(cancelled);
    responses.push({ ...responseFor(cancelled), replyTo: cmd.replyTo ?? existing.replyTo });
    return { records: records.map((r) => (r === existing ? cancelled : r)), responses, finished };
  }

  const req = cmd.request;
  if (existing) {
    if (existing.body === cmd.body) {
      // answered again with its current status (contract §1.1); one that ran and ended says it has
      // finished, so a re-sent id is never taken for a new dispatch
      const again = { ...responseFor(existing), replyTo: cmd.replyTo ?? existing.replyTo };
      if (existing.status === 'completed' || existing.status === 'cancelled' || existing.status === 'superseded') again.reason = 'already_finished';
      responses.push(again);
    } else responses.push({ id: req.id, status: 'rejected', reason: 'duplicate_conflict', source: cmd.source, replyTo: cmd.replyTo });
    return { records, responses, finished };
  }

  const startMs = req.startMs ?? cmd.receivedMs;
  const endMs = startMs + req.durationS * 1000;
  const base: DispatchRecord = {
    id: req.id, request: req, body: cmd.body, source: cmd.source, replyTo: cmd.replyTo, receivedMs: cmd.receivedMs,
    startMs, endMs, status: 'rejected', exportedWh: 0, importedWh: 0, carSideWh: 0,
  };

  const reject = (reason: string, status: 'rejected' | 'expired' = 'rejected'): IntakeResult => {
    const rec: DispatchRecord = { ...base, status, reason: status === 'expired' ? 'expired' : reason, endedMs: now };
    responses.push(responseFor(rec));
    return { records: [...records, rec], responses, finished: [rec] };
  };

  if ((req.expiresAtMs !== undefined && req.expiresAtMs <= now) || endMs <= now) return reject('expired', 'expired');
  if (ctx.blockedBy) return reject(ctx.blockedBy);
  if (req.powerW < 0) {
    const refusal = ctx.dischargeRefusal ?? (ctx.carOffersDischarge ? undefined : 'not_bidirectional');
    if (refusal) return reject(refusal);
    if (ctx.socPct === undefined || !Number.isFinite(ctx.socPct)) return reject('soc_unknown');
    const floorReason = ctx.limits.dischargeLimitedBy === 'departure' ? 'departure' : 'floor';
    // `!(soc > floor)`: a floor that is not a number refuses too
    if (!(ctx.socPct > ctx.effectiveFloorPct)) return reject(floorReason);
    // so close to the floor that not one watt may go out this tick: at the floor, not "accepted at 0 W"
    if ((floorReason === ctx.limits.dischargeLimitedBy) && Math.round(ctx.limits.maxDischargeW) === 0) return reject(floorReason);
  } else if (req.powerW > 0 && ctx.socPct !== undefined && ctx.socPct >= ctx.maxSocPct) return reject('max_soc');

  // a newer dispatch overlapping an active or scheduled one supersedes it (contract §1.1)
  let next = records;
  for (const r of records) {
    if (isTerminal(r) || !overlaps(r, { startMs, endMs })) continue;
    const sup: DispatchRecord = { ...r, status: 'superseded', reason: undefined, endedMs: now };
    next = next.map((x) => (x === r ? sup : x));
    finished.push(sup);
    responses.push(responseFor(sup));
  }
  const accepted: DispatchRecord = { ...base, status: 'accepted', acceptedW: Math.round(boundedPowerW(req.powerW, ctx.limits)) };
  responses.push(responseFor(accepted));
  return { records: [...next, accepted], responses, finished };
}

/** Add the energy measured since the last call to the dispatch that was delivering during it. */
export function accountEnergy(records: DispatchRecord[], activeId: string | undefined, e: EnergyDelta): DispatchRecord[] {
  if (!activeId || (e.exportedWh === 0 && e.importedWh === 0 && e.carSideWh === 0)) return records;
  return records.map((r) =>
    r.id === activeId && (r.status === 'active' || r.status === 'curtailed' || isTerminal(r))
      ? { ...r, exportedWh: r.exportedWh + e.exportedWh, importedWh: r.importedWh + e.importedWh, carSideWh: r.carSideWh + e.carSideWh }
      : r,
  );
}

/** The dispatch that should be delivering now, if any. */
export function currentDispatch(records: DispatchRecord[], nowMs: number): DispatchRecord | undefined {
  let best: DispatchRecord | undefined;
  for (const r of records)
    if ((r.status === 'active' || r.status === 'curtailed') && r.startMs <= nowMs && nowMs < r.endMs && (!best || r.receivedMs > best.receivedMs)) best = r;
  return best;
}

export interface AdvanceResult {
  records: DispatchRecord[];
  responses: DispatchResponse[];
  finished: DispatchRecord[];
}

/**
 * Move dispatches through time: start those due (or expire those that could not start by `expiresAt`),
 * complete those whose time is up. `blockedBy` says why a due dispatch cannot start now.
 */
export function advance(records: DispatchRecord[], nowMs: number, blockedBy: ReasonCode | undefined): AdvanceResult {
  const responses: DispatchResponse[] = [];
  const finished: DispatchRecord[] = [];
  const out = records.map((r) => {
    if (isTerminal(r)) return r;
    if (nowMs >= r.endMs) {
      const done: DispatchRecord = { ...r, status: r.startedMs === undefined ? 'expired' : 'completed', reason: r.startedMs === undefined ? 'expired' : undefined, endedMs: nowMs };
      finished.push(done);
      responses.push(responseFor(done));
      return done;
    }
    // a start later than expiresAt: not started by then means expired (contract §1.1)
    if (r.status === 'accepted' && nowMs < r.startMs && r.request.expiresAtMs !== undefined && nowMs >= r.request.expiresAtMs) {
      const exp: DispatchRecord = { ...r, status: 'expired', reason: 'expired', endedMs: nowMs };
      finished.push(exp);
      responses.push(responseFor(exp));
      return exp;
    }
    if (r.status === 'accepted' && nowMs >= r.startMs) {
      if (blockedBy && r.request.expiresAtMs !== undefined) {
        if (nowMs < r.request.expiresAtMs) return r;
        const exp: DispatchRecord = { ...r, status: 'expired', reason: 'expired', endedMs: nowMs };
        finished.push(exp);
        responses.push(responseFor(exp));
        return exp;
      }
      const act: DispatchRecord = { ...r, status: 'active', startedMs: nowMs };
      responses.push(responseFor(act));
      return act;
    }
    return r;
  });
  return { records: out, responses, finished };
}

/** A delivery this far below `acceptedW` (the larger of the two), measured on the AC side, is short. */
export const UNDERDELIVERY_TOLERANCE_W = 200;
export const UNDERDELIVERY_TOLERANCE_FRACTION = 0.03;
/**
 * ...for this long without a break before it is reported `curtailed` (reason `underdelivery`), and a
 * curtailment for it is lifted only after delivery has been within the tolerance as long: longer than
 * an inverter's ramp and settle time, so a ramp is not reported and a delivery hovering at the edge does
 * not flap.
 */
export const UNDERDELIVERY_WINDOW_S = 15;

/**
 * Report a curtailment when the power delivered falls short of what was accepted, naming the limit,
 * once per change of reason; and `active` again when it recovers. Two sources of shortfall: the
 * setpoint itself (a limit cut it: named by `limitReason`), and, with the setpoint whole, the AC power
 * measured (`measuredW`, signed as setpoints) staying short of `acceptedW` beyond the tolerance for
 * UNDERDELIVERY_WINDOW_S (reason `underdelivery`: the inverter or the car gives less than they said).
 */
export function updateCurtailment(
  records: DispatchRecord[], activeId: string | undefined, setpointW: number, limitReason: string | undefined,
  measured?: { nowMs: number; measuredW: number | undefined },
): { records: DispatchRecord[]; responses: DispatchResponse[] } {
  const responses: DispatchResponse[] = [];
  const out = records.map((r) => {
    if (r.id !== activeId || (r.status !== 'active' && r.status !== 'curtailed')) return r;
    const promised = Math.abs(r.acceptedW ?? r.request.powerW);
    const deliveredW = r.request.powerW < 0 ? Math.max(0, -setpointW) : Math.max(0, setpointW);
    const short = deliveredW < promised - Math.max(50, promised * 0.02);
    if (short && limitReason) {
      if (r.status === 'curtailed' && r.reason === limitReason) return r;
      const cur: DispatchRecord = { ...r, status: 'curtailed', reason: limitReason, shortSinceMs: undefined };
      responses.push(responseFor(cur));
      return cur;
    }
    if (!short && measured && Number.isFinite(measured.nowMs) && (r.status === 'active' || r.reason === 'underdelivery')) {
      // the setpoint is whole: judge what the AC side measured; shortSinceMs = since when the measurement
      // has disagreed with the status (short while active, within the tolerance while curtailed)
      const m = measured.measuredW;
      const gotW = m === undefined || !Number.isFinite(m) ? undefined : r.request.powerW < 0 ? Math.max(0, -m) : Math.max(0, m);
      if (gotW === undefined) return r;
      const measuredShort = gotW < promised - Math.max(UNDERDELIVERY_TOLERANCE_W, promised * UNDERDELIVERY_TOLERANCE_FRACTION);
      const disagrees = r.status === 'active' ? measuredShort : !measuredShort;
      if (!disagrees) return r.shortSinceMs === undefined ? r : { ...r, shortSinceMs: undefined };
      const since = r.shortSinceMs ?? measured.nowMs;
      if ((measured.nowMs - since) / 1000 < UNDERDELIVERY_WINDOW_S) return r.shortSinceMs === since ? r : { ...r, shortSinceMs: since };
      const next: DispatchRecord = r.status === 'active' ? { ...r, status: 'curtailed', reason: 'underdelivery', shortSinceMs: undefined } : { ...r, status: 'active', reason: undefined, shortSinceMs: undefined };
      responses.push(responseFor(next));
      return next;
    }
    // a floor is final for this dispatch: the car will not climb back above it while discharging
    if (!short && r.status === 'curtailed' && r.reason !== 'floor' && r.reason !== 'departure' && r.reason !== 'underdelivery') {
      const act: DispatchRecord = { ...r, status: 'active', reason: undefined };
      responses.push(responseFor(act));
      return act;
    }
    return r;
  });
  return { records: out, responses };
}

/** Forget finished dispatches after a while, and never keep more than MAX_RECORDS. */
export function prune(records: DispatchRecord[], nowMs: number): DispatchRecord[] {
  let out = records.filter((r) => !isTerminal(r) || (r.endedMs ?? nowMs) > nowMs - KEEP_FINISHED_MS);
  if (out.length > MAX_RECORDS) {
    const live = out.filter((r) => !isTerminal(r));
    const done = out.filter(isTerminal);
    // the newest finished ones stay for duplicate detection (`already_finished`); slice(-0) would keep all
    const keep = Math.max(0, MAX_RECORDS - live.length);
    out = [...done.slice(done.length - keep), ...live];
  }
  return out;
}
