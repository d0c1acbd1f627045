/**
 * Dispatches as the core tracks them, with the history of their status changes.
 *
 * A status change is written at once, durably unless the caller groups it into a relaxed transaction
 * (Store.atomically): it is what the aggregator was told. A record that
 * only changed its running energy is held in memory and written with the next batched write: the meter
 * checkpoint carries the same energy more cheaply, and the ledger is the authority once settled.
 */
import { TERMINAL_STATUSES, type DispatchRecord, type DispatchStatus } from '../control/types.ts';
import { stmt, type Db } from './db.ts';

const STATUSES: ReadonlySet<string> = new Set(['accepted', 'rejected', 'active', 'curtailed', 'completed', 'cancelled', 'superseded', 'expired']);
const ID = /^[A-Za-z0-9._:-]{1,64}$/;

export function checkRecord(r: DispatchRecord): void {
  if (!r || typeof r !== 'object') throw new Error('dispatch record must be an object');
  if (typeof r.id !== 'string' || !ID.test(r.id)) throw new Error(`dispatch record id must be 1-64 chars of [A-Za-z0-9._:-], got ${JSON.stringify(r.id)}`);
  if (!STATUSES.has(r.status)) throw new Error(`dispatch ${r.id}: unknown status ${JSON.stringify(r.status)}`);
  for (const k of ['receivedMs', 'startMs', 'endMs', 'exportedWh', 'importedWh', 'carSideWh'] as const) {
    if (typeof r[k] !== 'number' || !Number.isFinite(r[k])) throw new Error(`dispatch ${r.id}: ${k} must be a finite number, got ${JSON.stringify(r[k])}`);
  }
  for (const k of ['startedMs', 'endedMs'] as const) {
    if (r[k] !== undefined && (typeof r[k] !== 'number' || !Number.isFinite(r[k]))) throw new Error(`dispatch ${r.id}: ${k} must be a finite number when present, got ${JSON.stringify(r[k])}`);
  }
  if (r.exportedWh < 0) throw new Error(`dispatch ${r.id}: exportedWh must be >= 0, got ${r.exportedWh}`);
  if (r.importedWh < 0) throw new Error(`dispatch ${r.id}: importedWh must be >= 0, got ${r.importedWh}`);
}

export function upsertDispatch(db: Db, r: DispatchRecord, nowMs: number): void {
  stmt(db, `
    INSERT INTO dispatches(id, status, receivedMs, startMs, endMs, startedMs, endedMs, exportedWh, importedWh, carSideWh, record, updatedMs)
    VALUES (@id, @status, @receivedMs, @startMs, @endMs, @startedMs, @endedMs, @exportedWh, @importedWh, @carSideWh, @record, @updatedMs)
    ON CONFLICT(id) DO UPDATE SET status = excluded.status, receivedMs = excluded.receivedMs, startMs = excluded.startMs, endMs = excluded.endMs,
      startedMs = excluded.startedMs, endedMs = excluded.endedMs, exportedWh = excluded.exportedWh, importedWh = excluded.importedWh,
      carSideWh = excluded.carSideWh, record = excluded.record, updatedMs = excluded.updatedMs`).run({
    id: r.id, status: r.status, receivedMs: r.receivedMs, startMs: r.startMs, endMs: r.endMs, startedMs: r.startedMs ?? null, endedMs: r.endedMs ?? null,
    exportedWh: r.exportedWh, importedWh: r.importedWh, carSideWh: r.carSideWh, record: JSON.stringify(r), updatedMs: nowMs,
  });
}

export function insertStatus(db: Db, id: string, status: DispatchStatus | string, reason: string | undefined, atMs: number): void {
  stmt(db, 'INSERT INTO dispatch_status(dispatchId, status, reason, atMs) VALUES (?, ?, ?, ?)').run(id, status, reason ?? null, atMs);
}

export function storedStatus(db: Db, id: string): string | undefined {
  return (stmt(db, 'SELECT status FROM dispatches WHERE id = ?').get(id) as { status: string } | undefined)?.status;
}

export interface StatusChange {
  status: string;
  reason: string | null;
  atMs: number;
}

export function statusHistory(db: Db, id: string): StatusChange[] {
  return stmt(db, 'SELECT status, reason, atMs FROM dispatch_status WHERE dispatchId = ? ORDER BY n').all(id) as StatusChange[];
}

export function loadDispatch(db: Db, id: string): DispatchRecord | undefined {
  const row = stmt(db, 'SELECT record FROM dispatches WHERE id = ?').get(id) as { record: string } | undefined;
  return row ? (JSON.parse(row.record) as DispatchRecord) : undefined;
}

/**
 * Dispatches with no ledger row that may have moved energy: still open (the process died during them)
 * or finished but killed between the status write and the settlement.
 */
export function unsettledDispatches(db: Db): { record: DispatchRecord; updatedMs: number }[] {
  const rows = stmt(db, `
    SELECT d.record, d.updatedMs FROM dispatches d LEFT JOIN ledger l ON l.dispatchId = d.id
    WHERE l.dispatchId IS NULL AND d.status NOT IN ('rejected', 'expired') ORDER BY d.receivedMs`).all() as { record: string; updatedMs: number }[];
  return rows.map((r) => ({ record: JSON.parse(r.record) as DispatchRecord, updatedMs: r.updatedMs }));
}

export function isTerminal(status: DispatchStatus): boolean {
  return TERMINAL_STATUSES.has(status);
}

/** Terminal dispatches updated at or after `sinceMs`, newest first, at most `limit`. */
export function finishedDispatches(db: Db, sinceMs: number, limit: number): DispatchRecord[] {
  const rows = stmt(db, `
    SELECT record FROM dispatches WHERE updatedMs >= ? AND status IN ('rejected', 'completed', 'cancelled', 'superseded', 'expired')
    ORDER BY updatedMs DESC LIMIT ?`).all(sinceMs, limit) as { record: string }[];
  return rows.map((r) => JSON.parse(r.record) as DispatchRecord);
}
