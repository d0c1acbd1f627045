/**
 * The energy ledger: one row per settled dispatch, written once and never changed, plus running
 * totals per local day, local month and all time, updated in the same transaction.
 *
 * Energy is AC-side (what the grid or the house received: `exportedWh` out of the car, `importedWh`
 * into it), with the car-side figure beside it so conversion losses stay visible. Reward is the
 * exported energy priced by the tariff in force at settlement.
 */
import { isoUtc, type LedgerPayload, type OutboundMessage, type QueuedMessage } from '../contract.ts';
import { stmt, type Db } from './db.ts';
import { localDayMonth, roundAmount } from './reward.ts';

export interface LedgerRow {
  n: number;
  dispatchId: string;
  /** Dispatch status at settlement (`completed`, `cancelled`, `superseded`, or the open status for an interrupted one). */
  status: string;
  /** When delivery started (or the scheduled start when it never did), epoch ms. */
  startMs: number;
  /** When delivery ended (for an interrupted dispatch: when it was settled), epoch ms. */
  endMs: number;
  exportedWh: number;
  importedWh: number;
  /** Signed, positive into the car. */
  carSideWh: number;
  rewardAmount: number | null;
  currency: string | null;
  /** Settled at start-up from what was measured before the process died. */
  interrupted: boolean;
  /** Why it ended other than by its own time or a cancel: `stopped` (a clean stop), `interrupted`; null otherwise. */
  reason: string | null;
  /** Seconds the device was down while the window was open (it resumed after a restart); null = none. */
  downtimeS: number | null;
  settledMs: number;
  /** Local calendar day and month of `endMs`. */
  day: string;
  month: string;
}

export type NewLedgerRow = Omit<LedgerRow, 'n' | 'day' | 'month'>;

interface LedgerDbRow extends Omit<LedgerRow, 'interrupted'> {
  interrupted: number;
}

const fromDb = (r: LedgerDbRow): LedgerRow => ({ ...r, interrupted: r.interrupted === 1 });

export function isSettled(db: Db, dispatchId: string): boolean {
  return stmt(db, 'SELECT 1 FROM ledger WHERE dispatchId = ?').get(dispatchId) !== undefined;
}

/** Inserts the row and adds it to its totals (inside the caller's transaction). */
export function insertLedger(db: Db, row: NewLedgerRow, tz: string | null | undefined): LedgerRow {
  const { day, month } = localDayMonth(row.endMs, tz);
  const info = stmt(db, `
    INSERT INTO ledger(dispatchId, status, startMs, endMs, exportedWh, importedWh, carSideWh, rewardAmount, currency, interrupted, settledMs, day, month, reason, downtimeS)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`).run(
    row.dispatchId, row.status, row.startMs, row.endMs, row.exportedWh, row.importedWh, row.carSideWh, row.rewardAmount, row.currency, row.interrupted ? 1 : 0, row.settledMs, day, month,
    row.reason ?? null, row.downtimeS ?? null,
  );
  const add = stmt(db, `
    INSERT INTO energy_totals(period, currency, dispatches, exportedWh, importedWh, carSideWh, rewardAmount) VALUES (?, ?, 1, ?, ?, ?, ?)
    ON CONFLICT(period, currency) DO UPDATE SET dispatches = dispatches + 1, exportedWh = exportedWh + excluded.exportedWh,
      importedWh = importedWh + excluded.importedWh, carSideWh = carSideWh + excluded.carSideWh, rewardAmount = rewardAmount + excluded.rewardAmount`);
  for (const period of ['all', `month:${month}`, `day:${day}`]) {
    add.run(period, row.currency ?? '', row.exportedWh, row.importedWh, row.carSideWh, row.rewardAmount ?? 0);
  }
  return { ...row, n: Number(info.lastInsertRowid), day, month };
}

/** Ledger rows whose delivery ended at or after `sinceMs`, oldest first. */
export function ledgerRows(db: Db, sinceMs = 0): LedgerRow[] {
  return (stmt(db, 'SELECT * FROM ledger WHERE endMs >= ? ORDER BY endMs, n').all(sinceMs) as LedgerDbRow[]).map(fromDb);
}

export interface PeriodTotals {
  /** `all`, `month:YYYY-MM` or `day:YYYY-MM-DD`. */
  period: string;
  dispatches: number;
  exportedWh: number;
  importedWh: number;
  carSideWh: number;
  /** Reward in each currency used in the period (usually one). */
  rewards: { amount: number; currency: string }[];
}

export function periodTotals(db: Db, period: string): PeriodTotals {
  const rows = stmt(db, 'SELECT * FROM energy_totals WHERE period = ? ORDER BY currency').all(period) as {
    currency: string; dispatches: number; exportedWh: number; importedWh: number; carSideWh: number; rewardAmount: number;
  }[];
  const t: PeriodTotals = { period, dispatches: 0, exportedWh: 0, importedWh: 0, carSideWh: 0, rewards: [] };
  for (const r of rows) {
    t.dispatches += r.dispatches;
    t.exportedWh += r.exportedWh;
    t.importedWh += r.importedWh;
    t.carSideWh += r.carSideWh;
    if (r.currency) t.rewards.push({ amount: roundAmount(r.rewardAmount), currency: r.currency });
  }
  return t;
}

