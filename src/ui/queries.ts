/**
 * What the page reads from the store: the ledger (per dispatch, per month, CSV), the event log newest
 * first, and the state history from its rollups. A connection of its own, opened read-only (WAL readers
 * never block the daemon's writer, and this one cannot write by mistake). Every query is bounded.
 */
import type { Db } from '../store/db.ts';
import { formatLedgerCsv, type LedgerRow } from '../store/ledger.ts';
import { openReadOnly } from '../store/read.ts';
import { rollupRows, type RollupRow } from '../store/history.ts';

export const SEVERITIES = ['info', 'warning', 'alarm'] as const;
export type Severity = (typeof SEVERITIES)[number];

export interface MonthTotal {
  month: string;
  currency: string | null;
  dispatches: number;
  exportedWh: number;
  importedWh: number;
  rewardAmount: number | null;
}

export interface HistoryPoint {
  /** Start of the bucket, ms. */
  atMs: number;
  socPct: number | null;
  socPctMin: number | null;
  powerW: number;
  powerWMin: number;
  powerWMax: number;
  /** Share of the bucket the grid was down, 0..1. */
  gridDown: number;
  importedWh: number;
  exportedWh: number;
}

export const RANGES = {
  /** 24 h of minute rollups in 5-minute points (288). */
  '24h': { spanMs: 86_400_000, table: 'minute' as const, pointMs: 5 * 60_000 },
  /** 30 days of 15-minute rollups in hourly points (720). */
  '30d': { spanMs: 30 * 86_400_000, table: 'quarter' as const, pointMs: 3_600_000 },
};
export type RangeName = keyof typeof RANGES;

/** The ledger row as LedgerRow has it (the table also keeps the settlement message, which the page does not show). */
const LEDGER_COLUMNS = 'n, dispatchId, status, startMs, endMs, exportedWh, importedWh, carSideWh, rewardAmount, currency, interrupted, settledMs, day, month';

const round = (v: number, d = 1) => Math.round(v * 10 ** d) / 10 ** d;

export class UiQueries {
  private db?: Db;
  constructor(private readonly dbPath: string) {}

  private conn(): Db {
    if (!this.db) this.db = openReadOnly(this.dbPath);
    return this.db;
  }

  close(): void {
    this.db?.close();
    this.db = undefined;
  }

  /** Settled dispatches, newest first. */
  ledger(limit = 200): LedgerRow[] {
    const rows = this.conn().prepare(`SELECT ${LEDGER_COLUMNS} FROM ledger ORDER BY endMs DESC, n DESC LIMIT ?`).all(limit) as (Omit<LedgerRow, 'interrupted'> & { interrupted: number })[];
    return rows.map((r) => ({ ...r, interrupted: r.interrupted === 1 }));
  }

  /** Totals per local month (the ledger's own totals table), newest first. */
  months(limit = 36): MonthTotal[] {
    const rows = this.conn()
      .prepare("SELECT period, currency, dispatches, exportedWh, importedWh, rewardAmount FROM energy_totals WHERE period LIKE 'month:%' ORDER BY period DESC, currency LIMIT ?")
      .all(limit) as { period: string; currency: string; dispatches: number; exportedWh: number; importedWh: number; rewardAmount: number }[];
    return rows.map((r) => ({
      month: r.period.slice('month:'.length), currency: r.currency || null, dispatches: r.dispatches,
      exportedWh: round(r.exportedWh), importedWh: round(r.importedWh), rewardAmount: r.currency ? round(r.rewardAmount, 2) : null,
    }));
  }

  /** The whole ledger as CSV (the same columns as `wallbox ledger --csv`), oldest first. */
  ledgerCsv(): string {
    const rows = (this.conn().prepare(`SELECT ${LEDGER_COLUMNS} FROM ledger ORDER BY endMs, n`).all() as (Omit<LedgerRow, 'interrupted'> & { interrupted: number })[]).map((r) => ({ ...r, interrupted: r.interrupted === 1 }));
    return formatLedgerCsv(rows);
  }

  /** Events newest first, of the given severities, older than `beforeN` when given (paging). */
  events(opts: { severities: readonly Severity[]; limit: number; beforeN?: number }): { n: number; atMs: number; kind: string; severity: string; message: string }[] {
    const sev = opts.severities.length ? opts.severities : SEVERITIES;
    const marks = sev.map(() => '?').join(',');
    return this.conn()
      .prepare(`SELECT n, atMs, kind, severity, message FROM events WHERE severity IN (${marks}) AND n < ? ORDER BY n DESC LIMIT ?`)
      .all(...sev, opts.beforeN ?? Number.MAX_SAFE_INTEGER, opts.limit) as { n: number; atMs: number; kind: string; severity: string; message: string }[];
  }

  /** SoC, power and grid over the range ending at `nowMs`, from the rollups (oldest first). */
  history(range: RangeName, nowMs: number): HistoryPoint[] {
    const r = RANGES[range];
    const fromMs = Math.floor((nowMs - r.spanMs) / r.pointMs) * r.pointMs;
    return bucket(rollupRows(this.conn(), r.table, fromMs, nowMs), r.pointMs);
  }
}

/** Sums rollup rows into points of `pointMs` (sums added, extremes kept, the last SoC of the point). */
export function bucket(rows: RollupRow[], pointMs: number): HistoryPoint[] {
  const out: HistoryPoint[] = [];
  let cur: { atMs: number; samples: number; powerWSum: number; min: number; max: number; socLast: number | null; socMin: number | null; down: number; imp: number; exp: number } | undefined;
  const emit = () => {
    if (!cur || cur.samples === 0) return;
    out.push({
      atMs: cur.atMs, socPct: cur.socLast === null ? null : round(cur.socLast), socPctMin: cur.socMin === null ? null : round(cur.socMin),
      powerW: Math.round(cur.powerWSum / cur.samples), powerWMin: Math.round(cur.min), powerWMax: Math.round(cur.max),
      gridDown: round(cur.down / cur.samples, 3), importedWh: round(cur.imp), exportedWh: round(cur.exp),
    });
  };
  for (const row of rows) {
    const at = Math.floor(row.bucketMs / pointMs) * pointMs;
    if (!cur || cur.atMs !== at) {
      emit();
      cur = { atMs: at, samples: 0, powerWSum: 0, min: Infinity, max: -Infinity, socLast: null, socMin: null, down: 0, imp: 0, exp: 0 };
    }
    cur.samples += row.samples;
    cur.powerWSum += row.powerWSum;
    cur.min = Math.min(cur.min, row.powerWMin);
    cur.max = Math.max(cur.max, row.powerWMax);
    if (row.socPctLast !== null) cur.socLast = row.socPctLast;
    if (row.socPctMin !== null) cur.socMin = cur.socMin === null ? row.socPctMin : Math.min(cur.socMin, row.socPctMin);
    cur.down += row.gridDownSamples;
    cur.imp += row.importedWh;
    cur.exp += row.exportedWh;
  }
  emit();
  return out;
}