/** The `ledger` message payload for a row (contract §1), without `ts`/`seq` (the outbox adds them). */
export function ledgerPayload(row: LedgerRow | NewLedgerRow): LedgerPayload {
  const p: LedgerPayload = {
    id: row.dispatchId,
    start: isoUtc(row.startMs),
    end: isoUtc(row.endMs),
    exportedWh: round3(row.exportedWh),
    importedWh: round3(row.importedWh),
    carSideWh: round3(row.carSideWh),
    status: row.status,
  };
  if (row.interrupted) p.interrupted = true;
  if (row.reason) p.reason = row.reason;
  if (row.downtimeS) p.downtimeS = Math.round(row.downtimeS);
  if (row.rewardAmount !== null && row.currency) p.reward = { amount: row.rewardAmount, currency: row.currency };
  return p;
}

export function ledgerMessage(row: LedgerRow | NewLedgerRow): OutboundMessage {
  return { topic: 'ledger', payload: ledgerPayload(row) as unknown as Record<string, unknown>, qos: 1, retain: false, class: 'ledger' };
}

/**
 * Completes a caller-built `ledger` message with what only the store knows (reward, car side,
 * interrupted). Fields the caller set are kept.
 */
export function completeLedgerMessage(m: OutboundMessage, row: NewLedgerRow): OutboundMessage {
  return { ...m, payload: { ...(ledgerPayload(row) as unknown as Record<string, unknown>), ...m.payload, ...(row.interrupted ? { interrupted: true } : {}) } };
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

// --- output for the CLI -----------------------------------------------------------------------

const CSV_COLUMNS = ['dispatchId', 'status', 'start', 'end', 'exportedWh', 'importedWh', 'carSideWh', 'rewardAmount', 'currency', 'interrupted', 'settledAt', 'reason', 'downtimeS'] as const;

function csvField(v: string): string {
  return /[",\r\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v;
}

/** RFC 4180 CSV, header first, one line per row, CRLF line ends. */
export function formatLedgerCsv(rows: LedgerRow[]): string {
  const lines = [CSV_COLUMNS.join(',')];
  for (const r of rows) {
    const cells = [
      r.dispatchId, r.status, isoUtc(r.startMs), isoUtc(r.endMs), String(round3(r.exportedWh)), String(round3(r.importedWh)), String(round3(r.carSideWh)),
      r.rewardAmount === null ? '' : String(r.rewardAmount), r.currency ?? '', r.interrupted ? 'true' : 'false', isoUtc(r.settledMs),
      r.reason ?? '', r.downtimeS === null || r.downtimeS === undefined ? '' : String(Math.round(r.downtimeS)),
    ];
    lines.push(cells.map(csvField).join(','));
  }
  return lines.join('\r\n') + '\r\n';
}

/** Why a row ended early and how long the device was down during it, for the table's status column. */
function endNote(r: LedgerRow): string {
  const notes = [r.reason && r.reason !== r.status ? r.reason : undefined, r.downtimeS ? `down ${Math.round(r.downtimeS)} s` : undefined].filter(Boolean);
  return notes.length ? ` (${notes.join(', ')})` : '';
}

/** A plain table for a terminal, with a total line. */
export function formatLedgerTable(rows: LedgerRow[]): string {
  const head = ['id', 'start', 'end', 'status', 'exported Wh', 'imported Wh', 'car-side Wh', 'reward'];
  const body = rows.map((r) => [
    r.dispatchId + (r.interrupted ? ' (interrupted)' : ''), isoUtc(r.startMs), isoUtc(r.endMs), r.status + endNote(r),
    r.exportedWh.toFixed(1), r.importedWh.toFixed(1), r.carSideWh.toFixed(1), r.rewardAmount === null ? '-' : `${r.rewardAmount.toFixed(2)} ${r.currency}`,
  ]);
  const sum = (k: 'exportedWh' | 'importedWh' | 'carSideWh') => rows.reduce((a, r) => a + r[k], 0).toFixed(1);
  const byCurrency = new Map<string, number>();
  for (const r of rows) if (r.rewardAmount !== null && r.currency) byCurrency.set(r.currency, (byCurrency.get(r.currency) ?? 0) + r.rewardAmount);
  const rewardTotal = [...byCurrency].map(([c, a]) => `${a.toFixed(2)} ${c}`).join(' + ') || '-';
  const total = [`total (${rows.length})`, '', '', '', sum('exportedWh'), sum('importedWh'), sum('carSideWh'), rewardTotal];
  const all = [head, ...body, total];
  const widths = head.map((_, i) => Math.max(...all.map((r) => r[i].length)));
  const fmt = (r: string[]) => r.map((c, i) => (i >= 4 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ').trimEnd();
  return [fmt(head), ...body.map(fmt), fmt(total)].join('\n') + '\n';
}

/**
 * Keeps the ledger message as first queued (inside the settlement's transaction), so a second
 * settlement of the same dispatch returns it byte for byte instead of building another.
 */
export function storeLedgerMessage(db: Db, dispatchId: string, msg: QueuedMessage): void {
  stmt(db, 'UPDATE ledger SET message = ? WHERE dispatchId = ?').run(JSON.stringify(msg), dispatchId);
}

export function storedLedgerMessage(db: Db, dispatchId: string): QueuedMessage | undefined {
  const row = stmt(db, 'SELECT message FROM ledger WHERE dispatchId = ?').get(dispatchId) as { message: string | null } | undefined;
  return row?.message ? (JSON.parse(row.message) as QueuedMessage) : undefined;
}
